package challenge

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/gpunode/gpunode/benchmark"
)

// Check names the verifier check an answer failed.
type Check string

// Checks, in the order the verifier runs them.
const (
	CheckShape       Check = "shape"       // the messages do not fit the challenge
	CheckLate        Check = "late"        // the commitment came after the deadline, or faster than the round trip
	CheckProof       Check = "proof"       // an opened row is not under the committed root
	CheckConsistency Check = "consistency" // an opened row's C_i·r is not the answered y_i
	CheckFreivalds   Check = "freivalds"   // y = C·r is not A(B r) within the claimed precision's tolerance
	CheckRow         Check = "row"         // a recomputed row is not A_i·B within the claimed precision's tolerance
)

// Timing is what the challenger measured: from sending the challenge to receiving the
// commitment, and the round trip of the connection (a ping just before).
type Timing struct {
	Elapsed time.Duration
	RTT     time.Duration
}

// Result is the verifier's verdict on one challenge.
type Result struct {
	Passed bool
	Failed Check  // the first check that failed, when !Passed
	Reason string // what was wrong, when !Passed
	Device string // as the rig's commitment names it

	Params
	Timing
	// TFLOPS is the verified throughput, 2n³·count / (Elapsed − RTT); 0 when !Passed.
	TFLOPS float64
	// Opened and Recomputed are the rows checked per product: against the root and y,
	// and in full against A_i·B.
	Opened, Recomputed int
	// MaxZ and RMSZ are the worst normalized errors of the recomputed rows (PROTOCOL.md,
	// "Tolerances"); limits 1.01·n+1 and RMSLimit.
	MaxZ, RMSZ float64
	// Verify is how long verification took (wall clock).
	Verify time.Duration
}

func (r *Result) fail(c Check, format string, a ...any) *Result {
	r.Passed, r.Failed, r.Reason, r.TFLOPS = false, c, fmt.Sprintf(format, a...), 0
	return r
}

// Verify checks a rig's commitment and answer to a challenge and query. full is how many
// of the opened rows (the first ones of the query, which the challenger drew at random)
// are recomputed in float64; DefaultFull if 0.
func Verify(ch *Challenge, cm *Commitment, q *Query, ans *Answer, tm Timing, full int) *Result {
	start := time.Now()
	res := &Result{Params: ch.Params, Timing: tm, Device: cm.Device}
	defer func() { res.Verify = time.Since(start) }()
	n := ch.N
	if full <= 0 {
		full = DefaultFull
	}
	full = min(full, len(q.Rows))
	res.Opened, res.Recomputed = len(q.Rows), full
	if err := CheckQuery(q, n); err != nil {
		return res.fail(CheckShape, "query: %v", err)
	}
	if len(cm.Roots) != ch.Count || ans.N != n || len(ans.Products) != ch.Count {
		return res.fail(CheckShape, "%d roots, answer for n=%d with %d products; challenge n=%d count=%d", len(cm.Roots), ans.N, len(ans.Products), n, ch.Count)
	}
	depth := bits.Len(uint(n)) - 1
	for t, p := range ans.Products {
		if len(p.Y) != n || len(p.Rows) != len(q.Rows) {
			return res.fail(CheckShape, "product %d: %d values of y, %d rows", t, len(p.Y), len(p.Rows))
		}
		for k, row := range p.Rows {
			if row.Index != q.Rows[k] || len(row.Values) != n || len(row.Proof) != depth {
				return res.fail(CheckShape, "product %d: opened row %d is not the asked row %d with n values and a proof of %d", t, row.Index, q.Rows[k], depth)
			}
		}
	}
	if tm.Elapsed > ch.Deadline {
		return res.fail(CheckLate, "commitment after %s, deadline %s", tm.Elapsed.Round(time.Millisecond), ch.Deadline)
	}
	work := tm.Elapsed - tm.RTT
	if work <= 0 {
		return res.fail(CheckLate, "commitment after %s, within the round trip %s", tm.Elapsed, tm.RTT)
	}
	uo := uOut(ch.Precision)
	const eps64 = 0x1p-53
	for t, p := range ans.Products {
		for _, row := range p.Rows {
			if !verifyProof(cm.Roots[t], row.Index, row.Values, row.Proof) {
				return res.fail(CheckProof, "product %d: row %d is not under the committed root", t, row.Index)
			}
		}
		r := vector(q.VectorSeed, n, t)
		for _, row := range p.Rows {
			var s, sa float64
			for j, v := range row.Values {
				s += float64(v) * r[j]
				sa += math.Abs(float64(v) * r[j])
			}
			if d := math.Abs(s - p.Y[row.Index]); d > 2*float64(n+1)*eps64*sa {
				return res.fail(CheckConsistency, "product %d: row %d: C_i·r = %g, answered y_i = %g", t, row.Index, s, p.Y[row.Index])
			}
		}
		z, alpha, xs := freivalds(ch.Seed, n, ch.Precision, t, r, q.Rows, full)
		for f, i := range q.Rows[:full] {
			row := p.Rows[f].Values
			var sum2, maxz float64
			for j, x := range xs[f] {
				den := uAcc*alpha[f] + uo*math.Abs(x)
				if den == 0 {
					den = 0x1p-60
				}
				zz := math.Abs(float64(row[j])-x) / den
				sum2 += zz * zz
				maxz = max(maxz, zz)
			}
			rms := math.Sqrt(sum2 / float64(n))
			res.MaxZ, res.RMSZ = max(res.MaxZ, maxz), max(res.RMSZ, rms)
			if maxz > 1.01*float64(n)+1 || maxz != maxz {
				return res.fail(CheckRow, "product %d: row %d: an element off by %.3g units of the %s bound (at most %.0f)", t, i, maxz, ch.Precision, 1.01*float64(n)+1)
			}
			if rms > RMSLimit {
				return res.fail(CheckRow, "product %d: row %d: errors of %.3g units rms, at most %d for %s (computed in a lower precision?)", t, i, rms, RMSLimit, ch.Precision)
			}
		}
		k := FreivaldsTolerance(ch.Precision, n)
		for f, i := range q.Rows {
			tol := k * alpha[f]
			if d := math.Abs(p.Y[i] - z[f]); d > tol || d != d {
				return res.fail(CheckFreivalds, "product %d: (C·r)_%d = %g, (A·(B·r))_%d = %g: off by %.3g, tolerance %.3g for %s at n=%d", t, i, p.Y[i], i, z[f], d, tol, ch.Precision, n)
			}
		}
	}
	res.Passed = true
	res.TFLOPS = ch.FLOPs() / work.Seconds() / 1e12
	return res
}

