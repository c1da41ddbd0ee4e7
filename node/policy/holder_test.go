package policy

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
)

func discard() *slog.Logger { return testkit.Discard() }

const poolPolicy = `version = 1
[images]
allow = ["registry.example.com/*/*"]
deny = ["*/*/xmrig"]
[sponsors]
deny = ["` + sponsorB + `"]
[price_floors]
"*" = "1000000000000000"
[limits]
max_gpus = 4
max_duration = "12h"
[network]
egress = "allowlist"
allow_domains = ["*.huggingface.co", "pypi.org"]
[datasets]
"medical-ct" = ["` + sponsorA + `"]
[thermal]
max_gpu_temp_c = 85
`

func TestCheckTightens(t *testing.T) {
	pool := mustParse(t, strings.TrimPrefix(poolPolicy, "version = 1\n"))
	tests := []struct {
		name  string
		local string
		wants []string // one message each; none means the local policy is accepted
	}{
		{"empty local inherits", ``, nil},
		{"tighter everywhere", `[images]
allow = ["registry.example.com/lab/*"]
deny = ["*/*/*"]
[sponsors]
allow = ["` + sponsorA + `"]
[price_floors]
"*" = "2000000000000000"
[limits]
max_gpus = 2
max_duration = "1h"
[network]
egress = "allowlist"
allow_domains = ["cdn.huggingface.co", "*.hub.huggingface.co"]
[datasets]
"medical-ct" = ["` + sponsorA + `"]
[thermal]
max_gpu_temp_c = 75
`, nil},
		{"higher gpu limit", "[limits]\nmax_gpus = 8\n", []string{"limits.max_gpus = 8 exceeds the pool's 4"}},
		{"longer duration", "[limits]\nmax_duration = \"24h\"\n", []string{"limits.max_duration = 24h0m0s exceeds the pool's 12h0m0s"}},
		{"lower floor", "[price_floors]\n\"NVIDIA A100-SXM4-80GB\" = \"10\"\n", []string{`price_floors."NVIDIA A100-SXM4-80GB" = 10 wei is below the pool's floor 1000000000000000 (from "*")`}},
		{"wider image allow", "[images]\nallow = [\"docker.io/*\"]\n", []string{`images.allow "docker.io/*" is not within the pool's allowed patterns`}},
		{"allows a denied image", "[images]\nallow = [\"registry.example.com/lab/xmrig\"]\n", []string{`allows what the pool denies ("*/*/xmrig")`}},
		{"allows a denied sponsor", "[sponsors]\nallow = [\"" + sponsorB + "\"]\n", []string{"sponsors.allow " + sponsorB + " is denied by the pool"}},
		{"egress to another domain", "[network]\negress = \"allowlist\"\nallow_domains = [\"*.example.org\"]\n", []string{`network.allow_domains "*.example.org" is not within the pool's allowlist`}},
		{"dataset to anyone", "[datasets]\n\"medical-ct\" = [\"*\"]\n", []string{"datasets.medical-ct grants *, which the pool does not"}},
		{"hotter", "[thermal]\nmax_gpu_temp_c = 95\n", []string{"thermal.max_gpu_temp_c = 95 exceeds the pool's 85"}},
		{"several at once", "[limits]\nmax_gpus = 8\nmax_duration = \"24h\"\n", []string{"max_duration", "max_gpus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := CheckTightens(pool, mustParse(t, tt.local))
			if len(errs) != len(tt.wants) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tt.wants))
			}
			for i, w := range tt.wants {
				if !errors.Is(errs[i], ErrLoosens) || !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %q: want ErrLoosens mentioning %q", errs[i], w)
				}
			}
		})
	}
	noEgressPool := mustParse(t, "")
	if errs := CheckTightens(noEgressPool, mustParse(t, "[network]\negress = \"allowlist\"\nallow_domains = [\"pypi.org\"]\n")); len(errs) != 1 || !strings.Contains(errs[0].Error(), "the pool grants no egress") {
		t.Errorf("egress against a pool without egress: %v", errs)
	}
}

