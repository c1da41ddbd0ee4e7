package benchmark

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrBusy means a benchmark is already running.
var ErrBusy = errors.New("a benchmark is already running")

// Config configures the node's benchmark service.
type Config struct {
	// Profile is what the daemon runs: "quick" or "full".
	Profile Profile `toml:"profile"`
	// Backend is the backend the daemon runs: "cpu", "cuda" or "torch-cpu".
	Backend string `toml:"backend"`
	// OnStart measures the rig when the daemon starts and its report is missing, was made
	// with another backend, or was made on other hardware or another driver (its
	// fingerprint differs): a rig never advertises a score it no longer has.
	OnStart bool `toml:"on_start"`
	// StateDir keeps the last signed report (last-report.json) across restarts.
	StateDir string `toml:"state_dir"`
	// Timeout bounds one benchmark run; a hung GPU or harness fails it instead of
	// blocking the next one forever.
	Timeout time.Duration `toml:"timeout"`
}

// Default returns the default configuration.
func Default() Config {
	return Config{Profile: Quick, Backend: "cpu", OnStart: true, StateDir: "/var/lib/gpunode/benchmark", Timeout: 2 * time.Hour}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.Profile != Quick && c.Profile != Full {
		errs = append(errs, fmt.Errorf("profile: %q, want quick or full", c.Profile))
	}
	if c.Backend == "" {
		errs = append(errs, errors.New("backend: must not be empty (cpu, cuda or torch-cpu)"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state_dir: must not be empty"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be positive"))
	}
	return errs
}

// Service runs benchmarks for the node, keeps the last signed report, serves it on the
// control API and exports it as metrics.
type Service struct {
	cfg      Config
	log      *slog.Logger
	key      crypto.Signer
	backends map[string]Backend

	idle       func() bool   // nil: always idle
	measured   chan struct{} // closed once the start is settled
	settleOnce sync.Once
	reports    chan struct{} // a value after each new report

	mu      sync.Mutex
	running bool
	last    *Report
	loaded  time.Time // modification time of the kept report last read
}

// New returns a service signing with key (the node's Ed25519 identity) and running the
// given backends, by name.
func New(cfg Config, log *slog.Logger, key crypto.Signer, backends ...Backend) (*Service, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("benchmark config: %w", errors.Join(errs...))
	}
	s := &Service{cfg: cfg, log: log.With("component", "benchmark"), key: key, backends: map[string]Backend{},
		measured: make(chan struct{}), reports: make(chan struct{}, 1)}
	for _, b := range backends {
		s.backends[b.Name()] = b
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) statePath() string { return filepath.Join(s.cfg.StateDir, "last-report.json") }

