//go:build integration

package idle_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/docker"
	"github.com/gpunode/gpunode/runtime/idle"
)

// TestIdleGivesWayToJob is acceptance point 4 of pools against the real engine: the idle
// workload runs before the job, is stopped within stop_timeout once the job holds the
// rig and before the job's container starts, and starts again after the job.
func TestIdleGivesWayToJob(t *testing.T) {
	cli := engine(t)
	img := probeImage(t, cli)
	rt, instance, rtDir := openRuntime(t, cli)
	evs := watchEvents(t, cli, instance)

	cfg := idle.Default()
	cfg.Image = img
	// It ignores SIGTERM, like a miner deaf to signals: only the kill at the end of the
	// grace period keeps the stop within the bound.
	cfg.Command = []string{"/probe", "ignoreterm", "sleep:10m"}
	cfg.StopTimeout = configfile.Duration(3 * time.Second)
	cfg.RestartDelay = configfile.Duration(500 * time.Millisecond)
	reg := prometheus.NewRegistry()
	w, err := idle.New(cfg, idle.Deps{Runtime: rt, Dir: t.TempDir(), Registerer: reg}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-runErr
	}()

	began := time.Now().Add(-time.Second)
	first := evs.first(t, began, "start", idle.IDPrefix, 60*time.Second)
	poll(t, "status says running", 10*time.Second, func() bool { return w.Status().Running })
	if got := testutil.ToFloat64(gauge(t, reg, "gpunode_idle_running")); got != 1 {
		t.Fatalf("gpunode_idle_running = %v while the idle workload runs, want 1", got)
	}

	// A job is accepted: the machine holds the workload, then starts the job's container.
	held := time.Now()
	hctx, hcancel := context.WithTimeout(ctx, 30*time.Second)
	if err := w.Hold(hctx, "1"); err != nil {
		t.Fatal(err)
	}
	hcancel()
	died := evs.first(t, first.at, "die", first.job, 5*time.Second)
	if took := died.at.Sub(held); took > time.Duration(cfg.StopTimeout) {
		t.Fatalf("idle container died %s after the hold, want within stop_timeout %s", took, time.Duration(cfg.StopTimeout))
	}
	if st := w.Status(); st.Running || len(st.HeldBy) != 1 || st.HeldBy[0] != "1" || st.LastStop <= 0 {
		t.Fatalf("status after hold = %+v, want not running, held by job 1, last stop measured", st)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "gpunode_idle_running")); got != 0 {
		t.Fatalf("gpunode_idle_running = %v while a job holds the rig, want 0", got)
	}
	jobStarted := time.Now()
	spec := runtime.Spec{JobID: "1", Image: img, Command: []string{"/probe", "echo:training", "sleep:1500ms"},
		OutputDir: filepath.Join(t.TempDir(), "out"), RunTimeout: time.Minute}
	if _, err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	res, err := rt.Wait(ctx, "1")
	if err != nil || !res.Succeeded() {
		t.Fatalf("job: %+v %v", res, err)
	}
	jobStart := evs.first(t, jobStarted.Add(-time.Second), "start", "1", 5*time.Second)
	jobDie := evs.first(t, jobStart.at, "die", "1", 5*time.Second)
	if !jobStart.at.After(died.at) {
		t.Fatalf("job container started at %s, before the idle container died at %s", jobStart.at, died.at)
	}
	// While held, the workload stays off.
	for _, e := range evs.all() {
		if strings.HasPrefix(e.job, idle.IDPrefix) && e.action == "start" && e.at.After(died.at) {
			t.Fatalf("idle workload started while job 1 held the rig: %+v", e)
		}
	}

	w.Release("1")
	again := evs.first(t, jobDie.at, "start", idle.IDPrefix, 60*time.Second)
	if again.job == first.job {
		t.Fatalf("second idle run reuses job ID %s", again.job)
	}
	poll(t, "status says running again", 10*time.Second, func() bool { return w.Status().Running })
	if st := w.Status(); st.Starts != 2 || st.Run != again.job {
		t.Fatalf("status = %+v, want 2 starts, run %s", st, again.job)
	}
	if got := testutil.ToFloat64(counter(t, reg, "gpunode_idle_starts_total")); got != 2 {
		t.Fatalf("gpunode_idle_starts_total = %v, want 2", got)
	}

	// The node stops: the idle workload stops with it, and no container is left.
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	runErr <- nil
	evs.first(t, again.at, "die", again.job, 5*time.Second)
	poll(t, "idle containers removed", 10*time.Second, func() bool {
		list, err := cli.ContainerList(t.Context(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+instance))})
		return err == nil && len(list) == 0
	})
	// Each run's record and log are forgotten; the job's stay.
	left, _ := filepath.Glob(filepath.Join(rtDir, "*", "*"+idle.IDPrefix+"*"))
	if len(left) != 0 {
		t.Fatalf("idle runs left records or logs: %v", left)
	}
	if kept, _ := filepath.Glob(filepath.Join(rtDir, "state", "job-1.json")); len(kept) != 1 {
		t.Fatal("the job's own record is gone")
	}
}
