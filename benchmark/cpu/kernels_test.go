package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gpunode/gpunode/benchmark"
)

func randFill(seed uint64) func([]float32) {
	rng := rand.New(rand.NewPCG(seed, 7))
	return func(s []float32) {
		for i := range s {
			s[i] = rng.Float32()*2 - 1
		}
	}
}

// naiveSgemm is the textbook triple loop in float64, column-major.
func naiveSgemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for j := 0; j < n; j++ {
		for i := 0; i < m; i++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if ta {
					av = a[i*lda+p]
				} else {
					av = a[p*lda+i]
				}
				if tb {
					bv = b[p*ldb+j]
				} else {
					bv = b[j*ldb+p]
				}
				s += float64(av) * float64(bv)
			}
			c[j*ldc+i] = float32(float64(alpha)*s + float64(beta)*float64(c[j*ldc+i]))
		}
	}
}

// closeTo compares with a tolerance scaled to the reduction length k.
func closeTo(t *testing.T, what string, got, want []float32, k int) {
	t.Helper()
	tol := 1e-5 * float64(k+1)
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > tol*math.Max(1, math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: element %d = %v, want %v (tolerance %g)", what, i, got[i], want[i], tol)
		}
	}
}

type sgemmFunc func(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

func TestSgemm(t *testing.T) {
	impls := map[string]sgemmFunc{
		blasName(): sgemm,
		"pure-go/1": func(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
			goSgemm(1, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		},
		"pure-go/3": func(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
			goSgemm(3, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		},
	}
	shapes := [][3]int{{1, 1, 1}, {7, 5, 3}, {64, 64, 64}, {33, 129, 257}, {300, 2, 17}, {1, 100, 300}}
	for name, f := range impls {
		for _, s := range shapes {
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1.5}} {
					m, n, k := s[0], s[1], s[2]
					t.Run(fmt.Sprintf("%s/%dx%dx%d/%v/%v", name, m, n, k, tr, ab), func(t *testing.T) {
						fill := randFill(uint64(m*n + k))
						// Leading dimensions larger than needed, as BLAS allows.
						lda, ldb, ldc := m+3, k+1, m+2
						ac, bc := k, n
						if tr[0] {
							lda, ac = k+3, m
						}
						if tr[1] {
							ldb, bc = n+1, k
						}
						a, b := make([]float32, lda*ac), make([]float32, ldb*bc)
						c := make([]float32, ldc*n)
						fill(a)
						fill(b)
						fill(c)
						want := append([]float32(nil), c...)
						naiveSgemm(tr[0], tr[1], m, n, k, ab[0], a, lda, b, ldb, ab[1], want, ldc)
						f(tr[0], tr[1], m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
						closeTo(t, "C", c, want, k)
					})
				}
			}
		}
	}
}

func TestSgemmRejectsShortSlices(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("sgemm with a short A did not panic")
		}
	}()
	sgemm(false, false, 4, 4, 4, 1, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
}

// naiveConv is the direct 7-loop convolution.
func naiveConv(c benchmark.Conv, x, w []float32) []float32 {
	p, q := c.OutH(), c.OutW()
	y := make([]float32, c.N*c.K*p*q)
	for n := 0; n < c.N; n++ {
		for k := 0; k < c.K; k++ {
			for op := 0; op < p; op++ {
				for oq := 0; oq < q; oq++ {
					var s float64
					for ch := 0; ch < c.C; ch++ {
						for r := 0; r < c.R; r++ {
							for ss := 0; ss < c.S; ss++ {
								ih, iw := op*c.StrideH-c.PadH+r, oq*c.StrideW-c.PadW+ss
								if ih < 0 || ih >= c.H || iw < 0 || iw >= c.W {
									continue
								}
								s += float64(x[((n*c.C+ch)*c.H+ih)*c.W+iw]) * float64(w[((k*c.C+ch)*c.R+r)*c.S+ss])
							}
						}
					}
					y[((n*c.K+k)*p+op)*q+oq] = float32(s)
				}
			}
		}
	}
	return y
}

func TestConv(t *testing.T) {
	for _, c := range []benchmark.Conv{
		{W: 5, H: 5, C: 1, N: 1, K: 1, S: 3, R: 3, PadW: 1, PadH: 1, StrideW: 1, StrideH: 1},
		{W: 13, H: 9, C: 3, N: 2, K: 4, S: 3, R: 3, PadW: 1, PadH: 1, StrideW: 2, StrideH: 2},
		{W: 20, H: 11, C: 2, N: 2, K: 3, S: 7, R: 5, PadW: 0, PadH: 0, StrideW: 2, StrideH: 2},
		{W: 8, H: 8, C: 5, N: 3, K: 6, S: 1, R: 1, StrideW: 1, StrideH: 1},
		// DeepBench's device set pads more than the filter height: all-zero rows.
		{W: 30, H: 10, C: 1, N: 1, K: 2, S: 20, R: 5, PadW: 8, PadH: 8, StrideW: 8, StrideH: 2},
	} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			b := newConv(c, randFill(uint64(c.W*c.H)))
			conv2d(c, b)
			closeTo(t, "Y", b.y, naiveConv(c, b.x, b.w), c.C*c.R*c.S)
		})
	}
}

