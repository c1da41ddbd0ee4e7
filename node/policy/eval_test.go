package policy

import (
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/job"
)

const (
	sponsorA = "0x1111111111111111111111111111111111111111"
	sponsorB = "0x2222222222222222222222222222222222222222"
	digest1  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digest2  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	gpuA100  = "NVIDIA A100-SXM4-80GB"
)

// wednesday 12:00 UTC
var noon = time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)

func testManifest(t testing.TB) *job.Manifest {
	t.Helper()
	f, err := os.Open("../../job/testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := job.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	m.Inputs = m.Inputs[:1] // public input only; dataset cases add theirs
	return m
}

func testRequest(t testing.TB) Request {
	return Request{
		Manifest: testManifest(t),
		Sponsor:  sponsorA,
		PriceWei: big.NewInt(2_000_000_000_000_000),
		Node:     NodeState{GPUModel: gpuA100, GPUs: 8, GPUsFree: 8, MaxGPUTempC: 60, MaxGPUPowerW: 250, Now: noon},
	}
}

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte("version = 1\n" + src))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, src)
	}
	return p
}

// TestEvaluateRules covers every rule kind, allowing and denying, and asserts the rule
// named in the decision and the reason given.
func TestEvaluateRules(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		edit   func(r *Request)
		allow  bool
		rule   string // the check that decides
		detail string // substring of its detail
	}{
		{"image allow match", `[images]
allow = ["registry.example.com/lab/*"]`, nil, true, "images.allow", `matches allowed pattern "registry.example.com/lab/*"`},
		{"image allow miss", `[images]
allow = ["ghcr.io/*"]`, nil, false, "images.allow", `"registry.example.com/lab/trainer" matches no allowed pattern`},
		{"image deny match", `[images]
deny = ["*/lab/train*"]`, nil, false, "images.deny", `matches denied pattern "*/lab/train*"`},
		{"image deny miss", `[images]
deny = ["*/*/xmrig"]`, nil, true, "images.deny", "matches no denied pattern"},
		{"digest pinned", `[images]
pinned = ["` + digest1 + `"]`, nil, true, "images.pinned", "is pinned"},
		{"digest not pinned", `[images]
pinned = ["` + digest2 + `"]`, nil, false, "images.pinned", "not among the 1 pinned"},
		{"sponsor allowed", `[sponsors]
allow = ["` + sponsorA + `"]`, nil, true, "sponsors.allow", "is allowed"},
		{"sponsor allowed, checksum case", `[sponsors]
allow = ["0xAbCdEf0000000000000000000000000000000001"]`, func(r *Request) { r.Sponsor = "0xabcdef0000000000000000000000000000000001" }, true, "sponsors.allow", "is allowed"},
		{"sponsor not on allow list", `[sponsors]
allow = ["` + sponsorB + `"]`, nil, false, "sponsors.allow", "is not on the allow list"},
		{"sponsor denied", `[sponsors]
deny = ["` + sponsorA + `"]`, nil, false, "sponsors.deny", sponsorA + " is denied"},
		{"sponsor not denied", `[sponsors]
deny = ["` + sponsorB + `"]`, nil, true, "sponsors.deny", "is not denied"},
		{"price above model floor", `[price_floors]
"` + gpuA100 + `" = "1000000000000000"`, nil, true, "price_floors", `floor for "NVIDIA A100-SXM4-80GB" is 1000000000000000`},
		{"price below model floor", `[price_floors]
"` + gpuA100 + `" = "3000000000000000"
"*" = "1"`, nil, false, "price_floors", "offered 2000000000000000 wei per GPU-hour, floor for \"NVIDIA A100-SXM4-80GB\" is 3000000000000000"},
		{"price below default floor", `[price_floors]
"NVIDIA H100 80GB HBM3" = "1"
"*" = "5000000000000000"`, nil, false, "price_floors", `floor for "*" is 5000000000000000`},
		{"no price offered", `[price_floors]
"*" = "1"`, func(r *Request) { r.PriceWei = nil }, false, "price_floors", "offered 0 wei"},
		{"duration within", `[limits]
max_duration = "6h"`, nil, true, "limits.max_duration", "job asks for 6h0m0s, limit 6h0m0s"},
		{"duration over", `[limits]
max_duration = "2h"`, nil, false, "limits.max_duration", "job asks for 6h0m0s, limit 2h0m0s"},
		{"gpus within", `[limits]
max_gpus = 2`, nil, true, "limits.max_gpus", "2 GPUs, limit 2"},
		{"gpus over", `[limits]
max_gpus = 1`, nil, false, "limits.max_gpus", "2 GPUs, limit 1"},
		{"output within", `[limits]
max_output_bytes = 1073741824`, nil, true, "limits.max_output_bytes", "limit 1073741824"},
		{"output over", `[limits]
max_output_bytes = 1000`, nil, false, "limits.max_output_bytes", "1073741824 output bytes, limit 1000"},
		{"dataset shared with sponsor", `[datasets]
"medical-ct" = ["` + sponsorA + `"]`, withDataset, true, "datasets", `may use dataset "medical-ct"`},
		{"dataset shared with anyone", `[datasets]
"medical-ct" = ["*"]`, withDataset, true, "datasets", `may use dataset "medical-ct"`},
		{"dataset not for this sponsor", `[datasets]
"medical-ct" = ["` + sponsorB + `"]`, withDataset, false, "datasets", `may not use dataset "medical-ct"`},
		{"dataset not shared", `[datasets]
"genomes" = ["*"]`, withDataset, false, "datasets", `dataset "medical-ct" is not shared`},
		{"dataset without any datasets table", ``, withDataset, false, "datasets", "no policy shares any local dataset"},
		{"egress allowed", `[network]
egress = "allowlist"
allow_domains = ["*.huggingface.co", "pypi.org"]`, withEgress("cdn.huggingface.co", "pypi.org"), true, "network.allow_domains", "is allowed"},
		{"egress to unlisted domain", `[network]
egress = "allowlist"
allow_domains = ["*.huggingface.co"]`, withEgress("huggingface.co", "evil.example"), false, "network.allow_domains", "[huggingface.co evil.example], not in the allowlist"},
		{"egress not granted", ``, withEgress("pypi.org"), false, "network.egress", "grants no egress"},
		{"inside window", `[[windows]]
start = "09:00"
end = "17:00"`, nil, true, "windows", "inside window every day 09:00-17:00 UTC"},
		{"outside window", `[[windows]]
start = "18:00"
end = "06:00"`, nil, false, "windows", "outside every window"},
		{"night window wraps to next morning", `[[windows]]
days = ["tue"]
start = "22:00"
end = "13:00"`, nil, true, "windows", "inside window tue 22:00-13:00"},
		{"wrong weekday", `[[windows]]
days = ["sat", "sun"]
start = "00:00"
end = "23:59"`, nil, false, "windows", "outside every window"},
		{"window in a timezone", `[[windows]]
start = "13:00"
end = "14:00"
timezone = "Europe/Berlin"`, nil, true, "windows", "Europe/Berlin"},
		{"temperature ok", `[thermal]
max_gpu_temp_c = 80`, nil, true, "thermal.max_gpu_temp_c", "hottest GPU at 60°C, limit 80°C"},
		{"temperature too high", `[thermal]
max_gpu_temp_c = 80`, func(r *Request) { r.Node.MaxGPUTempC = 85 }, false, "thermal.max_gpu_temp_c", "hottest GPU at 85°C, limit 80°C"},
		{"power ok", `[thermal]
max_gpu_power_w = 300`, nil, true, "thermal.max_gpu_power_w", "250 W, limit 300 W"},
		{"power too high", `[thermal]
max_gpu_power_w = 200`, nil, false, "thermal.max_gpu_power_w", "largest GPU draw 250 W, limit 200 W"},
		{"cel rule true", `[[rules]]
name = "small"
expr = 'job.resources.gpus <= 4 && offer.price_gwei >= 1000000.0 && node.gpu_model.startsWith("NVIDIA")'`, nil, true, "rules.small", "job.resources.gpus <= 4"},
		{"cel rule false with message", `[[rules]]
name = "weekend-only"
expr = 'node.weekday in ["sat", "sun"]'
message = "this rig trains only at weekends"`, nil, false, "rules.weekend-only", "this rig trains only at weekends"},
		{"cel rule false without message", `[[rules]]
name = "no-eval-threshold-below-95"
expr = 'job.evaluation.threshold >= 0.95'`, nil, false, "rules.no-eval-threshold-below-95", "job.evaluation.threshold >= 0.95 is false"},
		{"cel rule over datasets and sponsor", `[[rules]]
name = "dataset-sponsor"
expr = '!("medical-ct" in job.datasets) || offer.sponsor == "` + sponsorB + `"'`, withDataset, false, "rules.dataset-sponsor", "is false"},
		{"cel rule over the node's time", `[[rules]]
name = "after-launch"
expr = 'node.time > timestamp("2026-01-01T00:00:00Z") && node.hour >= 9 && job.max_duration_seconds <= 21600'`, nil, true, "rules.after-launch", "timestamp"},
		{"cel rule error denies", `[[rules]]
name = "missing-field"
expr = 'job.no_such_field == 1'`, nil, false, "rules.missing-field", "evaluation failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.policy)
			r := testRequest(t)
			if tt.edit != nil {
				tt.edit(&r)
			}
			d := (&Set{Local: p}).Evaluate(r, Offer)
			if d.Allow != tt.allow {
				t.Errorf("Allow = %v, want %v; checks:\n%s", d.Allow, tt.allow, explain(d))
			}
			found := false
			for _, c := range d.Checks {
				if c.Rule != tt.rule {
					continue
				}
				found = true
				if c.Pass != tt.allow {
					t.Errorf("check %s: pass = %v, want %v", c.Rule, c.Pass, tt.allow)
				}
				if !strings.Contains(c.Detail, tt.detail) {
					t.Errorf("check %s: detail %q does not contain %q", c.Rule, c.Detail, tt.detail)
				}
				if c.Layer != "local" {
					t.Errorf("check %s: layer %q, want local", c.Rule, c.Layer)
				}
			}
			if !found {
				t.Errorf("no check for rule %s; checks:\n%s", tt.rule, explain(d))
			}
			if !tt.allow && len(d.Reasons()) == 0 {
				t.Error("denied without reasons")
			}
		})
	}
}

