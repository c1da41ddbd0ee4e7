package node

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/policy"
)

func TestPricePerGPUHour(t *testing.T) {
	m := &job.Manifest{Resources: job.Resources{GPUs: 2}, MaxDuration: job.Duration{Duration: 3 * time.Hour}}
	if got := PricePerGPUHour("6000", m); got == nil || got.String() != "1000" {
		t.Errorf("6000 wei over 2 GPUs × 3 h = %v, want 1000", got)
	}
	m.Resources.GPUs = 0 // a CPU job counts as one GPU
	if got := PricePerGPUHour("6000", m); got.String() != "2000" {
		t.Errorf("CPU job: %v, want 2000", got)
	}
	if got := PricePerGPUHour("lots", m); got != nil {
		t.Errorf("bad reward: %v, want nil", got)
	}
}

// TestAdmitter: the job machine's admitter applies the policy at offer and at container
// creation, and a drained node declines offers.
func TestAdmitter(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(file, []byte("version = 1\n[price_floors]\n\"*\" = \"1000\"\n[limits]\nmax_duration = \"2h\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := policy.New(policy.Config{File: file, History: 10}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../job/testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := job.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	m.Inputs = m.Inputs[:1]
	m.MaxDuration.Duration = time.Hour
	a := NewAdmitter(h)
	p := jobs.Posting{ID: "1", Sponsor: "0x1111111111111111111111111111111111111111", RewardWei: "2000"} // 1000 wei per GPU-hour
	if ok, reasons := a.Admit(p, m); !ok {
		t.Fatalf("Admit: %v", reasons)
	}
	p.RewardWei = "1999"
	if ok, reasons := a.Admit(p, m); ok || !strings.Contains(strings.Join(reasons, ";"), "price_floors") {
		t.Errorf("underpriced job: ok=%v %v", ok, reasons)
	}
	lim, _, ok := a.CheckContainer(p, m)
	if !ok || lim.RunTimeout != time.Hour {
		t.Errorf("CheckContainer = %+v %v", lim, ok)
	}
	h.Drain("maintenance")
	p.RewardWei = "2000"
	if ok, reasons := a.Admit(p, m); ok || !strings.Contains(reasons[0], "drained") {
		t.Errorf("drained node: ok=%v %v", ok, reasons)
	}
}