type fixture struct {
	dir   string
	pub   ed25519.PublicKey
	priv  ed25519.PrivateKey
	cfg   Config
	reg   *prometheus.Registry
	h     *Holder
	local string
}

// newFixture makes a holder with a local policy; poolSeq > 0 makes it a pool member with a
// signed pool policy of that seq, poolSeq < 0 a member that has none yet, 0 no member.
func newFixture(t *testing.T, local string, poolSeq int) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), reg: prometheus.NewRegistry()}
	var err error
	f.pub, f.priv, err = GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f.local = filepath.Join(f.dir, "policy.toml")
	f.cfg = Config{File: f.local, History: 10}
	if poolSeq != 0 {
		f.cfg.PoolKey, f.cfg.PoolPolicyFile = EncodePublicKey(f.pub), filepath.Join(f.dir, "pool.signed")
	}
	f.write(t, f.local, local)
	if poolSeq > 0 {
		f.write(t, f.cfg.PoolPolicyFile, string(f.sign(t, uint64(poolSeq), poolPolicy)))
	}
	f.h, err = New(f.cfg, discard(), f.reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f
}

func (f *fixture) write(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) sign(t *testing.T, seq uint64, policy string) []byte {
	t.Helper()
	b, err := Sign(f.priv, seq, []byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.Counter != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
			if label == "" {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

func TestSignVerify(t *testing.T) {
	pub, priv, _ := GenerateKey()
	signed, err := Sign(priv, 7, []byte(poolPolicy))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(pub, signed)
	if err != nil || v.Seq != 7 || v.Policy.Limits.MaxGPUs != 4 {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
	// Key text round trip.
	if p2, err := ParsePublicKey(EncodePublicKey(pub)); err != nil || !p2.Equal(pub) {
		t.Errorf("public key round trip: %v", err)
	}
	if k2, err := ParsePrivateKey(EncodePrivateKey(priv)); err != nil || !k2.Equal(priv) {
		t.Errorf("private key round trip: %v", err)
	}

	tamper := func(edit func(e *Envelope)) []byte {
		var e Envelope
		if err := json.Unmarshal(signed, &e); err != nil {
			t.Fatal(err)
		}
		edit(&e)
		b, _ := json.Marshal(e)
		return b
	}
	otherPub, otherPriv, _ := GenerateKey()
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"policy changed", tamper(func(e *Envelope) {
			e.Policy = []byte(strings.Replace(string(e.Policy), "max_gpus = 4", "max_gpus = 64", 1))
		}), ErrBadSignature},
		{"seq changed", tamper(func(e *Envelope) { e.Seq = 8 }), ErrBadSignature},
		{"signature truncated", tamper(func(e *Envelope) { e.Signature = e.Signature[:10] }), ErrBadSignature},
		{"other pool's key", tamper(func(e *Envelope) { e.PoolKey = otherPub }), ErrWrongPool},
		{"signed by another key", func() []byte { b, _ := Sign(otherPriv, 7, []byte(poolPolicy)); return b }(), ErrWrongPool},
		{"forged with another key but our key id", tamper(func(e *Envelope) {
			e.Signature = ed25519.Sign(otherPriv, signedBytes(pub, e.Seq, e.Policy))
		}), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(pub, tt.in)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify error = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Sign(priv, 1, []byte("version = 1\nbogus = 1\n")); err == nil {
		t.Error("Sign signed an invalid policy")
	}
}

// TestPoolUpdates: a newer sequence number replaces an older one; stale, tampered and
// foreign policies are refused and counted; the update is saved for the next start.
func TestPoolUpdates(t *testing.T) {
	f := newFixture(t, "version = 1\n[limits]\nmax_gpus = 2\n", 3)
	h := f.h
	if s := h.Set(); s.PoolSeq != 3 || s.Pool == nil || s.Local == nil {
		t.Fatalf("initial set: seq %d pool %v local %v", s.PoolSeq, s.Pool != nil, s.Local != nil)
	}
	newer := strings.Replace(poolPolicy, "max_gpus = 4", "max_gpus = 1", 1)
	if err := h.ApplyPoolUpdate(f.sign(t, 5, newer)); err != nil {
		t.Fatalf("newer update: %v", err)
	}
	if s := h.Set(); s.PoolSeq != 5 || s.Pool.Limits.MaxGPUs != 1 {
		t.Fatalf("after update: seq %d max_gpus %d", s.PoolSeq, s.Pool.Limits.MaxGPUs)
	}
	d := h.Offer(testRequest(t))
	if d.Allow || d.Failed()[0].Layer != "pool" || d.Failed()[0].Rule != "limits.max_gpus" {
		t.Errorf("the new pool limit does not apply: %v", d.Failed())
	}
	if err := h.ApplyPoolUpdate(f.sign(t, 4, poolPolicy)); !errors.Is(err, ErrStale) {
		t.Errorf("older update: %v, want ErrStale", err)
	}
	if err := h.ApplyPoolUpdate(f.sign(t, 5, poolPolicy)); !errors.Is(err, ErrStale) {
		t.Errorf("same seq: %v, want ErrStale", err)
	}
	tampered := []byte(strings.Replace(string(f.sign(t, 9, poolPolicy)), `"seq": 9`, `"seq": 10`, 1))
	if err := h.ApplyPoolUpdate(tampered); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered update: %v, want ErrBadSignature", err)
	}
	_, otherPriv, _ := GenerateKey()
	foreign, _ := Sign(otherPriv, 100, []byte(poolPolicy))
	if err := h.ApplyPoolUpdate(foreign); !errors.Is(err, ErrWrongPool) {
		t.Errorf("foreign update: %v, want ErrWrongPool", err)
	}
	if s := h.Set(); s.PoolSeq != 5 {
		t.Errorf("a refused update changed the policy: seq %d", s.PoolSeq)
	}
	if got := counter(t, f.reg, "gpunode_policy_pool_updates_total", "result", "bad_signature"); got != 2 {
		t.Errorf("bad_signature count = %v, want 2", got)
	}
	if got := counter(t, f.reg, "gpunode_policy_pool_updates_total", "result", "stale"); got != 2 {
		t.Errorf("stale count = %v, want 2", got)
	}
	if got := counter(t, f.reg, "gpunode_policy_pool_seq", "", ""); got != 5 {
		t.Errorf("pool seq gauge = %v, want 5", got)
	}
	// The update was saved: a restart starts from seq 5.
	h2, err := New(f.cfg, discard(), nil)
	if err != nil || h2.Set().PoolSeq != 5 {
		t.Fatalf("restart: %v, seq %d", err, h2.Set().PoolSeq)
	}
}

// TestLocalLoosensPoolRefused: a local policy looser than the pool's is refused at start
// and on reload, with a message naming each loosening rule; on reload the old one stays.
func TestLocalLoosensPoolRefused(t *testing.T) {
	f := newFixture(t, "version = 1\n[limits]\nmax_gpus = 2\n", 1)
	f.write(t, f.local, "version = 1\n[limits]\nmax_gpus = 16\n[price_floors]\n\"*\" = \"1\"\n")
	err := f.h.Reload()
	if !errors.Is(err, ErrLoosens) {
		t.Fatalf("Reload = %v, want ErrLoosens", err)
	}
	for _, w := range []string{"may only tighten the pool's", "limits.max_gpus = 16 exceeds the pool's 4", `price_floors."*" = 1 wei is below the pool's floor`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
	if got := f.h.Set().Local.Limits.MaxGPUs; got != 2 {
		t.Errorf("local max_gpus in force = %d, want the old 2", got)
	}
	// At start (or after the pool tightened under an unchanged file) the node still
	// starts, keeps the local layer's other rules, and reports what the pool overrides.
	h2, err := New(f.cfg, discard(), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	st := h2.Status()
	if len(st.Overridden) != 2 || !strings.Contains(strings.Join(st.Overridden, "\n"), "max_gpus = 16 exceeds the pool's 4") {
		t.Errorf("status overridden = %q", st.Overridden)
	}
	r := testRequest(t)
	r.Manifest.Resources.GPUs = 8
	if d := h2.Offer(r); d.Allow || d.Failed()[0].Layer != "pool" {
		t.Errorf("the pool's limit does not apply over a looser local one: %v", d.Failed())
	}
}

// TestReloadKeepsOldPolicy: a reload swaps the policy without touching a running job; a
// broken file leaves the previous policy in force, logged and counted.
func TestReloadKeepsOldPolicy(t *testing.T) {
	f := newFixture(t, "version = 1\n[limits]\nmax_gpus = 2\n", 0)
	h := f.h
	r := testRequest(t)
	if d := h.Offer(r); !d.Allow {
		t.Fatalf("offer denied:\n%s", explain(d))
	}
	h.JobStarted("job-1")

	// A valid, stricter policy: new offers are judged by it; the running job stays.
	f.write(t, f.local, "version = 1\n[limits]\nmax_gpus = 1\n")
	if err := h.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if d := h.Offer(r); d.Allow {
		t.Error("offer allowed after tightening reload")
	}
	if a := h.Admission(); a.RunningJobs != 1 || a.State != StateActive {
		t.Errorf("running job touched by reload: %+v", a)
	}

	for _, broken := range []string{
		"version = 1\n[limits\nmax_gpus = 8\n",                    // syntax
		"version = 1\n[limits]\nmax_gpus = \"8\"\n",               // type
		"version = 1\n[limits]\nmax_gpu = 8\n",                    // typo
		"version = 1\n[[rules]]\nname = \"x\"\nexpr = \"job.\"\n", // CEL
	} {
		f.write(t, f.local, broken)
		if err := h.Reload(); err == nil {
			t.Errorf("Reload accepted %q", broken)
		}
		if got := h.Set().Local.Limits.MaxGPUs; got != 1 {
			t.Errorf("after broken reload, max_gpus = %d, want the previous 1", got)
		}
		if d := h.Offer(r); d.Allow {
			t.Error("broken reload loosened the policy")
		}
	}
	os.Remove(f.local)
	if err := h.Reload(); err == nil || h.Set().Local == nil {
		t.Errorf("missing file: err %v, local kept %v", err, h.Set().Local != nil)
	}
	if got := counter(t, f.reg, "gpunode_policy_reloads_total", "result", "error"); got != 5 {
		t.Errorf("reload errors counted = %v, want 5", got)
	}
	if got := counter(t, f.reg, "gpunode_policy_last_reload_success", "", ""); got != 0 {
		t.Errorf("last reload success = %v, want 0", got)
	}
	if st := h.Status(); st.LastReloadError == "" {
		t.Error("status does not say why the reload failed")
	}
	h.JobFinished("job-1")
	if a := h.Admission(); a.RunningJobs != 0 {
		t.Errorf("job not finished: %+v", a)
	}
}

// TestDrain: a draining node finishes its running job and accepts no new offer.
func TestDrain(t *testing.T) {
	f := newFixture(t, "version = 1\n", 0)
	h := f.h
	r := testRequest(t)
	if d := h.Offer(r); !d.Allow {
		t.Fatalf("offer denied:\n%s", explain(d))
	}
	h.JobStarted("job-1")
	if a := h.Drain("maintenance window"); a.State != StateDraining || a.RunningJobs != 1 {
		t.Fatalf("after Drain: %+v", a)
	}
	d := h.Offer(r)
	if d.Allow {
		t.Fatal("a draining node accepted an offer")
	}
	if c := d.Failed()[0]; c.Kind != KindAdmission || !strings.Contains(c.Detail, "draining") || !strings.Contains(c.Detail, "maintenance window") {
		t.Errorf("reason = %+v", c)
	}
	// The running job still gets its container and finishes.
	if _, d := h.Container(r); !d.Allow {
		t.Errorf("draining node refused the running job's container:\n%s", explain(d))
	}
	h.JobFinished("job-1")
	if a := h.Admission(); a.State != StateDrained {
		t.Errorf("after the last job: %+v, want drained", a)
	}
	if d := h.Offer(r); d.Allow {
		t.Error("a drained node accepted an offer")
	}
	if got := counter(t, f.reg, "gpunode_node_admission_state", "state", StateDrained); got != 1 {
		t.Errorf("admission gauge drained = %v", got)
	}
	if got := counter(t, f.reg, "gpunode_policy_rejections_total", "reason", "admission"); got != 2 {
		t.Errorf("admission rejections = %v, want 2", got)
	}
	if a := h.Uncordon(); a.State != StateActive {
		t.Errorf("after Uncordon: %+v", a)
	}
	if d := h.Offer(r); !d.Allow {
		t.Error("uncordoned node refused an offer")
	}

	h.Cordon("")
	if a := h.Admission(); a.State != StateCordoned || a.TakingJobs() {
		t.Errorf("after Cordon: %+v", a)
	}
	if d := h.Offer(r); d.Allow {
		t.Error("a cordoned node accepted an offer")
	}
	h.Uncordon()
	if rj := h.Rejections(); len(rj) != 3 || rj[0].Failed[0].Kind != KindAdmission {
		t.Errorf("rejections listed: %+v", rj)
	}
}

func TestConfigValidate(t *testing.T) {
	pub, _, _ := GenerateKey()
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"default", Default(), nil},
		{"pool member", Config{PoolKey: EncodePublicKey(pub), PoolPolicyFile: "/var/lib/gpunode/pool.signed"}, nil},
		{"bad key and no file", Config{PoolKey: "abc"}, []string{"pool_key", "pool_policy_file: required"}},
		{"file without key", Config{PoolPolicyFile: "x"}, []string{"without pool_key"}},
		{"history", Config{History: -1}, []string{"history"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.cfg.Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate = %v, want %d errors", errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %q does not mention %q", errs[i], w)
				}
			}
		})
	}
}

