package validator

import (
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/node/policy"
)

const consentPolicy = `version = 1
[validator]
sponsors = ["0x1111111111111111111111111111111111111111"]
max_cpus = 1.5
max_memory_mib = 512
max_duration = "10m"
min_fee_wei = "100"
[validator.images]
allow = ["eval"]
`

func consentSet(t *testing.T) *policy.Set {
	t.Helper()
	p, err := policy.Parse([]byte(consentPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return &policy.Set{Local: p}
}

// TestConsent: a task the [validator] rules decline is not fetched, run or attested,
// and stays declined when asked again; one they allow runs within their caps, which the
// node's larger configuration does not raise.
func TestConsent(t *testing.T) {
	good := func(task *Task) {
		task.Sponsor, task.FeeWei = "0x1111111111111111111111111111111111111111", "100"
	}
	tests := []struct {
		name   string
		edit   func(*Task)
		reason string // "" when the task is evaluated
	}{
		{"allowed", func(*Task) {}, ""},
		{"sponsor not allowed", func(task *Task) { task.Sponsor = "0x2222222222222222222222222222222222222222" }, "validator.sponsors"},
		{"image not allowed", func(task *Task) { task.EvalImage = "docker.io/miner/xmrig@sha256:" + strings.Repeat("b", 64) }, "validator.images.allow"},
		{"fee too low", func(task *Task) { task.FeeWei = "99" }, "validator.min_fee_wei"},
		{"fee garbage", func(task *Task) { task.FeeWei = "lots" }, "validator.min_fee_wei"},
		{"fee in a token", func(task *Task) { task.Token = "0x4444444444444444444444444444444444444444" }, "validator.token_min_fees"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t, writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`))
			s.v.cfg.CPUs, s.v.cfg.MemoryBytes, s.v.cfg.EvalTimeout = 8, 8<<30, configfile.Duration(time.Hour)
			s.v.SetConsent(PolicyConsent(consentSet(t)))
			good(&s.task)
			tt.edit(&s.task)
			for i := 0; i < 2; i++ {
				v, err := s.v.Validate(t.Context(), s.task)
				if err != nil {
					t.Fatal(err)
				}
				if tt.reason == "" {
					if v.Declined || v.Score != 950000 {
						t.Fatalf("verdict %+v, want evaluated", v)
					}
					continue
				}
				if !v.Declined || !strings.Contains(v.Reason, tt.reason) || v.Score != 0 {
					t.Fatalf("verdict %+v, want declined by %s", v, tt.reason)
				}
			}
			if tt.reason != "" {
				if s.rt.starts != 0 || s.chain.attests != 0 {
					t.Errorf("declined task: %d evaluations, %d attestations", s.rt.starts, s.chain.attests)
				}
				j, err := s.st.Get(key(s.task.JobID))
				if err != nil || j.State != stateDeclined {
					t.Errorf("stored %+v %v", j, err)
				}
				return
			}
			if s.rt.starts != 1 {
				t.Fatalf("%d evaluations", s.rt.starts)
			}
			r := s.rt.specs[0]
			if r.Resources.CPUs != 1.5 || r.Resources.MemoryBytes != 512<<20 || r.RunTimeout != 10*time.Minute {
				t.Errorf("evaluation ran with %+v for %v: want the policy's caps", r.Resources, r.RunTimeout)
			}
		})
	}
}

// TestImageCapNeedsChecker: a size cap the runtime cannot check declines the task
// rather than pulling an image of unknown size.
func TestImageCapNeedsChecker(t *testing.T) {
	p, err := policy.Parse([]byte("version = 1\n[validator]\nmax_image_bytes = 1000000\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`))
	s.v.SetConsent(PolicyConsent(&policy.Set{Local: p}))
	v, err := s.v.Validate(t.Context(), s.task)
	if err != nil || !v.Declined || !strings.Contains(v.Reason, "cannot be checked") || s.rt.starts != 0 || s.chain.attests != 0 {
		t.Errorf("verdict %+v %v after %d runs and %d attestations", v, err, s.rt.starts, s.chain.attests)
	}
}

func TestCapped(t *testing.T) {
	for _, c := range []struct{ a, b, want int64 }{{0, 0, 0}, {5, 0, 5}, {0, 5, 5}, {3, 5, 3}, {5, 3, 3}} {
		if got := capped(c.a, c.b); got != c.want {
			t.Errorf("capped(%d, %d) = %d", c.a, c.b, got)
		}
	}
}
