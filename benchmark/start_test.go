package benchmark

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testkit"
)

// rigBackend is fakeBackend on a rig whose driver can change and whose runs can fail.
type rigBackend struct {
	fakeBackend
	driver atomic.Value // string
	fail   atomic.Bool
}

func (r *rigBackend) Hardware(ctx context.Context) (Hardware, error) {
	hw, _ := r.fakeBackend.Hardware(ctx)
	hw.Driver, _ = r.driver.Load().(string)
	return hw, nil
}

func (r *rigBackend) Run(ctx context.Context, plan Plan, progress func(Result)) ([]Result, error) {
	if r.fail.Load() {
		r.mu.Lock()
		r.calls++
		r.mu.Unlock()
		return nil, errors.New("harness crashed")
	}
	return r.fakeBackend.Run(ctx, plan, progress)
}

func (r *rigBackend) runs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func newStartService(t *testing.T, dir string, b Backend, onStart bool) *Service {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := Default()
	cfg.StateDir, cfg.Backend, cfg.OnStart = dir, "fake", onStart
	s, err := New(cfg, testkit.Discard(), key, b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runUntilMeasured runs s until its start is settled and returns how long that took.
func runUntilMeasured(t *testing.T, s *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.Measured():
	case <-time.After(time.Minute):
		t.Fatal("the start was not settled within a minute")
	}
}

// TestMeasureAtStart: a new rig measures itself; a rig whose report is current does not;
// a driver or hardware change, or another backend, makes it measure again; the node
// hears of each new report.
func TestMeasureAtStart(t *testing.T) {
	dir := t.TempDir()
	rig := &rigBackend{}
	rig.driver.Store("550.54.15")

	s := newStartService(t, dir, rig, true)
	if why := s.StartReason(t.Context()); why != "no benchmark report yet" {
		t.Fatalf("new rig: reason %q", why)
	}
	runUntilMeasured(t, s)
	if rig.runs() != 1 || s.Last() == nil {
		t.Fatalf("new rig: %d runs, report %v", rig.runs(), s.Last() != nil)
	}
	select {
	case <-s.NewReports():
	default:
		t.Error("no new-report signal after the benchmark at start")
	}

	// Restart on the same rig: the report is current, nothing runs.
	s = newStartService(t, dir, rig, true)
	runUntilMeasured(t, s)
	if rig.runs() != 1 {
		t.Errorf("restart on the same rig ran the benchmark again (%d runs)", rig.runs())
	}

	// A driver upgrade changes the fingerprint: measured again.
	rig.driver.Store("560.28.03")
	s = newStartService(t, dir, rig, true)
	if why := s.StartReason(t.Context()); !strings.Contains(why, "hardware or driver changed") {
		t.Fatalf("after a driver change: reason %q", why)
	}
	runUntilMeasured(t, s)
	if rig.runs() != 2 || s.StartReason(t.Context()) != "" {
		t.Errorf("after a driver change: %d runs, reason now %q", rig.runs(), s.StartReason(t.Context()))
	}

	// Off: never measures, and says it is settled at once.
	rig.driver.Store("570.00.01")
	s = newStartService(t, dir, rig, false)
	runUntilMeasured(t, s)
	if rig.runs() != 2 {
		t.Errorf("on_start = false ran the benchmark (%d runs)", rig.runs())
	}
}

// TestMeasureAtStartWaitsForIdle: a benchmark never runs beside a job; it runs once the
// rig is idle.
func TestMeasureAtStartWaitsForIdle(t *testing.T) {
	defer func(p time.Duration) { IdlePoll = p }(IdlePoll)
	IdlePoll = 5 * time.Millisecond
	rig := &rigBackend{}
	s := newStartService(t, t.TempDir(), rig, true)
	var idle atomic.Bool
	var asked atomic.Int32
	s.SetIdle(func() bool { asked.Add(1); return idle.Load() })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for asked.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-s.Measured():
		t.Fatal("settled while a job was running")
	default:
	}
	if rig.runs() != 0 {
		t.Fatalf("the benchmark ran while a job was running (%d runs)", rig.runs())
	}
	idle.Store(true)
	select {
	case <-s.Measured():
	case <-time.After(time.Minute):
		t.Fatal("not measured within a minute of the rig going idle")
	}
	if rig.runs() != 1 || s.Last() == nil {
		t.Errorf("%d runs, report %v", rig.runs(), s.Last() != nil)
	}
}

// TestMeasureAtStartGivesUp: a benchmark that keeps failing is tried a few times, then
// left to the operator; the start is settled so the node still registers.
func TestMeasureAtStartGivesUp(t *testing.T) {
	defer func(p time.Duration) { IdlePoll = p }(IdlePoll)
	IdlePoll = time.Millisecond
	rig := &rigBackend{}
	rig.fail.Store(true)
	s := newStartService(t, t.TempDir(), rig, true)
	runUntilMeasured(t, s)
	if rig.runs() != startAttempts || s.Last() != nil {
		t.Errorf("%d runs (want %d), report %v", rig.runs(), startAttempts, s.Last() != nil)
	}
}
