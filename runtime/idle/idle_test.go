package idle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
	"github.com/gpunode/gpunode/runtime/idle"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func engine(t *testing.T) *client.Client {
	t.Helper()
	testenv.RequireDocker(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// probeImage imports the conformance probe into an image FROM nothing, tagged by its hash
// so that reruns reuse it.
func probeImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	bin, err := os.ReadFile(conformance.BuildProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	tag := "gpunode-test/probe:" + hex.EncodeToString(sum[:6])
	ctx := t.Context()
	if ins, err := cli.ImageInspect(ctx, tag); err == nil {
		return ins.ID
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "probe", Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(bin)
	tw.Close()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, tag, image.ImportOptions{})
	if err != nil {
		t.Fatalf("import probe image: %v", err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	ins, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("import probe image: %v", err)
	}
	return ins.ID
}

// event is a container event of the test's runtime instance.
type event struct {
	action string
	job    string // the container's job label
	at     time.Time
}

type recorder struct {
	mu  sync.Mutex
	evs []event
}

func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.evs...)
}

// first returns the first event after since matching action and job (a prefix ends in
// "-"), waiting for it up to d.
func (r *recorder) first(t *testing.T, since time.Time, action, job string, d time.Duration) event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, e := range r.all() {
			if e.action == action && !e.at.Before(since) && (e.job == job || strings.HasSuffix(job, "-") && strings.HasPrefix(e.job, job)) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event of job %q after %s within %s; events: %+v", action, job, since.Format(time.RFC3339Nano), d, r.all())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func watchEvents(t *testing.T, cli *client.Client, instance string) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", "container"), filters.Arg("label", docker.LabelInstance+"="+instance))})
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				switch m.Action {
				case events.ActionStart, events.ActionDie, events.ActionKill:
					r.mu.Lock()
					r.evs = append(r.evs, event{string(m.Action), m.Actor.Attributes[docker.LabelJob], time.Unix(0, m.TimeNano)})
					r.mu.Unlock()
				}
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func removeInstance(cli *client.Client, instance string) {
	ctx := context.Background()
	list, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+instance))})
	for _, c := range list {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
}

func openRuntime(t *testing.T, cli *client.Client) (*docker.Runtime, string, string) {
	dir := t.TempDir()
	h := sha256.Sum256([]byte(dir))
	cfg := docker.Default()
	cfg.Instance = "test-idle-" + hex.EncodeToString(h[:6])
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.LogDir = filepath.Join(dir, "logs")
	cfg.DockerConfig = "/nonexistent/config.json"
	cfg.StopGrace = 20 * time.Second // the idle workload's own, shorter grace must win
	rt, err := docker.New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(); removeInstance(cli, cfg.Instance) })
	return rt, cfg.Instance, dir
}

func poll(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

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
	ctx, cancel := context.WithCancel(context.Background())
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
		list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+instance))})
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

func gauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	return metricOf(t, reg, name)
}

func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	return metricOf(t, reg, name)
}

// metricOf wraps one gathered metric as a collector for testutil.ToFloat64.
func metricOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: "copy"}, func() float64 { return v })
	}
	t.Fatalf("metric %s not gathered", name)
	return nil
}
