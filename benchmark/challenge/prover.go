package challenge

import (
	"context"
	"fmt"
	"time"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/cpu"
)

// Backend computes a challenge's products on the device under test.
type Backend interface {
	// Compute returns C_t = A_t·B_t for t = 0..p.Count-1, row-major n×n fp32, with A_t
	// and B_t generated from seed (Matrices).
	Compute(ctx context.Context, seed [32]byte, p Params) ([][]float32, error)
	// Device names the device, as the commitment reports it.
	Device() string
}

// CPU is the Go prover: the CPU benchmark backend's sgemm (OpenBLAS or pure Go).
type CPU struct {
	Backend *cpu.Backend
}

// Device is "cpu".
func (CPU) Device() string { return "cpu" }

// Compute generates A and B and multiplies them on the CPU backend. It runs fp32 only.
func (c CPU) Compute(ctx context.Context, seed [32]byte, p Params) ([][]float32, error) {
	if p.Precision != benchmark.FP32 {
		return nil, fmt.Errorf("cpu prover: %s: the cpu backend runs fp32 only", p.Precision)
	}
	out := make([][]float32, p.Count)
	for t := range out {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a, b := Matrices(seed, p.N, p.Precision, t)
		out[t] = make([]float32, p.N*p.N)
		c.Backend.MatMul(a, b, out[t], p.N)
	}
	return out, nil
}

// Session is a rig's state between its commitment and its answer.
type Session struct {
	n     int
	cs    [][]float32
	trees []*tree
}

// Commit computes the challenge's products on the backend and commits to them. The
// caller has checked the challenge (Guard).
func Commit(ctx context.Context, be Backend, ch *Challenge) (*Session, *Commitment, error) {
	start := time.Now()
	cs, err := be.Compute(ctx, ch.Seed, ch.Params)
	if err != nil {
		return nil, nil, err
	}
	if len(cs) != ch.Count {
		return nil, nil, fmt.Errorf("prover %s: %d products, want %d", be.Device(), len(cs), ch.Count)
	}
	s := &Session{n: ch.N, cs: cs}
	m := &Commitment{Device: be.Device()}
	for t, c := range cs {
		if len(c) != ch.N*ch.N {
			return nil, nil, fmt.Errorf("prover %s: product %d has %d values, want %d", be.Device(), t, len(c), ch.N*ch.N)
		}
		tr := newTree(c, ch.N)
		s.trees = append(s.trees, tr)
		m.Roots = append(m.Roots, tr.root())
	}
	m.ProverMS = uint32(min(time.Since(start).Milliseconds(), 1<<31))
	return s, m, nil
}

// CheckQuery reports whether a query fits a challenge: 1..min(n, MaxRows) distinct rows
// below n.
func CheckQuery(q *Query, n int) error {
	if len(q.Rows) < 1 || len(q.Rows) > min(n, MaxRows) {
		return fmt.Errorf("%w: %d rows, want 1 to %d", ErrBadMessage, len(q.Rows), min(n, MaxRows))
	}
	seen := make(map[uint32]bool, len(q.Rows))
	for _, i := range q.Rows {
		if int(i) >= n || seen[i] {
			return fmt.Errorf("%w: row %d out of range or repeated", ErrBadMessage, i)
		}
		seen[i] = true
	}
	return nil
}

// Answer answers a query: y = C·r in float64 for each product and the asked rows with
// their proofs.
func (s *Session) Answer(q *Query) (*Answer, error) {
	if err := CheckQuery(q, s.n); err != nil {
		return nil, err
	}
	a := &Answer{N: s.n}
	for t, c := range s.cs {
		r := vector(q.VectorSeed, s.n, t)
		p := ProductAnswer{Y: matVec(c, r, s.n)}
		for _, i := range q.Rows {
			p.Rows = append(p.Rows, OpenRow{Index: i, Values: c[int(i)*s.n : int(i+1)*s.n], Proof: s.trees[t].proof(int(i))})
		}
		a.Products = append(a.Products, p)
	}
	return a, nil
}

// matVec returns c·r in float64 (c row-major n×n fp32).
func matVec(c []float32, r []float64, n int) []float64 {
	y := make([]float64, n)
	parallelRows(n, func(r0, r1 int) {
		for i := r0; i < r1; i++ {
			y[i] = dot32(c[i*n:(i+1)*n], r)
		}
	})
	return y
}

// dot32 is Σ x_j r_j in float64, in four interleaved partial sums (PROTOCOL.md allows any
// order: the check's tolerance covers float64 rounding).
func dot32(x []float32, r []float64) float64 {
	r = r[:len(x)]
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		s0 += float64(x[j]) * r[j]
		s1 += float64(x[j+1]) * r[j+1]
		s2 += float64(x[j+2]) * r[j+2]
		s3 += float64(x[j+3]) * r[j+3]
	}
	for ; j < len(x); j++ {
		s0 += float64(x[j]) * r[j]
	}
	return (s0 + s1) + (s2 + s3)
}
