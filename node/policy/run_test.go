package policy

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloads: Run reloads on SIGHUP; a broken file on the next SIGHUP keeps the
// policy that was in force.
func TestSIGHUPReloads(t *testing.T) {
	f := newFixture(t, "version = 1\n[limits]\nmax_gpus = 2\n", 0)
	// Until Run has called signal.Notify, a SIGHUP would kill the test process; this
	// subscription keeps it alive for the whole test.
	guard := make(chan os.Signal, 16)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.h.Run(ctx) }()
	defer func() { cancel(); <-done }()

	hup := func(want float64, result string) {
		t.Helper()
		for i := 0; i < 200; i++ {
			if i%20 == 0 { // signal.Notify may not be installed yet on the first tries
				if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			if counter(t, f.reg, "gpunode_policy_reloads_total", "result", result) >= want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no %s reload after SIGHUP", result)
	}
	f.write(t, f.local, "version = 1\n[limits]\nmax_gpus = 1\n")
	hup(1, "ok")
	if got := f.h.Set().Local.Limits.MaxGPUs; got != 1 {
		t.Fatalf("after SIGHUP max_gpus = %d, want 1", got)
	}
	f.write(t, f.local, "version = 1\n[limits\n")
	hup(1, "error")
	if got := f.h.Set().Local.Limits.MaxGPUs; got != 1 {
		t.Errorf("after a broken SIGHUP reload max_gpus = %d, want the previous 1", got)
	}
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
