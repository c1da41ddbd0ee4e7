package challenge

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/cpu"
)

// cpuTime is the CPU time of all the process's threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkChallenge prints the verifier's CPU time beside the prover's (goal: verifier
// ≤ 2 % of prover) and the challenger's stamp cost, at the sizes a CPU rig is challenged
// with. Run: go test -run '^$' -bench Challenge ./benchmark/challenge
func BenchmarkChallenge(b *testing.B) {
	be := CPU{Backend: mustCPU(b, 0)}
	for i := 0; i < b.N; i++ {
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(w, "n\tprover CPU\tprover wall\tverifier CPU\tverifier/prover\tstamp bits\tstamp CPU\tstamp/prover\tverdict\t\n")
		for _, n := range []int{2048, 4096, 8192} {
			p := Params{N: n, Precision: benchmark.FP32, Count: 1, Deadline: 10 * time.Minute}
			c0 := cpuTime()
			ch, err := NewChallenge(p, "rig", "challenger", time.Now())
			if err != nil {
				b.Fatal(err)
			}
			stamp := cpuTime() - c0
			c0, t0 := cpuTime(), time.Now()
			s, cm, err := Commit(b.Context(), be, ch)
			if err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(t0)
			q := NewQuery(n, DefaultRows)
			ans, err := s.Answer(q)
			if err != nil {
				b.Fatal(err)
			}
			prover := cpuTime() - c0
			proverWall := time.Since(t0)
			c0 = cpuTime()
			res := Verify(ch, cm, q, ans, Timing{Elapsed: elapsed}, 0)
			verifier := cpuTime() - c0
			if !res.Passed {
				b.Fatalf("n=%d: honest prover failed: %s", n, res.Reason)
			}
			ratio := verifier.Seconds() / prover.Seconds()
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%.2f%%\t%d\t%s\t%.4f%%\tpassed\t\n", n, prover.Round(time.Millisecond), proverWall.Round(time.Millisecond),
				verifier.Round(time.Millisecond), 100*ratio, p.StampBits(), stamp.Round(time.Microsecond), 100*stamp.Seconds()/prover.Seconds())
			b.ReportMetric(ratio, fmt.Sprintf("verifier/prover-n%d", n))
		}
		w.Flush()
	}
}

func mustCPU(tb testing.TB, threads int) *cpu.Backend {
	be, err := cpu.New(cpu.Config{Threads: threads})
	if err != nil {
		tb.Fatal(err)
	}
	return be
}

// BenchmarkChallengeVsBackend prints the throughput a challenge verifies over a connection
// beside the CPU backend's own benchmark figure for the same shape and precision (goal:
// within 10 %). The two are interleaved, five rounds each, and each keeps its best and its
// median: other processes on a shared machine slow both alike. The verified figure
// includes what the benchmark's does not: generating A and B and hashing C's rows.
func BenchmarkChallengeVsBackend(b *testing.B) {
	be := mustCPU(b, 0)
	const n, rounds = 4096, 5
	plan := benchmark.Plan{Timing: benchmark.Timing{Warmup: 1, MinRepeats: 1, MaxRepeats: 1},
		Problems: []benchmark.Problem{{Class: benchmark.ClassGEMM, Set: benchmark.SetTraining, Precision: benchmark.FP32, GEMM: &benchmark.GEMM{M: n, N: n, K: n}}}}
	p := Params{N: n, Precision: benchmark.FP32, Count: 1, Deadline: 10 * time.Minute}
	g := NewGuard(GuardConfig{Self: "rig", PeerEvery: time.Nanosecond, PeerBurst: rounds, TotalEvery: time.Nanosecond, TotalBurst: rounds, MaxN: MaxN, MaxCount: MaxCount, MaxPeers: 2}, nil)
	for i := 0; i < b.N; i++ {
		var verified, own []float64
		for range rounds {
			res, err := be.Run(b.Context(), plan, nil)
			if err != nil {
				b.Fatal(err)
			}
			own = append(own, plan.Problems[0].FLOPs()/(res[0].MinMS/1e3)/1e12)
			x, y := net.Pipe()
			go Serve(context.Background(), y, "challenger", CPU{Backend: be}, g, nil)
			ex, err := Run(b.Context(), x, p, "rig", "challenger", Options{})
			x.Close()
			y.Close()
			if err != nil || !ex.Result.Passed {
				b.Fatalf("challenge: %v %+v", err, ex)
			}
			verified = append(verified, ex.Result.TFLOPS)
		}
		slices.Sort(verified)
		slices.Sort(own)
		bv, bo := verified[rounds-1], own[rounds-1]
		mv, mo := verified[rounds/2], own[rounds/2]
		fmt.Printf("n=%d fp32 cpu, best of %d: verified by challenge %.4f TFLOPS, backend's own benchmark %.4f TFLOPS: %.1f%%\n", n, rounds, bv, bo, 100*bv/bo)
		fmt.Printf("n=%d fp32 cpu, median:    verified by challenge %.4f TFLOPS, backend's own benchmark %.4f TFLOPS: %.1f%%\n", n, mv, mo, 100*mv/mo)
		b.ReportMetric(bv/bo, "verified/own")
	}
}

// BenchmarkVerifierOnly times the verifier's O(n²) pass alone, in CPU time per generated
// element (n² per product: B's).
func BenchmarkVerifierOnly(b *testing.B) {
	const n = 4096
	r := vector([32]byte{2}, n, 0)
	for i := 0; i < b.N; i++ {
		c0 := cpuTime()
		freivalds([32]byte{1}, n, benchmark.FP32, 0, r, NewQuery(n, DefaultRows).Rows, DefaultFull)
		b.ReportMetric(float64(cpuTime()-c0)/(n*n), "cpu-ns/element")
	}
}