// naiveRNN steps the cell with plain loops in float64, gate by gate.
func naiveRNN(r benchmark.RNN, w, u, x []float32) []float32 {
	hd, g := r.Hidden, r.Cell.Gates()
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	out := make([]float32, hd*r.Batch)
	for n := 0; n < r.Batch; n++ {
		h, c := make([]float64, hd), make([]float64, hd)
		for t := 0; t < r.Steps; t++ {
			xt := x[(t*r.Batch+n)*hd : (t*r.Batch+n+1)*hd]
			// gate row j of W·x and U·h (W column-major g·H × H).
			wx, uh := make([]float64, g*hd), make([]float64, g*hd)
			for j := 0; j < g*hd; j++ {
				for i := 0; i < hd; i++ {
					wx[j] += float64(w[i*g*hd+j]) * float64(xt[i])
					uh[j] += float64(u[i*g*hd+j]) * h[i]
				}
			}
			nh := make([]float64, hd)
			for i := 0; i < hd; i++ {
				switch r.Cell {
				case benchmark.Vanilla:
					nh[i] = math.Tanh(wx[i] + uh[i])
				case benchmark.LSTM:
					in, f := sig(wx[i]+uh[i]), sig(wx[hd+i]+uh[hd+i])
					gg, o := math.Tanh(wx[2*hd+i]+uh[2*hd+i]), sig(wx[3*hd+i]+uh[3*hd+i])
					c[i] = f*c[i] + in*gg
					nh[i] = o * math.Tanh(c[i])
				case benchmark.GRU:
					rg, z := sig(wx[i]+uh[i]), sig(wx[hd+i]+uh[hd+i])
					nn := math.Tanh(wx[2*hd+i] + rg*uh[2*hd+i])
					nh[i] = (1-z)*nn + z*h[i]
				}
			}
			h = nh
		}
		for i := range h {
			out[n*hd+i] = float32(h[i])
		}
	}
	return out
}

func TestRNN(t *testing.T) {
	for _, cell := range []benchmark.Cell{benchmark.Vanilla, benchmark.LSTM, benchmark.GRU} {
		for _, r := range []benchmark.RNN{{Hidden: 1, Batch: 1, Steps: 1}, {Hidden: 16, Batch: 3, Steps: 5}, {Hidden: 33, Batch: 4, Steps: 7}} {
			r.Cell = cell
			t.Run(fmt.Sprintf("%+v", r), func(t *testing.T) {
				b := newRNN(r, randFill(uint64(r.Hidden)))
				// Scale weights so the state neither saturates nor vanishes.
				for _, s := range [][]float32{b.w, b.u} {
					for i := range s {
						s[i] /= float32(math.Sqrt(float64(r.Hidden)))
					}
				}
				rnnForward(r, b)
				closeTo(t, "h", b.h, naiveRNN(r, b.w, b.u, b.x), r.Hidden*r.Steps)
			})
		}
	}
}

func TestRingAllReduce(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 5} {
		for _, size := range []int{1, 4, 7, 1000, 1001} {
			t.Run(fmt.Sprintf("%d-workers/%d", workers, size), func(t *testing.T) {
				fill := randFill(uint64(workers*size + 1))
				bufs := make([][]float32, workers)
				want := make([]float32, size)
				for w := range bufs {
					bufs[w] = make([]float32, size)
					fill(bufs[w])
				}
				for i := range want {
					var s float64
					for w := range bufs {
						s += float64(bufs[w][i])
					}
					want[i] = float32(s)
				}
				ringAllReduce(bufs)
				for w := range bufs {
					closeTo(t, fmt.Sprintf("worker %d", w), bufs[w], want, workers)
				}
			})
		}
	}
}

func TestBackendRunsPlan(t *testing.T) {
	b, err := New(Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	tiny := benchmark.Plan{Profile: benchmark.Quick, Timing: benchmark.Timing{Warmup: 1, MinRepeats: 2, MaxRepeats: 2}, Problems: []benchmark.Problem{
		{Class: benchmark.ClassGEMM, Set: benchmark.SetTraining, Precision: benchmark.FP32, GEMM: &benchmark.GEMM{M: 64, N: 32, K: 16, TransA: true}},
		{Class: benchmark.ClassGEMM, Set: benchmark.SetTraining, Precision: benchmark.FP16, GEMM: &benchmark.GEMM{M: 64, N: 32, K: 16}},
		{Class: benchmark.ClassConv, Set: benchmark.SetTraining, Precision: benchmark.FP32, Conv: &benchmark.Conv{W: 8, H: 8, C: 2, N: 1, K: 2, S: 3, R: 3, StrideW: 1, StrideH: 1}},
		{Class: benchmark.ClassRNN, Set: benchmark.SetTraining, Precision: benchmark.FP32, RNN: &benchmark.RNN{Hidden: 8, Batch: 2, Steps: 3, Cell: benchmark.GRU}},
		{Class: benchmark.ClassAllReduce, Set: benchmark.SetTraining, Precision: benchmark.FP32, AllReduce: &benchmark.AllReduce{Floats: 1000, Workers: 2}},
	}}
	var seen int
	res, err := b.Run(t.Context(), tiny, func(benchmark.Result) { seen++ })
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(tiny.Problems) || len(res) != len(tiny.Problems) {
		t.Fatalf("%d progress calls, %d results for %d problems", seen, len(res), len(tiny.Problems))
	}
	for _, r := range res {
		if err := r.Check(); err != nil {
			t.Error(err)
		}
		if (r.Skipped != "") != (r.Problem.Precision == benchmark.FP16) {
			t.Errorf("%s: skipped %q", r.Problem.ID(), r.Skipped)
		}
		if r.Skipped == "" && r.Repeats != 2 {
			t.Errorf("%s: %d repeats, want 2", r.Problem.ID(), r.Repeats)
		}
	}
	if res[4].Device != "rig" {
		t.Errorf("all-reduce device %q", res[4].Device)
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := Default().Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if errs := (Config{Threads: -1}).Validate(); len(errs) != 1 {
		t.Fatalf("threads -1: %v", errs)
	}
}
