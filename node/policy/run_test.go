package policy

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
)

// TestRunReloads: Run reloads on each value from its reload channel; a broken file on the
// next keeps the policy that was in force. In a synctest bubble each reload is checked
// once Run waits again, with no polling.
func TestRunReloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, "version = 1\n[limits]\nmax_gpus = 2\n", 0)
		ctx, cancel := context.WithCancel(t.Context())
		reload := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- f.h.Run(ctx, reload) }()
		defer func() { cancel(); <-done }()

		hup := func(want float64, result string) {
			t.Helper()
			reload <- struct{}{}
			synctest.Wait() // Run has reloaded and waits for the next value
			if got := counter(t, f.reg, "gpunode_policy_reloads_total", "result", result); got != want {
				t.Fatalf("%v %s reloads, want %v", got, result, want)
			}
		}
		f.write(t, f.local, "version = 1\n[limits]\nmax_gpus = 1\n")
		hup(1, "ok")
		if got := f.h.Set().Local.Limits.MaxGPUs; got != 1 {
			t.Fatalf("after a reload max_gpus = %d, want 1", got)
		}
		f.write(t, f.local, "version = 1\n[limits\n")
		hup(1, "error")
		if got := f.h.Set().Local.Limits.MaxGPUs; got != 1 {
			t.Errorf("after a broken reload max_gpus = %d, want the previous 1", got)
		}
	})
}

func TestAdvert(t *testing.T) {
	f := newFixture(t, `version = 1
[price_floors]
"*" = "5000000000000000"
[datasets]
"medical-ct" = ["*"]
"genomes" = []
`, 1)
	ad := f.h.Advert(gpuA100)
	if !ad.TakingJobs || ad.State != StateActive {
		t.Errorf("advert state: %+v", ad)
	}
	if ad.PriceFloorWei == nil || ad.PriceFloorWei.String() != "5000000000000000" {
		t.Errorf("advert floor = %v, want the local 5000000000000000 over the pool's 1000000000000000", ad.PriceFloorWei)
	}
	if len(ad.Datasets) != 1 || ad.Datasets[0] != "medical-ct" {
		t.Errorf("advert datasets = %v", ad.Datasets)
	}
	if ad.Egress {
		t.Error("advert egress: the local layer grants none")
	}
	// The pool pauses the node above 85°C.
	f.h.ObserveNode(func() NodeState { return NodeState{GPUModel: gpuA100, MaxGPUTempC: 90} })
	if ad := f.h.Advert(gpuA100); ad.TakingJobs || len(ad.Paused) != 1 || !strings.Contains(ad.Paused[0], "pool thermal.max_gpu_temp_c: hottest GPU at 90°C, limit 85°C") {
		t.Errorf("hot advert: %+v", ad)
	}
	if st := f.h.Status(); len(st.Paused) != 1 {
		t.Errorf("status paused = %v", st.Paused)
	}
	f.h.ObserveNode(func() NodeState { return NodeState{GPUModel: gpuA100, MaxGPUTempC: 60} })
	f.h.Cordon("")
	if ad := f.h.Advert(gpuA100); ad.TakingJobs || ad.State != StateCordoned || len(ad.Paused) != 0 {
		t.Errorf("cordoned advert: %+v", ad)
	}
}
