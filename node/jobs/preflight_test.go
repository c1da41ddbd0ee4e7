package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime"
)

// postTerms posts a manifest with the contract's terms, as the chain announces a job.
func (r *rig) postTerms(id string, manifest []byte, edit func(p *Posting)) {
	r.t.Helper()
	cid := r.content.put(manifest)
	sum := sha256.Sum256(manifest)
	p := Posting{ID: id, Sponsor: "0xsponsor", ManifestCID: cid, ManifestHash: hex.EncodeToString(sum[:]), RewardWei: "1000", Source: "chain",
		Validators: []string{"0xv1", "0xv2"}, Threshold: 900000, Quorum: 2, RunWindowSeconds: 3 * 3600, AttestWindowSeconds: 3600}
	if edit != nil {
		edit(&p)
	}
	if err := r.m.Discover(r.t.Context(), p); err != nil {
		r.t.Fatal(err)
	}
}

// TestAcceptanceChecks plays a hostile sponsor: each job would fail after acceptance
// (and cost the bond); each is declined before anything is sent on chain, with its
// reason named and counted, and nothing is left on disk.
func TestAcceptanceChecks(t *testing.T) {
	const missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	tests := []struct {
		name     string
		manifest []byte
		terms    func(p *Posting)
		check    func(runtime.Spec, int64) (runtime.Checked, error)
		kind     string
		want     string
	}{
		{"threshold mismatch", manifestJSON(nil), func(p *Posting) { p.Threshold = 1<<32 - 1 }, nil, KindTerms, "threshold mismatch: the chain's threshold is 4294967295, the manifest's 0.9 makes 900000"},
		{"quorum above the validators", manifestJSON(nil), func(p *Posting) { p.Quorum = 3 }, nil, KindTerms, "quorum 3 of 2 validators"},
		{"attest window too short", manifestJSON(nil), func(p *Posting) { p.AttestWindowSeconds = 1 }, nil, KindTerms, "attest window 1s is shorter than 5m0s"},
		{"no command", manifestJSON(func(m map[string]any) { delete(m, "command") }), nil, nil, KindManifest, "the manifest has no command"},
		{"egress", manifestJSON(func(m map[string]any) {
			m["network"] = map[string]any{"mode": "egress", "domains": []string{"pypi.org"}}
		}), nil, nil, KindNetwork, "cannot hold a container to an egress allowlist"},
		{"run window shorter than the job", manifestJSON(nil), func(p *Posting) { p.RunWindowSeconds = 1 }, nil, KindRunWindow, "run window 1s, needs"},
		{"image missing", manifestJSON(nil), nil, func(runtime.Spec, int64) (runtime.Checked, error) {
			return runtime.Checked{}, errors.New("pull: " + runtime.ErrImageNotFound.Error() + ": manifest unknown")
		}, KindImage, ""},
		{"image not found", manifestJSON(nil), nil, func(runtime.Spec, int64) (runtime.Checked, error) {
			return runtime.Checked{}, runtime.ErrImageNotFound
		}, KindImage, "image: image not found"},
		{"image too large", manifestJSON(nil), nil, func(_ runtime.Spec, max int64) (runtime.Checked, error) {
			return runtime.Checked{ImageBytes: 2 * max}, runtime.ErrImageTooLarge
		}, KindImageSize, "image too large"},
		{"container refused", manifestJSON(func(m map[string]any) { m["resources"] = map[string]any{"gpus": 1, "memory_mib": 1} }), nil, func(s runtime.Spec, _ int64) (runtime.Checked, error) {
			if s.Resources.MemoryBytes != 1<<20 {
				return runtime.Checked{}, errors.New("the dry run did not get the job's memory limit")
			}
			return runtime.Checked{}, errors.Join(runtime.ErrContainerRefused, errors.New("Minimum memory limit allowed is 6MB"))
		}, KindContainer, "Minimum memory limit allowed is 6MB"},
		{"asks above the operator's caps", manifestJSON(func(m map[string]any) { m["resources"] = map[string]any{"gpus": 1, "cpus": 512} }), nil, func(s runtime.Spec, _ int64) (runtime.Checked, error) {
			return runtime.Checked{}, errors.Join(errors.New("job 7 asks for 512 CPUs (cap 2)"), runtime.ErrOverCaps)
		}, KindResources, "512 CPUs (cap 2)"},
		{"input nobody has", manifestJSON(func(m map[string]any) { m["inputs"] = []any{map[string]any{"cid": missing, "path": "/data"}} }), nil, nil, KindInput, "fetch input " + missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testenv.Attack(t, "jobs", "job built to fail after acceptance: "+tt.name)
			r := newRig(t, writeCheckpoint)
			adm := newCountingAdmitter()
			r.deps.Admitter = adm
			r.rt.check = tt.check
			r.start()
			r.postTerms("7", tt.manifest, tt.terms)
			j := r.waitState("7", Declined)
			if !strings.Contains(j.Reason, tt.want) {
				t.Errorf("reason %q, want it to say %q", j.Reason, tt.want)
			}
			if tt.name == "image missing" {
				// An error the runtime does not name is retried, then declined.
				if h, _ := r.store.History("7"); len(h) < 3 {
					t.Errorf("declined without retrying: %v", h)
				}
			}
			if adm.count(tt.kind) != 1 {
				t.Errorf("declines counted %v, want one %s", adm.declined, tt.kind)
			}
			if r.chain.accepts != 0 || len(r.rt.starts) != 0 {
				t.Errorf("a declined job was accepted (%d) or started (%v)", r.chain.accepts, r.rt.starts)
			}
			if _, err := os.Stat(filepath.Join(r.deps.WorkDir, "7")); !os.IsNotExist(err) {
				t.Errorf("the declined job left its directory: %v", err)
			}
		})
	}
}

