package testkit

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a testing.TB that records Fatalf instead of stopping the test.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	cleanups []func()
	failed   bool
	logs     []string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.failed = true
	r.mu.Unlock()
	panic(r) // stands in for runtime.Goexit
}
func (r *recorder) Failed() bool     { return r.failed }
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

// run calls f with r and reports whether f stopped on Fatalf.
func (r *recorder) run(f func(testing.TB)) (stopped bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != r {
				panic(p)
			}
			stopped = true
		}
	}()
	f(r)
	return false
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		start := time.Now()
		r := &recorder{TB: t}
		if r.run(func(tb testing.TB) {
			Eventually(tb, time.Minute, func() bool { return calls.Add(1) == 5 }, "never")
		}) {
			t.Fatalf("Eventually failed: %s", r.fatal)
		}
		if n := calls.Load(); n != 5 {
			t.Fatalf("condition checked %d times, want 5", n)
		}
		if got, want := time.Since(start), MinTick+2*MinTick+4*MinTick+8*MinTick; got != want {
			t.Fatalf("waited %s, want %s (four pauses, each twice the last)", got, want)
		}
	})
}

func TestEventuallyFailsAfterTimeoutWithTheLatestState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b Buffer
		n := 0
		start := time.Now()
		r := &recorder{TB: t}
		stopped := r.run(func(tb testing.TB) {
			Eventually(tb, time.Second, func() bool { n++; fmt.Fprintf(&b, "%d ", n); return false },
				"job %s: %v %v", "7", &b, Lazy(func() string { return fmt.Sprintf("n=%d", n) }))
		})
		if !stopped {
			t.Fatal("Eventually returned although the condition never held")
		}
		if elapsed := time.Since(start); elapsed < time.Second || elapsed > time.Second+MaxTick {
			t.Fatalf("gave up after %s, want about 1s", elapsed)
		}
		want := fmt.Sprintf("n=%d", n)
		if !strings.Contains(r.fatal, "not within 1s: job 7: 1 2 3 ") || !strings.HasSuffix(r.fatal, want) {
			t.Fatalf("message %q: want the timeout, the format, the buffer and %s", r.fatal, want)
		}
	})
}

func TestLoggerSpeaksOnlyOnFailure(t *testing.T) {
	for _, failed := range []bool{false, true} {
		r := &recorder{TB: t}
		Logger(r).Info("pulled image", "job_id", "7")
		r.failed = failed
		for _, f := range r.cleanups {
			f()
		}
		if got := len(r.logs); failed != (got == 1) {
			t.Fatalf("failed=%v: %d log calls %q", failed, got, r.logs)
		}
		if failed && !strings.Contains(r.logs[0], `msg="pulled image" job_id=7`) {
			t.Fatalf("failure log %q lacks the record", r.logs[0])
		}
	}
}

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := len(b.String()); got != 800 {
		t.Fatalf("buffer holds %d bytes, want 800", got)
	}
}

func TestDiscardDropsEverything(t *testing.T) {
	if Discard().Enabled(t.Context(), 12) {
		t.Fatal("Discard logger enabled at error level")
	}
}