func withDataset(r *Request) {
	r.Manifest.Inputs = append(r.Manifest.Inputs, job.Input{Dataset: "medical-ct", Path: "/data/private"})
}

func withEgress(domains ...string) func(r *Request) {
	return func(r *Request) { r.Manifest.Network = job.Network{Mode: job.NetworkEgress, Domains: domains} }
}

func explain(d Decision) string {
	var b strings.Builder
	for _, c := range d.Checks {
		b.WriteString(c.String() + "\n")
	}
	return b.String()
}

func TestEvaluateDefaultAllowsPlainJob(t *testing.T) {
	d := (&Set{}).Evaluate(testRequest(t), Offer)
	if !d.Allow {
		t.Fatalf("the default policy denied a plain job:\n%s", explain(d))
	}
}

// TestMinVerifiedScore: a job asking for capacity verified by a challenge is declined by a
// rig that holds no attestation of as much, taken by one that does.
func TestMinVerifiedScore(t *testing.T) {
	r := testRequest(t)
	r.Manifest.Resources.MinVerifiedScore = 0.5
	for _, c := range []struct {
		verified float64
		allow    bool
	}{{0, false}, {0.49, false}, {0.5, true}, {3, true}} {
		r.Node.VerifiedTFLOPS = c.verified
		d := (&Set{}).Evaluate(r, Offer)
		if d.Allow != c.allow {
			t.Errorf("verified %g: allow %v, want %v:\n%s", c.verified, d.Allow, c.allow, explain(d))
		}
		found := false
		for _, ch := range d.Checks {
			if ch.Rule == "resources.min_verified_score" {
				found = ch.Pass == c.allow && strings.Contains(ch.Detail, "gpunode bench challenge")
			}
		}
		if !found {
			t.Errorf("verified %g: no resources.min_verified_score check that says how to get verified:\n%s", c.verified, explain(d))
		}
	}
}

