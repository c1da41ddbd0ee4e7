// Package cpu is the CPU benchmark backend: GEMM, convolution (im2col + GEMM), RNN cells
// and a ring all-reduce across worker goroutines, on OpenBLAS through cgo (as DeepBench
// uses MKL on CPUs) or on pure-Go kernels: when libopenblas.so.0 is not installed (it is
// loaded at run time, so the binary does not need it to start), or when built with
// -tags noopenblas or without cgo. It runs anywhere and is the CI backend.
package cpu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gpunode/gpunode/benchmark"
)

// Version is the CPU backend's version, recorded in reports.
const Version = "1"

// Config configures the CPU backend.
type Config struct {
	// Threads is how many threads the kernels use and how many workers the all-reduce
	// spans; 0 means one per CPU.
	Threads int `toml:"threads"`
}

// Default returns the default configuration.
func Default() Config { return Config{} }

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.Threads < 0 || c.Threads > 4096 {
		errs = append(errs, fmt.Errorf("threads: %d, want 0 (one per CPU) to 4096", c.Threads))
	}
	return errs
}

// Backend runs problems on the CPU.
type Backend struct {
	threads int
}

// New returns a CPU backend.
func New(cfg Config) (*Backend, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("cpu backend: %w", errors.Join(errs...))
	}
	t := cfg.Threads
	if t == 0 {
		t = runtime.NumCPU()
	}
	return &Backend{threads: t}, nil
}

// Name is "cpu".
func (b *Backend) Name() string { return "cpu" }

// Harness names the backend and its BLAS.
func (b *Backend) Harness() string { return "cpu/" + Version + " " + blasName() }

// Capabilities: fp32 for every class; the all-reduce spans one worker per thread.
func (b *Backend) Capabilities(context.Context) (benchmark.Capabilities, error) {
	fp32 := []benchmark.Precision{benchmark.FP32}
	return benchmark.Capabilities{
		Precisions: map[benchmark.Class][]benchmark.Precision{
			benchmark.ClassGEMM: fp32, benchmark.ClassConv: fp32, benchmark.ClassRNN: fp32, benchmark.ClassAllReduce: fp32,
		},
		Workers: b.threads,
	}, nil
}

// Hardware describes the CPU.
func (b *Backend) Hardware(context.Context) (benchmark.Hardware, error) {
	hw := benchmark.Hardware{OS: runtime.GOOS + "/" + runtime.GOARCH, Cores: runtime.NumCPU(), Library: blasName()}
	hw.CPU = cpuinfo()["model name"]
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		hw.Kernel = strings.TrimSpace(string(k))
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				hw.MemoryMB = kb / 1024
			}
		}
	}
	return hw, nil
}

// Run runs every problem of the plan in turn.
func (b *Backend) Run(ctx context.Context, plan benchmark.Plan, progress func(benchmark.Result)) ([]benchmark.Result, error) {
	if err := plan.Timing.Validate(); err != nil {
		return nil, err
	}
	setThreads(b.threads)
	var out []benchmark.Result
	for _, p := range plan.Problems {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if err := p.Validate(); err != nil {
			return out, err
		}
		r := benchmark.Result{Problem: p, Device: "cpu"}
		if p.Class == benchmark.ClassAllReduce {
			r.Device = "rig"
		}
		if p.Precision != benchmark.FP32 {
			r.Skipped = fmt.Sprintf("the cpu backend runs fp32 only, not %s", p.Precision)
		} else {
			run := b.prepare(p)
			ms, err := measure(ctx, plan.Timing, run)
			if err != nil {
				return out, err
			}
			r.Warmup, r.Repeats = plan.Timing.Warmup, len(ms)
			r.MinMS, r.MedianMS, r.MaxMS = benchmark.Spread(ms)
		}
		out = append(out, r)
		if progress != nil {
			progress(r)
		}
	}
	return out, nil
}

// prepare allocates a problem's buffers with random inputs and returns one run of it.
func (b *Backend) prepare(p benchmark.Problem) func() {
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(s []float32) {
		for i := range s {
			s[i] = rng.Float32()*2 - 1
		}
	}
	switch p.Class {
	case benchmark.ClassGEMM:
		g := *p.GEMM
		a, bb, c := make([]float32, g.M*g.K), make([]float32, g.K*g.N), make([]float32, g.M*g.N)
		fill(a)
		fill(bb)
		lda, ldb := g.M, g.K
		if g.TransA {
			lda = g.K
		}
		if g.TransB {
			ldb = g.N
		}
		return func() { sgemm(g.TransA, g.TransB, g.M, g.N, g.K, 1, a, lda, bb, ldb, 0, c, g.M) }
	case benchmark.ClassConv:
		c := *p.Conv
		bufs := newConv(c, fill)
		return func() { conv2d(c, bufs) }
	case benchmark.ClassRNN:
		r := *p.RNN
		bufs := newRNN(r, fill)
		return func() { rnnForward(r, bufs) }
	case benchmark.ClassAllReduce:
		a := *p.AllReduce
		bufs := make([][]float32, a.Workers)
		for i := range bufs {
			// Zeros: repeated sums of random data would overflow over a thousand repeats,
			// and the arithmetic costs the same.
			bufs[i] = make([]float32, a.Floats)
		}
		return func() { ringAllReduce(bufs) }
	}
	return func() {}
}

// measure runs fn t.Warmup times untimed, then timed until it has t.MinRepeats runs and
// either t.MaxRepeats runs or t.MinTimeMS of measured time; it returns each run's time.
func measure(ctx context.Context, t benchmark.Timing, fn func()) ([]float64, error) {
	for i := 0; i < t.Warmup; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fn()
	}
	var ms []float64
	var total float64
	for len(ms) < t.MaxRepeats && (len(ms) < t.MinRepeats || total < t.MinTimeMS) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		fn()
		d := float64(time.Since(start).Nanoseconds()) / 1e6
		ms = append(ms, d)
		total += d
	}
	return ms, nil
}

// cpuinfo returns the first processor's fields of /proc/cpuinfo.
func cpuinfo() map[string]string {
	m := map[string]string{}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}