// TestDryRunIsTheRealSpec: the container checked before acceptance is the one started
// after it, and a good job with terms that agree is taken.
func TestDryRunIsTheRealSpec(t *testing.T) {
	r := newRig(t, writeCheckpoint)
	adm := newCountingAdmitter()
	r.deps.Admitter = adm
	r.start()
	r.postTerms("8", manifestJSON(func(m map[string]any) {
		m["resources"] = map[string]any{"gpus": 1, "memory_mib": 512, "cpus": 1.5}
		m["env"] = map[string]string{"B": "2", "A": "1"}
	}), nil)
	j := r.waitState("8", Submitted)
	if j.Preflight == nil || j.Preflight.ImageBytes != 1<<20 {
		t.Errorf("preflight not recorded: %+v", j.Preflight)
	}
	r.rt.mu.Lock()
	defer r.rt.mu.Unlock()
	if len(r.rt.checks) != 1 {
		t.Fatalf("%d dry runs, want 1", len(r.rt.checks))
	}
	c := r.rt.checks[0]
	if c.Resources.MemoryBytes != 512<<20 || c.Resources.CPUs != 1.5 || strings.Join(c.Env, ",") != "A=1,B=2" ||
		len(c.GPUs) != 1 || c.OutputDir != j.OutputDir || c.Image != image {
		t.Errorf("dry run spec %+v; the job ran with GPUs %v in %s", c, j.GPUs, j.OutputDir)
	}
	if r.chain.accepts != 1 {
		t.Errorf("accepts %d, want 1", r.chain.accepts)
	}
}

func TestContractThreshold(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want uint32
		ok   bool
	}{{0.9, 900000, true}, {0, 0, true}, {0.1234565, 123457, true}, {4294.967295, 1<<32 - 1, true}, {4294.9673, 0, false}, {-1, 0, false}} {
		got, ok := ContractThreshold(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ContractThreshold(%v) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestOutputCap: the operator's output cap is a ceiling; a job declaring more is
// declined before acceptance, and without a configured cap the free disk sets one.
func TestOutputCap(t *testing.T) {
	r := newRig(t, writeCheckpoint)
	adm := newCountingAdmitter()
	r.deps.Admitter = adm
	r.edit = func(c *Config) { c.MaxOutputBytes = 1000 }
	r.start()
	r.postTerms("5", manifestJSON(nil), nil) // declares 1 MiB
	if j := r.waitState("5", Declined); !strings.Contains(j.Reason, "output.max_bytes 1048576 is above this rig's cap of 1000") || adm.count(KindResources) != 1 {
		t.Errorf("reason %q, counted %v", j.Reason, adm.declined)
	}
	m := New(Default(), Deps{WorkDir: filepath.Join(t.TempDir(), "not", "yet")}, quiet)
	if c := m.outputCap(); c <= 0 {
		t.Errorf("output cap from the free disk = %d, want positive", c)
	}
	if got := ceiling(5000, 1000); got != 1000 {
		t.Errorf("ceiling(5000, 1000) = %d", got)
	}
}