func TestDrainWithRunningCount(t *testing.T) {
	f := newFixture(t, "version = 1\n", 0)
	running := 1
	f.h.CountRunning(func() int { return running })
	if a := f.h.Drain(""); a.State != StateDraining || a.RunningJobs != 1 {
		t.Fatalf("Drain: %+v", a)
	}
	running = 0
	if a := f.h.Admission(); a.State != StateDrained {
		t.Errorf("after the count dropped to 0: %+v", a)
	}
}

func TestAdmissionMetricAtScrape(t *testing.T) {
	f := newFixture(t, "version = 1\n", 0)
	running := 1
	f.h.CountRunning(func() int { return running })
	f.h.Drain("")
	if got := counter(t, f.reg, "gpunode_node_admission_state", "state", StateDraining); got != 1 {
		t.Errorf("draining gauge = %v", got)
	}
	running = 0
	if got := counter(t, f.reg, "gpunode_node_admission_state", "state", StateDrained); got != 1 {
		t.Errorf("drained gauge = %v after the last job ended", got)
	}
}

func TestPoolMemberWaitsForPoolPolicy(t *testing.T) {
	f := newFixture(t, "version = 1\n", -1)
	d := f.h.Offer(testRequest(t))
	if d.Allow {
		t.Fatal("a pool member without its pool policy took a job")
	}
	if c := d.Failed()[0]; c.Kind != KindPool || !strings.Contains(c.Detail, "no signed pool policy yet") {
		t.Errorf("reason = %+v", c)
	}
	if err := f.h.ApplyPoolUpdate(f.sign(t, 1, poolPolicy)); err != nil {
		t.Fatal(err)
	}
	if d := f.h.Offer(testRequest(t)); !d.Allow {
		t.Errorf("denied with the pool policy in force:\n%s", explain(d))
	}
}