// TestPoolRequestLeavesRigRulesToMembers: a pool coordinator judging a job for its
// members does not check the rules about a rig (its datasets, its GPUs' heat) — the
// member that runs the job does — but still applies the rest of its policy.
func TestPoolRequestLeavesRigRulesToMembers(t *testing.T) {
	local := mustParse(t, `[thermal]
max_gpu_temp_c = 50
[sponsors]
deny = ["`+sponsorB+`"]`)
	r := testRequest(t)
	withDataset(&r)
	r.Node.MaxGPUTempC = 90
	s := &Set{Local: local}
	d := s.Evaluate(r, Offer)
	failed := map[Kind]bool{}
	for _, c := range d.Failed() {
		failed[c.Kind] = true
	}
	if d.Allow || !failed[KindDataset] || !failed[KindThermal] {
		t.Fatalf("a rig's own evaluation should fail on its dataset and heat:\n%s", explain(d))
	}
	r.Pool = true
	if d := s.Evaluate(r, Offer); !d.Allow {
		t.Fatalf("a pool evaluation checked the coordinator's rig:\n%s", explain(d))
	}
	r.Sponsor = sponsorB
	d = s.Evaluate(r, Offer)
	if d.Allow || len(d.Failed()) != 1 || d.Failed()[0].Rule != "sponsors.deny" {
		t.Fatalf("a pool evaluation must still apply the coordinator's sponsor rules:\n%s", explain(d))
	}
}

