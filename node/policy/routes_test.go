package policy

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

// TestRoutes drives drain, cordon, reload, pool push and rejections through a real control
// API server on a unix socket, with the typed client the CLI uses.
func TestRoutes(t *testing.T) {
	f := newFixture(t, "version = 1\n", 1)
	sock := filepath.Join(t.TempDir(), "api.sock")
	srv := api.NewServer(api.Config{Socket: sock}, discard())
	f.h.Routes(srv)
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	c := api.NewClient(sock)

	f.h.ObserveNode(func() NodeState { return NodeState{GPUModel: gpuA100, GPUs: 8, MaxGPUTempC: 83} })
	req := testRequest(t)
	dec, err := c.CheckPolicy(ctx, checkRequest(t, req))
	if err != nil || !dec.Allow {
		t.Fatalf("CheckPolicy = %+v, %v", dec, err)
	}
	f.write(t, f.local, "version = 1\n[thermal]\nmax_gpu_temp_c = 80\n")
	if _, err := c.ReloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	dec, err = c.CheckPolicy(ctx, checkRequest(t, req))
	if err != nil || dec.Allow || dec.Checks[len(dec.Checks)-1].Detail != "hottest GPU at 83°C, limit 80°C" {
		t.Errorf("CheckPolicy on a hot node = %+v, %v", dec, err)
	}

	f.h.JobStarted("job-1")
	a, err := c.Drain(ctx, "new PSU")
	if err != nil || a.State != StateDraining || a.Reason != "new PSU" || a.RunningJobs != 1 {
		t.Fatalf("Drain = %+v, %v", a, err)
	}
	f.h.Offer(testRequest(t))
	rj, err := c.PolicyRejections(ctx)
	if err != nil || len(rj) != 1 || rj[0].Failed[0].Kind != "admission" {
		t.Fatalf("PolicyRejections = %+v, %v", rj, err)
	}
	f.h.JobFinished("job-1")
	if a, err := c.Admission(ctx); err != nil || a.State != StateDrained {
		t.Errorf("Admission = %+v, %v", a, err)
	}
	if a, err := c.Cordon(ctx, ""); err != nil || a.State != StateDrained {
		t.Errorf("Cordon on a drained node = %+v, %v", a, err)
	}
	if a, err := c.Uncordon(ctx); err != nil || a.State != StateActive {
		t.Errorf("Uncordon = %+v, %v", a, err)
	}
	if a, err := c.Cordon(ctx, "testing"); err != nil || a.State != StateCordoned {
		t.Errorf("Cordon = %+v, %v", a, err)
	}

	st, err := c.PushPoolPolicy(ctx, f.sign(t, 2, poolPolicy))
	if err != nil || st.PoolSeq != 2 || !st.HasPool || st.Admission.State != StateCordoned {
		t.Errorf("PushPoolPolicy = %+v, %v", st, err)
	}
	if _, err := c.PushPoolPolicy(ctx, f.sign(t, 2, poolPolicy)); err == nil || !strings.Contains(err.Error(), "not newer") {
		t.Errorf("stale push: %v", err)
	}

	f.write(t, f.local, "version = 1\n[limits]\nmax_gpus = 99\n")
	if _, err := c.ReloadPolicy(ctx); err == nil || !strings.Contains(err.Error(), "max_gpus = 99 exceeds the pool's 4") {
		t.Errorf("ReloadPolicy with a loosening file: %v", err)
	}
	st, err = c.Policy(ctx)
	if err != nil || st.LastReloadError == "" || !st.HasLocal {
		t.Errorf("Policy = %+v, %v", st, err)
	}
}

func checkRequest(t *testing.T, r Request) api.PolicyCheckRequest {
	t.Helper()
	m, err := json.Marshal(r.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return api.PolicyCheckRequest{Manifest: m, Sponsor: sponsorA, PriceWei: r.PriceWei}
}
