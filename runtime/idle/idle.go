// Package idle runs the operator's idle workload — a miner, say — on the rig whenever it
// has no job, and gives the rig back within a bound when one arrives.
//
// The idle workload is a container like a job's: it goes through the same runtime, so
// it gets the same hardening (no capabilities, read-only root, limits, no network unless
// the operator grants the bridge). The job machine calls Hold before a job's container is
// started, which returns once the idle container is gone (stopped within
// Config.StopTimeout), and Release when the job's container has finished; the workload
// starts again when nothing holds it.
package idle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/runtime"
)

// Runtime is what the idle workload needs of the container runtime.
type Runtime interface {
	Start(ctx context.Context, spec runtime.Spec) (runtime.Handle, error)
	Wait(ctx context.Context, jobID string) (runtime.Result, error)
	Stop(ctx context.Context, jobID string) error
	Recover(ctx context.Context) ([]runtime.Handle, error)
}

// forgetter is a runtime that can drop a finished run's record and log.
type forgetter interface {
	Forget(jobID string) error
}

// IDPrefix starts the runtime job IDs of idle runs; the job machine's IDs are decimal
// numbers, so the two never meet.
const IDPrefix = "idle-"

// Deps are what a Workload runs on.
type Deps struct {
	Runtime Runtime
	// GPUs are the rig's GPU UUIDs, handed to the workload when Config.GPUs is set.
	GPUs []string
	// Dir holds the workload's state file and its (small, capped) output directory.
	Dir string
	// Busy tells whether the rig has a job that needs it even when nothing holds the
	// workload (after a restart, before the job machine has resumed its jobs); nil
	// means never.
	Busy func() bool
	// Registerer takes the workload's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Status is what the idle workload is doing.
type Status struct {
	// Enabled: an idle image is configured.
	Enabled bool   `json:"enabled"`
	Image   string `json:"image,omitempty"`
	// Running: its container is running now.
	Running bool `json:"running"`
	// Run is the runtime job ID of the current or last run.
	Run       string    `json:"run,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// HeldBy lists the jobs the workload has given way to.
	HeldBy []string `json:"held_by,omitempty"`
	// Starts counts the runs started since the node started.
	Starts int `json:"starts"`
	// LastStop is how long the last hand-over to a job took.
	LastStop time.Duration `json:"last_stop,omitempty"`
	// LastError says why the last run could not start or ended badly.
	LastError string `json:"last_error,omitempty"`
}

// Workload runs and stops the idle container.
type Workload struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	m    *metrics

	mu      sync.Mutex
	holds   map[string]bool
	st      Status
	changed chan struct{} // closed and replaced on every change of holds or st
	runs    bool          // Run is active: Hold has someone to wait for
	// active is set from the moment a run is about to start until it has ended: Hold
	// waits for it, not for Status.Running, so a run being started is not missed.
	active bool
}

// New returns the workload; Run drives it. A disabled configuration gives a workload
// whose Run only waits and whose Hold returns at once.
func New(cfg Config, deps Deps, log *slog.Logger) (*Workload, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("idle config: %w", errors.Join(errs...))
	}
	if cfg.Enabled() && (deps.Runtime == nil || deps.Dir == "") {
		return nil, errors.New("idle: a runtime and a directory are required")
	}
	w := &Workload{
		cfg:     cfg,
		deps:    deps,
		log:     log.With("component", "idle"),
		holds:   map[string]bool{},
		st:      Status{Enabled: cfg.Enabled(), Image: cfg.Image},
		changed: make(chan struct{}),
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	w.m = m
	return w, nil
}

// Status reports what the workload is doing.
func (w *Workload) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st
	s.HeldBy = w.heldBy()
	return s
}

func (w *Workload) heldBy() []string {
	if len(w.holds) == 0 {
		return nil
	}
	out := make([]string, 0, len(w.holds))
	for k := range w.holds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// notify wakes everyone waiting for a change; w.mu must be held.
func (w *Workload) notify() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// Hold makes the workload give way to the job key: it returns once the idle container
// is no longer running (nil), or with an error when ctx ends first. Holding twice under
// one key is one hold.
func (w *Workload) Hold(ctx context.Context, key string) error {
	w.mu.Lock()
	if !w.cfg.Enabled() {
		w.mu.Unlock()
		return nil
	}
	if !w.holds[key] {
		w.holds[key] = true
		w.notify()
	}
	for {
		if !w.active || !w.runs {
			w.mu.Unlock()
			return nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("idle workload still running when job %s needed the rig: %w", key, ctx.Err())
		}
		w.mu.Lock()
	}
}

// Release ends the job key's hold; with none left, the workload starts again.
func (w *Workload) Release(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.holds[key] {
		delete(w.holds, key)
		w.notify()
	}
}

// held tells whether the workload must not run; w.mu must be held.
func (w *Workload) held() bool {
	return len(w.holds) > 0
}

func (w *Workload) busy() bool {
	return w.deps.Busy != nil && w.deps.Busy()
}

// busyPoll is how often a workload kept off by Busy (not by a hold) looks again.
const busyPoll = 2 * time.Second

// Run keeps the idle workload running whenever nothing holds it, until ctx is cancelled;
// then it stops the workload (within the stop timeout) and returns.
func (w *Workload) Run(ctx context.Context) error {
	if !w.cfg.Enabled() {
		<-ctx.Done()
		return nil
	}
	w.mu.Lock()
	w.runs = true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.runs = false
		w.notify()
		w.mu.Unlock()
	}()
	if err := os.MkdirAll(w.deps.Dir, 0o750); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	// The engine may not answer yet (the runtime's check says why): wait for it.
	for {
		_, err := w.deps.Runtime.Recover(ctx)
		if err == nil {
			break
		}
		w.setError(fmt.Errorf("re-attach: %w", err))
		w.log.Warn("idle workload waits for the container engine", "in", time.Duration(w.cfg.RestartDelay), "err", err)
		if !sleep(ctx, time.Duration(w.cfg.RestartDelay)) {
			return nil
		}
	}
	current := w.adopt(ctx)
	for {
		if current == "" {
			w.mu.Lock()
			held, ch := w.held(), w.changed
			w.mu.Unlock()
			if held || w.busy() {
				select {
				case <-ctx.Done():
					return nil
				case <-ch:
				case <-time.After(busyPoll):
				}
				continue
			}
			id, err := w.start(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.setError(err)
				w.log.Warn("idle workload did not start; retrying", "in", time.Duration(w.cfg.RestartDelay), "err", err)
				if !sleep(ctx, time.Duration(w.cfg.RestartDelay)) {
					return nil
				}
				continue
			}
			if id == "" {
				continue // held meanwhile
			}
			current = id
		}
		exited := make(chan runtime.Result, 1)
		wctx, cancelWait := context.WithCancel(ctx)
		go func(id string) {
			if res, err := w.deps.Runtime.Wait(wctx, id); err == nil {
				exited <- res
			} else if !errors.Is(err, context.Canceled) {
				exited <- runtime.Result{JobID: id, Error: err.Error()}
			}
		}(current)
		reason := ""
		var res runtime.Result
		for reason == "" {
			w.mu.Lock()
			held, ch := w.held(), w.changed
			w.mu.Unlock()
			if held {
				reason = "job"
				break
			}
			select {
			case res = <-exited:
				reason = "exited"
			case <-ctx.Done():
				reason = "shutdown"
			case <-ch:
			}
		}
		cancelWait()
		switch reason {
		case "exited":
			w.ended(current, res, 0)
			current = ""
			if !sleep(ctx, time.Duration(w.cfg.RestartDelay)) {
				return nil
			}
		case "job":
			took, res := w.stop(context.WithoutCancel(ctx), current)
			w.ended(current, res, took)
			current = ""
		case "shutdown":
			took, res := w.stop(context.WithoutCancel(ctx), current)
			w.ended(current, res, took)
			return nil
		}
	}
}

// adopt picks up a run left by an earlier process (a crash): the state file names it,
// and the runtime re-attached to it. A finished one is forgotten.
func (w *Workload) adopt(ctx context.Context) string {
	b, err := os.ReadFile(w.statePath())
	if err != nil {
		return ""
	}
	var s struct {
		Run string `json:"run"`
	}
	if json.Unmarshal(b, &s) != nil || s.Run == "" {
		return ""
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	res, err := w.deps.Runtime.Wait(done, s.Run)
	switch {
	case err == nil:
		w.forget(s.Run)
		w.log.Info("last idle run ended while the node was down", "run", s.Run, "exit_code", res.ExitCode)
		return ""
	case errors.Is(err, context.Canceled):
		w.log.Info("re-attached to the idle workload", "run", s.Run)
		w.mu.Lock()
		w.active, w.st.Running, w.st.Run = true, true, s.Run
		w.notify()
		w.mu.Unlock()
		w.m.running.Set(1)
		return s.Run
	}
	return ""
}

func (w *Workload) statePath() string { return filepath.Join(w.deps.Dir, "idle.json") }

func (w *Workload) spec(id string) runtime.Spec {
	s := runtime.Spec{
		JobID:     id,
		Image:     w.cfg.Image,
		Command:   w.cfg.Command,
		Env:       w.cfg.Env,
		Network:   w.cfg.Network,
		OutputDir: filepath.Join(w.deps.Dir, "out"),
		StopGrace: w.cfg.grace(),
		// It runs until a job needs the rig; the runtime's run timeout is its ceiling.
		Resources: runtime.Resources{CPUs: w.cfg.CPUs, MemoryBytes: w.cfg.MemoryBytes, OutputBytes: outputBytes},
	}
	if w.cfg.GPUs {
		s.GPUs = w.deps.GPUs
	}
	return s
}

// outputBytes caps the idle workload's output: it has no result to hand over.
const outputBytes = 16 << 20

func (w *Workload) start(ctx context.Context) (string, error) {
	id := IDPrefix + strconv.FormatInt(time.Now().UnixNano(), 36)
	spec := w.spec(id)
	if err := os.RemoveAll(spec.OutputDir); err != nil {
		return "", fmt.Errorf("idle: %w", err)
	}
	if err := os.MkdirAll(spec.OutputDir, 0o750); err != nil {
		return "", fmt.Errorf("idle: %w", err)
	}
	b, _ := json.Marshal(map[string]string{"run": id})
	if err := os.WriteFile(w.statePath(), b, 0o640); err != nil {
		return "", fmt.Errorf("idle: state: %w", err)
	}
	// A hold taken from here on waits for this run; one taken before keeps it off.
	w.mu.Lock()
	if w.held() {
		w.mu.Unlock()
		return "", nil
	}
	w.active = true
	w.mu.Unlock()
	h, err := w.deps.Runtime.Start(ctx, spec)
	if err != nil {
		w.forget(id)
		w.mu.Lock()
		w.active = false
		w.notify()
		w.mu.Unlock()
		return "", err
	}
	w.mu.Lock()
	w.st.Running, w.st.Run, w.st.StartedAt = true, id, h.StartedAt
	w.st.Starts++
	w.st.LastError = ""
	w.notify()
	w.mu.Unlock()
	w.m.running.Set(1)
	w.m.starts.Inc()
	w.log.Info("idle workload started", "run", id, "image", w.cfg.Image, "container_id", h.ContainerID)
	return id, nil
}

// stop stops the run within the stop timeout and waits for its result.
func (w *Workload) stop(ctx context.Context, id string) (time.Duration, runtime.Result) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(w.cfg.StopTimeout)+30*time.Second)
	defer cancel()
	if err := w.deps.Runtime.Stop(ctx, id); err != nil && !errors.Is(err, runtime.ErrUnknownJob) {
		w.log.Warn("stop idle workload", "run", id, "err", err)
	}
	res, err := w.deps.Runtime.Wait(ctx, id)
	if err != nil {
		res = runtime.Result{JobID: id, Error: err.Error()}
	}
	took := time.Since(began)
	w.log.Info("idle workload stopped", "run", id, "took", took, "stop_timeout", time.Duration(w.cfg.StopTimeout))
	if took > time.Duration(w.cfg.StopTimeout) {
		w.log.Warn("idle workload took longer than stop_timeout to stop", "run", id, "took", took)
	}
	return took, res
}

// ended records the end of a run and forgets it.
func (w *Workload) ended(id string, res runtime.Result, stopTook time.Duration) {
	w.mu.Lock()
	w.active, w.st.Running = false, false
	if stopTook > 0 {
		w.st.LastStop = stopTook
	} else if !res.Succeeded() {
		w.st.LastError = fmt.Sprintf("run %s ended: exit %d %s", id, res.ExitCode, res.Error)
	}
	w.notify()
	w.mu.Unlock()
	w.m.running.Set(0)
	if stopTook > 0 {
		w.m.stopSeconds.Set(stopTook.Seconds())
	} else {
		w.log.Warn("idle workload exited by itself; restarting after the delay", "run", id, "exit_code", res.ExitCode, "err", res.Error, "in", time.Duration(w.cfg.RestartDelay))
	}
	w.forget(id)
}

func (w *Workload) forget(id string) {
	if f, ok := w.deps.Runtime.(forgetter); ok {
		if err := f.Forget(id); err != nil {
			w.log.Warn("forget idle run", "run", id, "err", err)
		}
	}
	_ = os.Remove(w.statePath())
}

func (w *Workload) setError(err error) {
	w.mu.Lock()
	w.st.LastError = err.Error()
	w.notify()
	w.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type metrics struct {
	running     prometheus.Gauge
	starts      prometheus.Counter
	stopSeconds prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gpunode_idle_running",
			Help: "1 while the operator's idle workload runs, 0 otherwise (no idle image, or a job has the rig).",
		}),
		starts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpunode_idle_starts_total",
			Help: "Runs of the idle workload started.",
		}),
		stopSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gpunode_idle_last_stop_seconds",
			Help: "How long the idle workload took to give the rig to the last job.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.running, m.starts, m.stopSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("idle metrics: %w", err)
		}
	}
	return m, nil
}
