package policy

import (
	"strings"
	"testing"
)

// TestControl drives drain, cordon, reload, pool push, check and rejections as the
// control API calls them.
func TestControl(t *testing.T) {
	f := newFixture(t, "version = 1\n", 1)
	h := f.h

	h.ObserveNode(func() NodeState { return NodeState{GPUModel: gpuA100, GPUs: 8, MaxGPUTempC: 83} })
	req := testRequest(t)
	req.Sponsor = sponsorA
	req.Node = NodeState{}
	if dec := h.Check(req); !dec.Allow {
		t.Fatalf("Check = %+v", dec)
	}
	f.write(t, f.local, "version = 1\n[thermal]\nmax_gpu_temp_c = 80\n")
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if dec := h.Check(req); dec.Allow || dec.Checks[len(dec.Checks)-1].Detail != "hottest GPU at 83°C, limit 80°C" {
		t.Errorf("Check on a hot node = %+v", dec)
	}

	h.JobStarted("job-1")
	if a := h.Drain("new PSU"); a.State != StateDraining || a.Reason != "new PSU" || a.RunningJobs != 1 {
		t.Fatalf("Drain = %+v", a)
	}
	h.Offer(testRequest(t))
	if rj := h.Rejections(); len(rj) != 1 || rj[0].Failed[0].Kind != "admission" {
		t.Fatalf("Rejections = %+v", rj)
	}
	h.JobFinished("job-1")
	if a := h.Admission(); a.State != StateDrained {
		t.Errorf("Admission = %+v", a)
	}
	if a := h.Cordon(""); a.State != StateDrained {
		t.Errorf("Cordon on a drained node = %+v", a)
	}
	if a := h.Uncordon(); a.State != StateActive {
		t.Errorf("Uncordon = %+v", a)
	}
	if a := h.Cordon("testing"); a.State != StateCordoned {
		t.Errorf("Cordon = %+v", a)
	}

	if err := h.ApplyPoolUpdate(f.sign(t, 2, poolPolicy)); err != nil {
		t.Errorf("pool update: %v", err)
	}
	if st := h.Status(); st.PoolSeq != 2 || !st.HasPool || st.Admission.State != StateCordoned {
		t.Errorf("Status after the pool update = %+v", st)
	}
	if err := h.ApplyPoolUpdate(f.sign(t, 2, poolPolicy)); err == nil || !strings.Contains(err.Error(), "not newer") {
		t.Errorf("stale push: %v", err)
	}

	f.write(t, f.local, "version = 1\n[limits]\nmax_gpus = 99\n")
	if err := h.Reload(); err == nil || !strings.Contains(err.Error(), "max_gpus = 99 exceeds the pool's 4") {
		t.Errorf("Reload with a loosening file: %v", err)
	}
	if st := h.Status(); st.LastReloadError == "" || !st.HasLocal {
		t.Errorf("Status = %+v", st)
	}
}