// FreivaldsTolerance is the factor k of the Freivalds check |y_i − (A(Br))_i| ≤ k·α_i,
// α_i = Σ_k |A_ik| (PROTOCOL.md, "Tolerances").
func FreivaldsTolerance(p benchmark.Precision, n int) float64 {
	fn := float64(n)
	return 64*fn*uAcc + 8*math.Sqrt(fn)*uOut(p) + 1e-10*fn
}

// freivalds computes, for product t and the opened rows, z_i = A_i·(B·r) and
// α_i = Σ_k |A_ik| in float64, and for the first full of them the exact row X_i = A_i·B.
// It generates B a row at a time (O(n) memory, n² elements) and only the opened rows of
// A: rows that are not opened need no check, since a rig can forge their y_i from A(Br)
// at no cost anyway (PROTOCOL.md).
func freivalds(seed [32]byte, n int, p benchmark.Precision, t int, r []float64, opened []uint32, full int) (z, alpha []float64, xs [][]float64) {
	bitsIn := InputBits(p)
	sa, sb := newStream(seed, tagA, t, bitsIn), newStream(seed, tagB, t, bitsIn)
	arows := make([][]float64, len(opened))
	z, alpha = make([]float64, len(opened)), make([]float64, len(opened))
	for f, i := range opened {
		arows[f] = make([]float64, n)
		sa.fill64(arows[f], i*uint32(n))
		for _, v := range arows[f] {
			alpha[f] += math.Abs(v)
		}
	}
	br := make([]float64, n)
	var (
		mu    sync.Mutex
		parts [][][]float64
	)
	parallelRows(n, func(k0, k1 int) {
		px := make([][]float64, full)
		for f := range px {
			px[f] = make([]float64, n)
		}
		brow := make([]float64, n)
		for k := k0; k < k1; k++ {
			if full == 2 {
				br[k] = genDotAxpy2(sb, uint32(k*n), r, arows[0][k], px[0], arows[1][k], px[1])
				continue
			}
			sb.fill64(brow, uint32(k*n))
			br[k] = dot64(brow, r)
			for f := range px {
				axpy64(arows[f][k], brow, px[f])
			}
		}
		mu.Lock()
		parts = append(parts, px)
		mu.Unlock()
	})
	xs = make([][]float64, full)
	for f := range xs {
		xs[f] = make([]float64, n)
		for _, px := range parts {
			for j, v := range px[f] {
				xs[f][j] += v
			}
		}
	}
	for f := range opened {
		z[f] = dot64(arows[f], br)
	}
	return z, alpha, xs
}

func dot64(x, y []float64) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		s0 += x[j] * y[j]
		s1 += x[j+1] * y[j+1]
		s2 += x[j+2] * y[j+2]
		s3 += x[j+3] * y[j+3]
	}
	for ; j < len(x); j++ {
		s0 += x[j] * y[j]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpy64(a float64, x, y []float64) {
	if a == 0 {
		return
	}
	y = y[:len(x)]
	for j, v := range x {
		y[j] += a * v
	}
}

// genDotAxpy2 generates one row of a stream from element start and, in the same pass,
// returns its dot product with r and adds a0 and a1 times it to x0 and x1.
func genDotAxpy2(s stream, start uint32, r []float64, a0 float64, x0 []float64, a1 float64, x1 []float64) float64 {
	k0, k1, sh, half, sc := s.k0, s.k1, (32-s.bits)&31, s.half, float64(s.scale)
	x0 = x0[:len(r)]
	x1 = x1[:len(r)]
	var d0, d1 float64
	j := 0
	for ; j+2 <= len(r); j += 2 {
		w0 := word(k0, k1, start+uint32(j))
		w1 := word(k0, k1, start+uint32(j+1))
		v0 := float64(int32(w0>>sh)-half) * sc
		v1 := float64(int32(w1>>sh)-half) * sc
		d0 += v0 * r[j]
		d1 += v1 * r[j+1]
		x0[j] += a0 * v0
		x0[j+1] += a0 * v1
		x1[j] += a1 * v0
		x1[j+1] += a1 * v1
	}
	for ; j < len(r); j++ {
		v := float64(int32(word(k0, k1, start+uint32(j))>>sh)-half) * sc
		d0 += v * r[j]
		x0[j] += a0 * v
		x1[j] += a1 * v
	}
	return d0 + d1
}
