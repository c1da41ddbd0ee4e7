// Package testkit holds what every package's tests share: waiting on a condition
// (Eventually), a logger that speaks only when the test fails (Logger), and a buffer
// that goroutines may write while the test reads it (Buffer). It is imported by
// _test.go files only.
package testkit

import (
	"bytes"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// The pause between two checks of Eventually's condition starts at MinTick and
// doubles up to MaxTick: a condition that holds soon is seen soon, and a long wait on a
// daemon or an engine does not poll it a hundred times a second.
const (
	MinTick = 5 * time.Millisecond
	MaxTick = 100 * time.Millisecond
)

// Eventually checks cond until it returns true, pausing between checks, and fails the
// test with the message format and args make if timeout passes first. Arguments are
// formatted when the test fails, so a Buffer or a Lazy among them shows its content at
// that moment.
//
// Inside a testing/synctest bubble the pauses cost no real time.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for tick := MinTick; !cond(); tick = min(2*tick, MaxTick) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(tick)
	}
}

// Lazy is a message computed when it is printed: pass one to Eventually to show the
// state the condition last saw.
type Lazy func() string

func (l Lazy) String() string { return l() }

// Buffer is a bytes.Buffer that is safe for concurrent use: one goroutine (a
// process's stderr, a log handler) writes while the test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Logger returns a logger at debug level whose records the test prints only if it
// fails, so passing tests stay quiet and failing ones show what the code logged.
// Records written after the test ends are dropped.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	var b Buffer
	t.Cleanup(func() {
		if t.Failed() {
			if s := b.String(); s != "" {
				t.Logf("log:\n%s", s)
			}
		}
	})
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Discard returns a logger that drops every record, for code whose logs no test
// failure would need.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
