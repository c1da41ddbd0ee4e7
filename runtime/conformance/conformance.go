// Package conformance is the test suite every runtime.Runtime implementation must
// pass: running, results, logs, cancellation, timeouts, restart recovery, and the
// hardening that keeps an untrusted job from harming the host. An implementation's
// test calls Run with a Harness that opens it and names an image built from the probe
// program (runtime/conformance/probe; see BuildProbe).
package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpunode/gpunode/runtime"
)

// Options configure a runtime opened by a Harness.
type Options struct {
	// StateDir is where the runtime keeps what it needs to survive a restart.
	StateDir string
	// LogDir is where job logs go.
	LogDir string
	// DatasetAllowlist is the operator's allowlist of dataset directories.
	DatasetAllowlist []string
	// StopGrace is the time between SIGTERM and SIGKILL on Stop.
	StopGrace time.Duration
	// LogMaxBytes caps each job's log file.
	LogMaxBytes int64
}

// Harness adapts an implementation to the suite.
type Harness struct {
	// Open opens a runtime. Opening another with the same StateDir after closing the
	// first is a restart of the node. close must not stop running jobs.
	Open func(t testing.TB, o Options) (rt runtime.Runtime, close func())
	// Image runs the probe: /probe is the probe program, /suid a copy owned by root
	// with the setuid bit set.
	Image string
	// HostAddrs are host addresses a job without network must not reach (the
	// engine's bridge gateway, for instance).
	HostAddrs []string
}

// BuildProbe compiles the probe program statically (CGO_ENABLED=0) into a new temporary
// directory and returns the binary's path.
func BuildProbe(t testing.TB) string {
	t.Helper()
	_, file, _, _ := goruntime.Caller(0)
	dir := t.TempDir()
	out := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = filepath.Join(filepath.Dir(file), "probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, b)
	}
	return out
}

type suite struct {
	h    Harness
	base string
}

func (s *suite) options(t testing.TB) Options {
	d := t.TempDir()
	return Options{
		StateDir:    filepath.Join(d, "state"),
		LogDir:      filepath.Join(d, "logs"),
		StopGrace:   2 * time.Second,
		LogMaxBytes: 1 << 20,
	}
}

var seq atomic.Int64

func jobID(t testing.TB) string {
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	name = strings.TrimLeft(name, "-.")
	return fmt.Sprintf("%s-%d-%d", name, os.Getpid(), seq.Add(1))
}

