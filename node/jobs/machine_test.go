package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime"
)

var quiet = testkit.Discard()

const image = "registry.local/trainer@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func manifestJSON(mut func(map[string]any)) []byte {
	m := map[string]any{
		"version":      1,
		"image":        image,
		"command":      []string{"/train"},
		"resources":    map[string]any{"gpus": 1},
		"output":       map[string]any{"path": "/out", "max_bytes": 1 << 20},
		"max_duration": "1h",
		"network":      map[string]any{"mode": "none"},
		"evaluation":   map[string]any{"image": image, "command": []string{"/eval"}, "metric": "accuracy", "threshold": 0.9},
	}
	if mut != nil {
		mut(m)
	}
	b, _ := json.Marshal(m)
	return b
}

type rig struct {
	t       *testing.T
	dir     string
	store   *store.Store
	chain   *fakeChain
	content *fakeContent
	rt      *fakeRuntime
	deps    Deps
	cancel  context.CancelFunc
	done    chan error
	m       *Machine
	edit    func(c *Config) // changes the machine's configuration, if set
}

func newRig(t *testing.T, train func(runtime.Spec) int) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, dir: dir, chain: newFakeChain(), content: newFakeContent(dir), rt: newFakeRuntime(train)}
	r.openStore()
	r.deps = Deps{Chain: r.chain, Content: r.content, Runtime: r.rt, GPUs: []string{"GPU-a", "GPU-b"},
		Datasets: map[string]string{}, WorkDir: filepath.Join(dir, "work")}
	return r
}

func (r *rig) openStore() {
	s, err := store.Open(filepath.Join(r.dir, "state.db"))
	if err != nil {
		r.t.Fatal(err)
	}
	r.store = s
	r.deps.Store = s
}

func testConfig() Config {
	c := Default()
	c.OutcomePoll = configfile.Duration(10 * time.Millisecond)
	c.RetryBase = configfile.Duration(5 * time.Millisecond)
	c.RetryMax = configfile.Duration(20 * time.Millisecond)
	return c
}

func (r *rig) start() {
	r.deps.Store = r.store
	cfg := testConfig()
	if r.edit != nil {
		r.edit(&cfg)
	}
	r.m = New(cfg, r.deps, quiet)
	ctx, cancel := context.WithCancel(r.t.Context())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.m.Run(ctx) }()
	r.t.Cleanup(r.stop)
}

// stop is the daemon going away: the machine stops, the store is closed, containers run on.
func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Error(err)
	}
	r.cancel = nil
	r.store.Close()
}

func (r *rig) restart() {
	r.stop()
	r.openStore()
	r.start()
}

func (r *rig) post(id string, manifest []byte) Posting { return r.postWith(id, manifest, nil) }

