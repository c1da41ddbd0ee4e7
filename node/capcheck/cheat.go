//go:build challengecheat

package capcheck

import (
	"context"
	"math"

	"github.com/gpunode/gpunode/benchmark/challenge"
)

// Prover, in a build with the test-only tag challengecheat, cheats: it rounds A and B to
// bf16 before multiplying, as a device computing in a lower precision than claimed
// would. The process-level tests start such a daemon to see it fail.
func Prover(p challenge.Backend) challenge.Backend { return cheat{p} }

type cheat struct{ challenge.Backend }

func (c cheat) Device() string { return c.Backend.Device() }

func (c cheat) Compute(ctx context.Context, seed [32]byte, p challenge.Params) ([][]float32, error) {
	cp, ok := c.Backend.(challenge.CPU)
	if !ok {
		return c.Backend.Compute(ctx, seed, p)
	}
	out := make([][]float32, p.Count)
	for t := range out {
		a, b := challenge.Matrices(seed, p.N, p.Precision, t)
		for i := range a {
			a[i], b[i] = bf16(a[i]), bf16(b[i])
		}
		out[t] = make([]float32, p.N*p.N)
		cp.Backend.MatMul(a, b, out[t], p.N)
	}
	return out, nil
}

func bf16(x float32) float32 {
	u := math.Float32bits(x)
	u = (u + 0x7fff + (u>>16)&1) &^ 0xffff
	return math.Float32frombits(u)
}