// load reads the kept report if it changed since it was last read (`gpunode bench` may
// have written a new one); one that does not verify is set aside, not trusted.
func (s *Service) load() error {
	fi, err := os.Stat(s.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("benchmark state: %w", err)
	}
	s.mu.Lock()
	same := fi.ModTime().Equal(s.loaded)
	s.mu.Unlock()
	if same {
		return nil
	}
	b, err := os.ReadFile(s.statePath())
	if err != nil {
		return fmt.Errorf("benchmark state: %w", err)
	}
	r, err := DecodeReport(bytes.NewReader(b))
	if err == nil {
		err = r.Verify()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = fi.ModTime()
	if err != nil {
		s.log.Warn("kept benchmark report does not verify; ignoring it", "path", s.statePath(), "err", err)
		s.last = nil
		return nil
	}
	s.last = r
	return nil
}

// Last returns the last report, or nil.
func (s *Service) Last() *Report {
	if err := s.load(); err != nil {
		s.log.Warn("read kept benchmark report", "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Summary returns the last report's summary for the node's status, or nil.
func (s *Service) Summary() *Summary {
	r := s.Last()
	if r == nil {
		return nil
	}
	sum := r.Summary()
	return &sum
}

// Run measures the rig at start when OnStart says so and the report is missing or stale
// (see StartReason), waiting until the rig is idle, then waits for ctx. Cancellation is
// not an error. Measured is closed once the start is settled either way.
func (s *Service) Run(ctx context.Context) error {
	defer s.settle()
	if s.cfg.OnStart {
		s.measureAtStart(ctx)
	}
	s.settle()
	<-ctx.Done()
	return nil
}

// Start attempts: a benchmark that fails this often at start is left to the operator.
const startAttempts = 3

// IdlePoll is how often the benchmark at start looks again whether the rig is idle.
var IdlePoll = 10 * time.Second

func (s *Service) measureAtStart(ctx context.Context) {
	why := s.StartReason(ctx)
	if why == "" {
		return
	}
	s.log.Info("measuring the rig before advertising it", "why", why, "profile", s.cfg.Profile, "backend", s.cfg.Backend)
	for attempt := 1; attempt <= startAttempts; {
		if s.idle == nil || s.idle() {
			_, err := s.Benchmark(ctx, s.cfg.Profile, s.cfg.Backend, s.logProgress())
			if err == nil || ctx.Err() != nil {
				return
			}
			s.log.Warn("benchmark at start failed", "attempt", attempt, "of", startAttempts, "err", err)
			attempt++
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(IdlePoll):
		}
	}
	s.log.Error("the rig could not be measured at start: it advertises no score; run `gpunode bench` once the cause is fixed")
}

// logProgress logs a benchmark's progress at every tenth of its problems, so that an
// operator watching the log of a starting rig sees what it is doing.
func (s *Service) logProgress() func(done, total int, r Result) {
	last := -1
	return func(done, total int, r Result) {
		if total == 0 {
			return
		}
		if tenth := done * 10 / total; tenth != last {
			last = tenth
			s.log.Info("benchmark progress", "done", done, "of", total, "last_problem", r.Problem.ID())
		}
	}
}

// StartReason says why the rig should be measured now, or "" when its report is current:
// none yet, made with another backend, or made on other hardware or another driver.
func (s *Service) StartReason(ctx context.Context) string {
	r := s.Last()
	if r == nil {
		return "no benchmark report yet"
	}
	if r.Backend != s.cfg.Backend {
		return fmt.Sprintf("the report was made with the %s backend, this node measures with %s", r.Backend, s.cfg.Backend)
	}
	b, ok := s.backends[s.cfg.Backend]
	if !ok {
		return ""
	}
	hw, err := b.Hardware(ctx)
	if err != nil {
		s.log.Warn("read the rig's hardware to compare with the report", "err", err)
		return ""
	}
	if fp := hw.Fingerprint(); fp != r.Fingerprint {
		return fmt.Sprintf("the hardware or driver changed since the report (fingerprint %s, now %s)", r.Fingerprint, fp)
	}
	return ""
}

// SetIdle makes the benchmark at start wait until idle says the rig runs no job: a
// benchmark beside a paying job slows it and signs a low score. Call it before Run.
func (s *Service) SetIdle(idle func() bool) { s.idle = idle }

// Measured is closed once the start is settled: the rig was measured, needed no
// measuring, could not be measured, or the service stopped.
func (s *Service) Measured() <-chan struct{} { return s.measured }

// NewReports receives a value after each new report (coalesced): the node registers it.
func (s *Service) NewReports() <-chan struct{} { return s.reports }

func (s *Service) settle() { s.settleOnce.Do(func() { close(s.measured) }) }

// Benchmark runs a profile on a backend, signs the report, keeps it as the last report
// and returns it.
func (s *Service) Benchmark(ctx context.Context, profile Profile, backend string, progress func(done, total int, r Result)) (*Report, error) {
	b, ok := s.backends[backend]
	if !ok {
		var names []string
		for n := range s.backends {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("unknown benchmark backend %q (this node has %v)", backend, names)
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return nil, ErrBusy
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	start := time.Now()
	s.log.Info("benchmark started", "profile", profile, "backend", backend)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	r, err := Run(ctx, b, profile, progress)
	if err != nil {
		return nil, err
	}
	if err := r.Sign(s.key); err != nil {
		return nil, err
	}
	if err := s.save(r); err != nil {
		return nil, err
	}
	fi, statErr := os.Stat(s.statePath())
	s.mu.Lock()
	s.last = r
	if statErr == nil {
		s.loaded = fi.ModTime()
	}
	s.mu.Unlock()
	s.log.Info("benchmark done", "profile", profile, "backend", backend, "rig_score_tflops", r.Scores.Rig, "duration", time.Since(start).Round(time.Millisecond))
	select {
	case s.reports <- struct{}{}:
	default:
	}
	return r, nil
}

// save keeps r exactly as Summary hashes it.
func (s *Service) save(r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("benchmark state: %w", err)
	}
	tmp := s.statePath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("benchmark state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("benchmark state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("benchmark state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("benchmark state: %w", err)
	}
	if err := os.Rename(tmp, s.statePath()); err != nil {
		return fmt.Errorf("benchmark state: %w", err)
	}
	return nil
}

// Register exports the last report as metrics, read at scrape time.
func (s *Service) Register(reg prometheus.Registerer) error {
	return reg.Register(collector{s})
}

var (
	descTFLOPS = prometheus.NewDesc("gpunode_benchmark_tflops",
		"Geometric mean TFLOPS of the last benchmark per problem class, precision and device.", []string{"class", "precision", "gpu"}, nil)
	descScore = prometheus.NewDesc("gpunode_benchmark_score",
		"Benchmark score (TFLOPS) per device; gpu=\"rig\" is the rig's total, its DL hashrate.", []string{"gpu"}, nil)
	descBusBW = prometheus.NewDesc("gpunode_benchmark_allreduce_busbw_gigabytes_per_second",
		"Geometric mean all-reduce bus bandwidth of the last benchmark.", nil, nil)
	descTime = prometheus.NewDesc("gpunode_benchmark_timestamp_seconds",
		"When the last benchmark report was made.", nil, nil)
)

type collector struct{ s *Service }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTFLOPS, descScore, descBusBW, descTime} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.Last()
	if r == nil {
		return
	}
	for _, cs := range r.Scores.Classes {
		if cs.Class == ClassAllReduce {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descTFLOPS, prometheus.GaugeValue, cs.Value, string(cs.Class), string(cs.Precision), cs.Device)
	}
	for _, d := range r.Scores.Devices {
		ch <- prometheus.MustNewConstMetric(descScore, prometheus.GaugeValue, d.Score, d.Device)
	}
	ch <- prometheus.MustNewConstMetric(descScore, prometheus.GaugeValue, r.Scores.Rig, "rig")
	if r.Scores.AllReduceBusBW > 0 {
		ch <- prometheus.MustNewConstMetric(descBusBW, prometheus.GaugeValue, r.Scores.AllReduceBusBW)
	}
	ch <- prometheus.MustNewConstMetric(descTime, prometheus.GaugeValue, float64(r.CreatedAt.UnixNano())/1e9)
}

// Defaults are the profile and backend a run takes when its caller names none.
func (s *Service) Defaults() (Profile, string) { return s.cfg.Profile, s.cfg.Backend }