func (r *rig) postWith(id string, manifest []byte, edit func(*Posting)) Posting {
	cid := r.content.put(manifest)
	sum := sha256.Sum256(manifest)
	p := Posting{ID: id, Sponsor: "0xsponsor", ManifestCID: cid, ManifestHash: hex.EncodeToString(sum[:]), RewardWei: "1000", Source: "chain"}
	if edit != nil {
		edit(&p)
	}
	if err := r.m.Discover(r.t.Context(), p); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// waitState waits until job id is in state want. Inside a synctest bubble the wait
// costs no real time.
func (r *rig) waitState(id string, want State) Job {
	r.t.Helper()
	var j Job
	testkit.Eventually(r.t, 10*time.Second, func() bool {
		var err error
		j, err = r.m.Get(id)
		return err == nil && j.State == want
	}, "job %s: %v, want %s", id, testkit.Lazy(func() string { return fmt.Sprintf("state %s (reason %q)", j.State, j.Reason) }), want)
	return j
}

func writeCheckpoint(spec runtime.Spec) int {
	os.WriteFile(filepath.Join(spec.OutputDir, "model.bin"), []byte("weights"), 0o644)
	os.MkdirAll(filepath.Join(spec.OutputDir, "logs"), 0o755)
	os.WriteFile(filepath.Join(spec.OutputDir, "logs", "metrics.json"), []byte(`{"loss":0.1}`), 0o644)
	return 0
}

func TestJobPaid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.start()
		r.post("1", manifestJSON(nil))
		j := r.waitState("1", Submitted)
		if j.OutputCID == "" || j.AcceptTx != "0xaccept1" || j.SubmitTx != "0xsubmit1" || len(j.GPUs) != 1 {
			t.Errorf("record: %+v", j.Record)
		}
		want, _ := treehash.Sum(r.content.published[j.OutputCID])
		if got := r.chain.submitted["1"]; got[0] != j.OutputCID || got[1] != want {
			t.Errorf("submitted %v, want cid %s hash %s", got, j.OutputCID, want)
		}
		r.chain.set("1", OutcomeCompleted)
		r.waitState("1", Paid)
		h, _ := r.store.History("1")
		var path []string
		for _, tr := range h {
			path = append(path, tr.To)
		}
		if got := strings.Join(path, ","); got != "discovered,accepting,accepted,preparing,running,uploading,submitting,submitted,paid" {
			t.Errorf("history %s", got)
		}
		if r.m.alloc.free() != 2 {
			t.Errorf("%d gpus free after the job, want 2", r.m.alloc.free())
		}
		// A replayed JobPosted event does nothing: once every goroutine of the machine
		// is idle again, nothing more was accepted, submitted or started.
		r.post("1", manifestJSON(nil))
		synctest.Wait()
		if r.chain.accepts != 1 || r.chain.submits != 1 || r.rt.starts["1"] != 1 {
			t.Errorf("accepts %d submits %d starts %d, want 1 each", r.chain.accepts, r.chain.submits, r.rt.starts["1"])
		}
	})
}

func TestJobDeclined(t *testing.T) {
	tests := []struct {
		name     string
		manifest []byte
		tamper   bool
		admitter Admitter
		want     string
	}{
		{"malformed manifest", []byte(`{"version":1,"image":"x"`), false, nil, "job manifest"},
		{"unknown field", manifestJSON(func(m map[string]any) { m["privileged"] = true }), false, nil, `unknown field "privileged"`},
		{"image by tag", manifestJSON(func(m map[string]any) { m["image"] = "trainer:latest" }), false, nil, "must be pinned by digest"},
		{"hash mismatch", manifestJSON(nil), true, nil, "manifest hash mismatch"},
		{"too many gpus", manifestJSON(func(m map[string]any) { m["resources"] = map[string]any{"gpus": 4} }), false, nil, "needs 4 GPUs, this rig has 2"},
		{"unknown dataset", manifestJSON(func(m map[string]any) {
			m["inputs"] = []any{map[string]any{"dataset": "scans", "path": "/data"}}
		}), false, nil, `dataset "scans" is not on this rig`},
		{"policy", manifestJSON(nil), false, denyAll{"sponsor 0xsponsor is denied"}, "policy: sponsor 0xsponsor is denied"},
		{"local file input", manifestJSON(func(m map[string]any) {
			m["inputs"] = []any{map[string]any{"file": "data/train.csv", "path": "/data"}}
		}), false, nil, "files on the researcher's machine (data/train.csv)"},
		{"rig too slow", manifestJSON(func(m map[string]any) {
			m["resources"] = map[string]any{"gpus": 1, "min_score": 250.0}
		}), false, nil, "needs a DL hashrate of 250 TFLOPS, this rig's benchmark says 120"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, writeCheckpoint)
				r.deps.Admitter = tt.admitter
				r.deps.RigScore = func() float64 { return 120 }
				r.start()
				if tt.tamper {
					cid := r.content.put(tt.manifest)
					r.m.Discover(t.Context(), Posting{ID: "9", ManifestCID: cid, ManifestHash: strings.Repeat("ab", 32), Source: "chain"})
				} else {
					r.post("9", tt.manifest)
				}
				j := r.waitState("9", Declined)
				if !strings.Contains(j.Reason, tt.want) {
					t.Errorf("reason %q, want %q", j.Reason, tt.want)
				}
				if r.chain.accepts != 0 || len(r.rt.starts) != 0 {
					t.Errorf("a declined job was accepted (%d) or started (%v)", r.chain.accepts, r.rt.starts)
				}
			})
		})
	}
}

func TestTrainerFailsGivesJobBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, func(runtime.Spec) int { return 3 })
		r.start()
		r.post("2", manifestJSON(nil))
		j := r.waitState("2", Failed)
		if !strings.Contains(j.Reason, "exit status 3") {
			t.Errorf("reason %q", j.Reason)
		}
		var reason string
		testkit.Eventually(t, 5*time.Second, func() bool {
			r.chain.mu.Lock()
			defer r.chain.mu.Unlock()
			var ok bool
			reason, ok = r.chain.abandoned["2"]
			return ok
		}, "failed job was not given back on chain")
		if !strings.Contains(reason, "exit status 3") {
			t.Errorf("abandon reason %q", reason)
		}
		if r.chain.submits != 0 {
			t.Error("a failed job was submitted")
		}
		testkit.Eventually(t, 5*time.Second, func() bool {
			j, err := r.m.Get("2")
			if err != nil {
				t.Fatal(err)
			}
			if j.Refund == "" {
				return false
			}
			if j.State != Failed {
				t.Errorf("given back, state %s", j.State)
			}
			return true
		}, "the refund is not recorded on the job")
	})
}

func TestRejectedAndLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.start()
		r.post("3", manifestJSON(nil))
		r.waitState("3", Submitted)
		r.chain.set("3", OutcomeRejected)
		r.waitState("3", Rejected)

		r.chain.takenBy["4"] = true
		r.post("4", manifestJSON(nil))
		r.waitState("4", Lost)
	})
}

// TestRestartWhileRunning: the node stops while the container runs and finishes while
// the node is down; after the restart the job completes with one start and one submission.
func TestRestartWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.rt.release = make(chan struct{})
		r.start()
		r.post("5", manifestJSON(nil))
		r.waitState("5", Running)
		r.stop()
		close(r.rt.release) // the container finishes while the node is down
		synctest.Wait()
		r.openStore()
		r.start()
		r.waitState("5", Submitted)
		if r.rt.starts["5"] != 1 || r.chain.submits != 1 || r.chain.accepts != 1 {
			t.Errorf("starts %d accepts %d submits %d, want 1 each", r.rt.starts["5"], r.chain.accepts, r.chain.submits)
		}
	})
}

// TestRetriesTransientFailures: RPC and IPFS errors are retried with backoff; a node
// restarted in the middle of the retries still submits once.
func TestRetriesTransientFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.chain.failNext["accept"] = 2
		r.chain.failNext["submit"] = 3
		r.content.failNext = 2
		r.start()
		r.post("6", manifestJSON(nil))
		j := r.waitState("6", Submitted)
		if r.chain.submits != 1 || r.chain.accepts != 1 || j.Attempts != 0 {
			t.Errorf("accepts %d submits %d attempts %d", r.chain.accepts, r.chain.submits, j.Attempts)
		}
		h, _ := r.store.History("6")
		retries := 0
		for _, tr := range h {
			if strings.HasPrefix(tr.Note, "retry: ") {
				retries++
			}
		}
		if retries != 7 {
			t.Errorf("%d retries recorded, want 7", retries)
		}
	})
}

func TestTooManyFailuresFailsTheJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.content.failNext = 100
		r.start()
		r.post("7", manifestJSON(nil))
		j := r.waitState("7", Failed)
		if !strings.Contains(j.Reason, "uploading after 8 attempts") {
			t.Errorf("reason %q", j.Reason)
		}
	})
}

func TestOutputLinksAreNotPublished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		secret := filepath.Join(t.TempDir(), "dataset.csv")
		os.WriteFile(secret, []byte("patient,diagnosis\n"), 0o644)
		r := newRig(t, func(spec runtime.Spec) int {
			writeCheckpoint(spec)
			os.Symlink("/etc/passwd", filepath.Join(spec.OutputDir, "passwd"))
			os.Symlink(secret, filepath.Join(spec.OutputDir, "data.csv"))
			os.Symlink(filepath.Dir(secret), filepath.Join(spec.OutputDir, "datadir"))
			os.WriteFile(filepath.Join(spec.OutputDir, "a"), []byte("x"), 0o644)
			os.Link(filepath.Join(spec.OutputDir, "a"), filepath.Join(spec.OutputDir, "b"))
			return 0
		})
		r.start()
		r.post("8", manifestJSON(nil))
		j := r.waitState("8", Submitted)
		pub := r.content.published[j.OutputCID]
		var files []string
		filepath.Walk(pub, func(p string, info os.FileInfo, err error) error {
			rel, _ := filepath.Rel(pub, p)
			files = append(files, rel)
			if info.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				if strings.Contains(string(b), "root:") || strings.Contains(string(b), "patient") {
					t.Errorf("%s holds a host file's contents", rel)
				}
			}
			return nil
		})
		if got := strings.Join(files, ","); got != ".,logs,logs/metrics.json,model.bin" {
			t.Errorf("published %s", got)
		}
	})
}

