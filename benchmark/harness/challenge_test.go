//go:build integration

package harness

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/challenge"
	"github.com/gpunode/gpunode/benchmark/cpu"
	"github.com/gpunode/gpunode/internal/testenv"
)

func floatsHash(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestChallengeInContainer runs the torch prover in the real harness container on a
// challenge: its A and B are bit-identical to Go's (SHA-256), its C is bit-identical to
// the Go CPU prover's (both run OpenBLAS's sgemm on one thread here; PROTOCOL.md says why
// other BLAS builds may differ in the last bits, which the tolerances absorb), and its
// answer passes the Go verifier.
func TestChallengeInContainer(t *testing.T) {
	testenv.RequireDocker(t)
	requireTorch(t)
	image := buildCIImage(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var mounts []string
	for _, m := range ciHostMounts {
		if _, err := os.Stat(m); err == nil {
			mounts = append(mounts, m)
		}
	}
	b, err := New(Config{Device: "cpu", Image: image, Python: hostPython, HostMounts: mounts, Threads: 1}, dockerContainers{cli})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	p := challenge.Params{N: 256, Precision: benchmark.FP32, Count: 2, Deadline: 3 * time.Minute}
	var seed [32]byte
	rand.Read(seed[:])
	out, err := b.RunChallenge(ctx, seed, p, true)
	if err != nil {
		t.Fatal(err)
	}
	be, err := cpu.New(cpu.Config{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	goC, err := challenge.CPU{Backend: be}.Compute(ctx, seed, p)
	if err != nil {
		t.Fatal(err)
	}
	for k := range p.Count {
		a, bm := challenge.Matrices(seed, p.N, p.Precision, k)
		if out.AHash[k] != floatsHash(a) || out.BHash[k] != floatsHash(bm) {
			t.Fatalf("product %d: torch's A or B differs from Go's", k)
		}
		same, worst := 0, 0.0
		for i := range p.N {
			var alpha float64
			for _, v := range a[i*p.N : (i+1)*p.N] {
				alpha += math.Abs(float64(v))
			}
			for j := range p.N {
				x, y := out.Products[k][i*p.N+j], goC[k][i*p.N+j]
				if x == y {
					same++
				}
				worst = max(worst, math.Abs(float64(x-y))/(0x1p-24*alpha))
			}
		}
		t.Logf("product %d: %d of %d values bit-identical to Go's; largest difference %.3g units of 2⁻²⁴·Σ|A_i|", k, same, p.N*p.N, worst)
		if same != p.N*p.N {
			t.Errorf("product %d: torch's C differs from Go's in %d values (by up to %.3g units): are torch and the CPU backend on different BLAS builds?", k, p.N*p.N-same, worst)
		}
	}
	// The whole exchange with the torch prover (a second run, through challenge.Backend).
	ch, err := challenge.NewChallenge(p, "rig", "challenger", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, cm, err := challenge.Commit(ctx, Prover{b}, ch)
	if err != nil {
		t.Fatal(err)
	}
	q := challenge.NewQuery(p.N, challenge.DefaultRows)
	ans, err := s.Answer(q)
	if err != nil {
		t.Fatal(err)
	}
	if r := challenge.Verify(ch, cm, q, ans, challenge.Timing{Elapsed: time.Second}, 0); !r.Passed || cm.Device != "torch-cpu" {
		t.Fatalf("torch prover: %s %s: %s", cm.Device, r.Failed, r.Reason)
	}
}