func (s *suite) spec(t testing.TB, args ...string) runtime.Spec {
	return runtime.Spec{
		JobID:      jobID(t),
		Image:      s.h.Image,
		Command:    append([]string{"/probe"}, args...),
		OutputDir:  filepath.Join(t.TempDir(), "out"),
		RunTimeout: 2 * time.Minute,
		Resources:  runtime.Resources{MemoryBytes: 256 << 20, PIDs: 64, TmpBytes: 8 << 20},
	}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// run starts a spec and waits for its result and log.
func run(t testing.TB, rt runtime.Runtime, spec runtime.Spec) (runtime.Result, string) {
	t.Helper()
	ctx := ctxFor(t, 3*time.Minute)
	if _, err := rt.Start(ctx, spec); err != nil {
		t.Fatalf("start %s: %v", spec.JobID, err)
	}
	res, err := rt.Wait(ctx, spec.JobID)
	if err != nil {
		t.Fatalf("wait %s: %v", spec.JobID, err)
	}
	return res, readLog(t, rt, spec.JobID)
}

func readLog(t testing.TB, rt runtime.Runtime, jobID string) string {
	t.Helper()
	rc, err := rt.Logs(ctxFor(t, time.Minute), jobID, false)
	if err != nil {
		t.Fatalf("logs %s: %v", jobID, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("logs %s: %v", jobID, err)
	}
	return string(b)
}

// lines maps each probe verb to the lines it printed.
func lines(log string) map[string][]string {
	m := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok {
			m[k] = append(m[k], v)
		}
	}
	return m
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	s := &suite{h: h}
	open := func(t *testing.T, o Options) runtime.Runtime {
		rt, closeFn := h.Open(t, o)
		t.Cleanup(closeFn)
		return rt
	}
	t.Run("ExitCodeOutputAndLog", func(t *testing.T) {
		t.Parallel()
		rt := open(t, s.options(t))
		spec := s.spec(t, "echo:hello", "stderr:oops", "env:FOO", "write:/out/result=42", "exit:3")
		spec.Env = []string{"FOO=bar"}
		res, log := run(t, rt, spec)
		if res.ExitCode != 3 || res.OOMKilled || res.TimedOut || res.Cancelled || res.Error != "" {
			t.Errorf("result = %+v, want exit code 3 and nothing else", res)
		}
		for _, want := range []string{"hello\n", "oops\n", "env: FOO=bar\n"} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		b, err := os.ReadFile(filepath.Join(res.OutputDir, "result"))
		if err != nil || string(b) != "42\n" {
			t.Errorf("output file = %q, %v; want 42", b, err)
		}
		if res.WallTime < 0 || res.StartedAt.IsZero() || res.FinishedAt.Before(res.StartedAt) || res.FinishedAt.Sub(res.StartedAt) != res.WallTime {
			t.Errorf("times = %v..%v (%v)", res.StartedAt, res.FinishedAt, res.WallTime)
		}
		if res.LogFile == "" {
			t.Error("result has no log file")
		}
	})
	t.Run("NeverStartsTwice", func(t *testing.T) {
		t.Parallel()
		rt := open(t, s.options(t))
		spec := s.spec(t, "append:/out/runs=run", "sleep:1s")
		ctx := ctxFor(t, time.Minute)
		if _, err := rt.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Start(ctx, spec); !errors.Is(err, runtime.ErrJobExists) {
			t.Errorf("second start while running: %v, want ErrJobExists", err)
		}
		if _, err := rt.Wait(ctx, spec.JobID); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Start(ctx, spec); !errors.Is(err, runtime.ErrJobExists) {
			t.Errorf("start after finish: %v, want ErrJobExists", err)
		}
		if b, _ := os.ReadFile(filepath.Join(spec.OutputDir, "runs")); string(b) != "run\n" {
			t.Errorf("job ran %q, want once", b)
		}
	})
	t.Run("StopSendsSIGTERM", func(t *testing.T) {
		t.Parallel()
		rt := open(t, s.options(t))
		spec := s.spec(t, "trapterm", "echo:ready", "sleep:60s")
		ctx := ctxFor(t, time.Minute)
		if _, err := rt.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, rt, spec.JobID, "ready")
		if err := rt.Stop(ctx, spec.JobID); err != nil {
			t.Fatal(err)
		}
		res, err := rt.Wait(ctx, spec.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Cancelled || res.ExitCode != 143 {
			t.Errorf("result = %+v, want cancelled with exit code 143 from the job's own handler", res)
		}
		if log := readLog(t, rt, spec.JobID); !strings.Contains(log, "trapterm: got SIGTERM") {
			t.Errorf("job did not see SIGTERM:\n%s", log)
		}
	})
	t.Run("StopKillsAfterGrace", func(t *testing.T) {
		t.Parallel()
		o := s.options(t)
		rt := open(t, o)
		spec := s.spec(t, "ignoreterm", "echo:ready", "sleep:60s")
		ctx := ctxFor(t, time.Minute)
		if _, err := rt.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, rt, spec.JobID, "ready")
		t0 := time.Now()
		if err := rt.Stop(ctx, spec.JobID); err != nil {
			t.Fatal(err)
		}
		res, err := rt.Wait(ctx, spec.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Cancelled || res.ExitCode != 137 {
			t.Errorf("result = %+v, want cancelled and killed (137)", res)
		}
		if d := time.Since(t0); d < o.StopGrace {
			t.Errorf("killed after %v, before the grace period %v", d, o.StopGrace)
		}
	})
	t.Run("RunTimeout", func(t *testing.T) {
		t.Parallel()
		rt := open(t, s.options(t))
		spec := s.spec(t, "sleep:60s")
		spec.RunTimeout = 2 * time.Second
		res, _ := run(t, rt, spec)
		if !res.TimedOut || res.Cancelled || res.Succeeded() {
			t.Errorf("result = %+v, want timed out", res)
		}
		if res.WallTime > 30*time.Second {
			t.Errorf("ran %v despite a 2s run timeout", res.WallTime)
		}
	})
	t.Run("LogCapped", func(t *testing.T) {
		t.Parallel()
		o := s.options(t)
		o.LogMaxBytes = 64 << 10
		rt := open(t, o)
		res, log := run(t, rt, s.spec(t, "spam:20000", "echo:end")) // 2 MB
		if res.ExitCode != 0 {
			t.Errorf("result = %+v", res)
		}
		if len(log) > int(o.LogMaxBytes)+200 || len(log) < int(o.LogMaxBytes) {
			t.Errorf("log is %d bytes, want about the cap %d", len(log), o.LogMaxBytes)
		}
		if !strings.Contains(log, "truncated") {
			t.Error("log does not say it was truncated")
		}
	})
	t.Run("LogsFollow", func(t *testing.T) {
		t.Parallel()
		rt := open(t, s.options(t))
		spec := s.spec(t, "echo:first", "sleep:2s", "echo:last")
		ctx := ctxFor(t, time.Minute)
		if _, err := rt.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		rc, err := rt.Logs(ctx, spec.JobID, true)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "first\nlast\n" {
			t.Errorf("followed log = %q, want first and last", b)
		}
	})
	t.Run("RecoverRunning", func(t *testing.T) {
		t.Parallel()
		o := s.options(t)
		rt, closeFn := h.Open(t, o)
		spec := s.spec(t, "append:/out/runs=run", "echo:before", "sleep:4s", "echo:after")
		ctx := ctxFor(t, 2*time.Minute)
		if _, err := rt.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		closeFn()
		rt2 := open(t, o)
		hs, err := rt2.Recover(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) != 1 || hs[0].JobID != spec.JobID {
			t.Errorf("recovered %+v, want the running job", hs)
		}
		if _, err := rt2.Start(ctx, spec); !errors.Is(err, runtime.ErrJobExists) {
			t.Errorf("start after restart: %v, want ErrJobExists", err)
		}
		res, err := rt2.Wait(ctx, spec.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Succeeded() {
			t.Errorf("result = %+v", res)
		}
		if log := readLog(t, rt2, spec.JobID); log != "append: ok /out/runs\nbefore\nafter\n" {
			t.Errorf("log = %q", log)
		}
		if b, _ := os.ReadFile(filepath.Join(spec.OutputDir, "runs")); string(b) != "run\n" {
			t.Errorf("job ran %q, want once", b)
		}
	})
	t.Run("RecoverFinishedWhileDown", func(t *testing.T) {
		t.Parallel()
		o := s.options(t)
		rt, closeFn := h.Open(t, o)
		spec := s.spec(t, "echo:done", "write:/out/result=ok", "exit:7")
		ctx := ctxFor(t, 2*time.Minute)
		if _, err := rt.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		closeFn()
		time.Sleep(3 * time.Second) // the job exits while no runtime watches it
		rt2 := open(t, o)
		if _, err := rt2.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := rt2.Wait(ctx, spec.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 7 || res.Error != "" {
			t.Errorf("result = %+v, want exit code 7", res)
		}
		if log := readLog(t, rt2, spec.JobID); log != "done\nwrite: ok /out/result\n" {
			t.Errorf("log = %q", log)
		}
		if b, _ := os.ReadFile(filepath.Join(spec.OutputDir, "result")); string(b) != "ok\n" {
			t.Errorf("output = %q", b)
		}
	})
	t.Run("Escape", func(t *testing.T) { s.escape(t, open) })
}

func waitForLog(t testing.TB, rt runtime.Runtime, jobID, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(readLog(t, rt, jobID), want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s never logged %q", jobID, want)
}

// hostListener accepts on a host loopback port and counts connections, which must
// stay zero.
func hostListener(t testing.TB) (port int, accepted *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, accepted
}