func TestStageCap(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "big"), make([]byte, 2048), 0o644)
	if _, err := Stage(src, filepath.Join(t.TempDir(), "x"), 1024); err == nil || !strings.Contains(err.Error(), "cap of 1024 bytes") {
		t.Errorf("err = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Default()
	c.MaxAttempts = 0
	c.OutcomePoll = 0
	errs := c.Validate()
	if len(errs) != 2 {
		t.Errorf("errs = %v", errs)
	}
}

func TestAPIAndMetrics(t *testing.T) {
	r := newRig(t, writeCheckpoint)
	r.start()
	r.post("11", manifestJSON(nil))
	r.waitState("11", Submitted)
	r.chain.set("11", OutcomeCompleted)
	r.waitState("11", Paid)
	r.post("12", []byte("{"))
	r.waitState("12", Declined)

	list, err := r.m.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	d, err := r.m.Detail("11")
	if err != nil || d.State != Paid || len(d.History) != 9 {
		t.Fatalf("detail: %+v %v", d, err)
	}
	if _, err := r.m.Detail("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing job: %v, want store.ErrNotFound", err)
	}
	want := `
# HELP gpunode_jobs Jobs this node knows, by state.
# TYPE gpunode_jobs gauge
gpunode_jobs{state="accepted"} 0
gpunode_jobs{state="accepting"} 0
gpunode_jobs{state="declined"} 1
gpunode_jobs{state="discovered"} 0
gpunode_jobs{state="expired"} 0
gpunode_jobs{state="failed"} 0
gpunode_jobs{state="lost"} 0
gpunode_jobs{state="paid"} 1
gpunode_jobs{state="preparing"} 0
gpunode_jobs{state="rejected"} 0
gpunode_jobs{state="running"} 0
gpunode_jobs{state="submitted"} 0
gpunode_jobs{state="submitting"} 0
gpunode_jobs{state="uploading"} 0
# HELP gpunode_gpus_free GPUs not assigned to a job.
# TYPE gpunode_gpus_free gauge
gpunode_gpus_free 2
`
	if err := testutil.CollectAndCompare(r.m.Collector(), strings.NewReader(want), "gpunode_jobs", "gpunode_gpus_free"); err != nil {
		t.Error(err)
	}
}

// TestOtherRolesRecordsAreLeftAlone: the validator's records share the store; the machine
// neither lists them as jobs nor "resumes" them after a restart.
func TestOtherRolesRecordsAreLeftAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		for id, state := range map[string]string{"duty-5": "submitted", "validate-5": "evaluating"} {
			if err := r.store.Create(store.Job{ID: id, State: state, Data: []byte(`{"posting":{"id":"5"}}`)}, "test"); err != nil {
				t.Fatal(err)
			}
		}
		r.start()
		r.post("1", manifestJSON(nil))
		r.waitState("1", Submitted)
		list, err := r.m.List()
		if err != nil || len(list) != 1 || list[0].ID != "1" {
			t.Errorf("jobs listed: %+v %v", list, err)
		}
		for id, state := range map[string]string{"duty-5": "submitted", "validate-5": "evaluating"} {
			if j, err := r.store.Get(id); err != nil || j.State != state {
				t.Errorf("%s is %s (%v), want it left %s", id, j.State, err, state)
			}
		}
		if err := r.m.Discover(t.Context(), Posting{ID: "duty-6"}); err == nil {
			t.Error("a posting named like another role's record was taken")
		}
	})
}