func TestEvaluateLayersMustAllAllow(t *testing.T) {
	pool := mustParse(t, "[limits]\nmax_gpus = 4\n[sponsors]\ndeny = [\""+sponsorB+"\"]\n")
	local := mustParse(t, "[limits]\nmax_gpus = 1\n")
	r := testRequest(t)
	d := (&Set{Pool: pool, Local: local}).Evaluate(r, Offer)
	if d.Allow {
		t.Fatal("allowed a job the local layer denies")
	}
	if f := d.Failed(); len(f) != 1 || f[0].Layer != "local" || f[0].Rule != "limits.max_gpus" {
		t.Errorf("failed checks = %v, want local limits.max_gpus", f)
	}
	r.Sponsor = sponsorB
	r.Manifest.Resources.GPUs = 1
	d = (&Set{Pool: pool, Local: local}).Evaluate(r, Offer)
	if f := d.Failed(); d.Allow || len(f) != 1 || f[0].Layer != "pool" || f[0].Rule != "sponsors.deny" {
		t.Errorf("decision %v, failed %v; want the pool's sponsors.deny", d.Allow, f)
	}
}

func TestContainerStage(t *testing.T) {
	p := mustParse(t, `[limits]
max_duration = "1h"
max_output_bytes = 1000
[network]
egress = "allowlist"
allow_domains = ["pypi.org"]
[[windows]]
start = "01:00"
end = "02:00"
[datasets]
"medical-ct" = ["*"]
`)
	r := testRequest(t)
	r.Manifest.MaxDuration.Duration = 30 * time.Minute
	r.Manifest.Output.MaxBytes = 500
	withEgress("pypi.org")(&r)
	withDataset(&r)
	// Outside the window: the offer is refused, but a job accepted earlier still gets its
	// container, with the policy's limits.
	if d := (&Set{Local: p}).Evaluate(r, Offer); d.Allow {
		t.Fatal("offer outside the window allowed")
	}
	cl, d := (&Set{Local: p}).Container(r)
	if !d.Allow {
		t.Fatalf("container denied:\n%s", explain(d))
	}
	if cl.MaxDuration != 30*time.Minute || cl.MaxOutputBytes != 500 || len(cl.Egress) != 1 || cl.Egress[0] != "pypi.org" || len(cl.Datasets) != 1 {
		t.Errorf("container limits = %+v", cl)
	}
	// A policy tightened after acceptance still binds the container.
	tight := mustParse(t, "[limits]\nmax_duration = \"10m\"\n")
	r.Manifest.Network = job.Network{Mode: job.NetworkNone}
	r.Manifest.Inputs = r.Manifest.Inputs[:1]
	if _, d := (&Set{Local: tight}).Container(r); d.Allow || d.Failed()[0].Rule != "limits.max_duration" {
		t.Errorf("container under a tighter policy: allow=%v failed=%v", d.Allow, d.Failed())
	}
	// Egress is none unless every layer grants it.
	withEgress("pypi.org")(&r)
	if _, d := (&Set{Pool: mustParse(t, ""), Local: p}).Container(r); d.Allow {
		t.Error("egress granted although the pool grants none")
	}
}

func TestExampleConfigParses(t *testing.T) {
	b, err := os.ReadFile("../../configs/policy.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("configs/policy.example.toml: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		wants []string
	}{
		{"unknown key (a typo must not loosen)", "version = 1\n[limits]\nmax_gpu = 2\n", []string{`unknown key "limits.max_gpu"`}},
		{"no version", "[limits]\nmax_gpus = 2\n", []string{"version: got 0"}},
		{"bad values, all reported", `version = 1
[images]
allow = ["[bad"]
pinned = ["sha256:xyz"]
[sponsors]
deny = ["0x12"]
[price_floors]
"*" = "-5"
[network]
egress = "open"
[[windows]]
start = "25:00"
end = "01:00"
[thermal]
max_gpu_temp_c = -1
[[rules]]
name = "Bad Name"
expr = "1 + 1"
`, []string{"wei amount"}},
		{"validation problems all at once", `version = 1
[images]
allow = ["[bad"]
pinned = ["sha256:xyz"]
[sponsors]
deny = ["0x12"]
[network]
egress = "open"
[[windows]]
start = "25:00"
end = "01:00"
[thermal]
max_gpu_temp_c = -1
[[rules]]
name = "Bad Name"
expr = "1 + 1"
`, []string{"images.allow", "images.pinned", "sponsors.deny", "network.egress", "windows[0]", "thermal.max_gpu_temp_c", "rules[0].name", "want bool"}},
		{"cel syntax error", "version = 1\n[[rules]]\nname = \"x\"\nexpr = \"job.resources.gpus <\"\n", []string{`rules[0] "x"`}},
		{"egress allowlist without domains", "version = 1\n[network]\negress = \"allowlist\"\n", []string{"needs at least one domain"}},
		{"duplicate rule names", "version = 1\n[[rules]]\nname = \"a\"\nexpr = \"true\"\n[[rules]]\nname = \"a\"\nexpr = \"true\"\n", []string{"used twice"}},
		{"too large", "version = 1\n#" + strings.Repeat("x", MaxPolicyBytes), []string{"larger than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatal("Parse accepted a bad policy")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
