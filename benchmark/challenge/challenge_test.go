package challenge

import (
	"testing"
	"time"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/cpu"
)

func cpuProver(t testing.TB) CPU {
	be, err := cpu.New(cpu.Config{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return CPU{Backend: be}
}

// run plays one challenge against a backend and verifies it; tm overrides the timing
// when non-zero.
func run(t testing.TB, be Backend, p Params, tm Timing) *Result {
	t.Helper()
	ch, err := NewChallenge(p, "rig", "challenger", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, cm, err := Commit(t.Context(), be, ch)
	if err != nil {
		t.Fatal(err)
	}
	if tm == (Timing{}) {
		tm = Timing{Elapsed: time.Since(start)}
	}
	q := NewQuery(p.N, DefaultRows)
	ans, err := s.Answer(q)
	if err != nil {
		t.Fatal(err)
	}
	return Verify(ch, cm, q, ans, tm, 0)
}

func TestHonestQuick(t *testing.T) {
	p := Params{N: 256, Precision: benchmark.FP32, Count: 1, Deadline: time.Minute}
	r := run(t, cpuProver(t), p, Timing{})
	if !r.Passed {
		t.Fatalf("%+v", r)
	}
	t.Logf("%+v", r)
}
