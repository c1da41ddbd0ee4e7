package challenge

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/gpunode/gpunode/benchmark"
)

// The detection tests play thousands of challenges at small n against an honest CPU
// prover and against cheating ones, and require every honest answer to pass and every
// cheat to be caught, by the check meant to catch it. TestDetectionRates prints the rates
// that benchmark/harness/PROTOCOL.md quotes.

// roundBits rounds x to bits significant bits, to nearest even: what a device computing in
// TF32 or fp16 (11 bits) or bf16 (8 bits) does to its fp32 inputs.
func roundBits(x float32, bits uint) float32 {
	u := math.Float32bits(x)
	drop := 24 - bits
	half := uint32(1)<<(drop-1) - 1 + (u>>drop)&1
	u = (u + half) &^ (uint32(1)<<drop - 1)
	return math.Float32frombits(u)
}

// lowPrecision computes in fewer input bits than claimed.
type lowPrecision struct {
	CPU
	bits uint
}

func (l lowPrecision) Compute(ctx context.Context, seed [32]byte, p Params) ([][]float32, error) {
	out := make([][]float32, p.Count)
	for t := range out {
		a, b := Matrices(seed, p.N, p.Precision, t)
		for i := range a {
			a[i], b[i] = roundBits(a[i], l.bits), roundBits(b[i], l.bits)
		}
		out[t] = make([]float32, p.N*p.N)
		l.Backend.MatMul(a, b, out[t], p.N)
	}
	return out, nil
}

// otherSeed computes a correct product, for another seed (a C reused from an earlier
// challenge).
type otherSeed struct{ CPU }

func (o otherSeed) Compute(ctx context.Context, seed [32]byte, p Params) ([][]float32, error) {
	seed[0] ^= 1
	return o.CPU.Compute(ctx, seed, p)
}

// A cheat is one way to answer a challenge wrongly; it returns the commitment and the
// answer it sends, given the honest products.
type cheat struct {
	name  string
	catch []Check // the checks allowed to catch it
	play  func(t testing.TB, rng *rand.Rand, ch *Challenge, q *Query) (*Commitment, *Answer)
}

// honestProducts returns the challenge's correct products.
func honestProducts(t testing.TB, ch *Challenge) [][]float32 {
	cs, err := cpuProver(t).Compute(t.Context(), ch.Seed, ch.Params)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// sessionOf commits to the given products.
func sessionOf(cs [][]float32, n int) (*Session, *Commitment) {
	s := &Session{n: n, cs: cs}
	cm := &Commitment{Device: "cheat"}
	for _, c := range cs {
		tr := newTree(c, n)
		s.trees = append(s.trees, tr)
		cm.Roots = append(cm.Roots, tr.root())
	}
	return s, cm
}

// garbleRows replaces a fraction w of the rows of each product (at least one) with
// random values of the right size: the rows the prover did not compute.
func garbleRows(rng *rand.Rand, cs [][]float32, n int, w float64) map[int]bool {
	bad := map[int]bool{}
	for len(bad) < max(1, int(w*float64(n))) {
		bad[rng.IntN(n)] = true
	}
	for _, c := range cs {
		for i := range bad {
			for j := range n {
				c[i*n+j] = float32(rng.NormFloat64() * math.Sqrt(float64(n)) / 3)
			}
		}
	}
	return bad
}

func answer(t testing.TB, s *Session, q *Query) *Answer {
	a, err := s.Answer(q)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func cheats(w float64) []cheat {
	backend := func(name string, be func(t testing.TB) Backend, catch ...Check) cheat {
		return cheat{name, catch, func(t testing.TB, _ *rand.Rand, ch *Challenge, q *Query) (*Commitment, *Answer) {
			s, cm, err := Commit(t.Context(), be(t), ch)
			if err != nil {
				t.Fatal(err)
			}
			return cm, answer(t, s, q)
		}}
	}
	return []cheat{
		backend("fp16/tf32 inputs (11 bits) for fp32", func(t testing.TB) Backend { return lowPrecision{cpuProver(t), 11} }, CheckRow, CheckFreivalds),
		backend("bf16 inputs (8 bits) for fp32", func(t testing.TB) Backend { return lowPrecision{cpuProver(t), 8} }, CheckRow, CheckFreivalds),
		backend("C of another seed", func(t testing.TB) Backend { return otherSeed{cpuProver(t)} }, CheckFreivalds, CheckRow),
		{fmt.Sprintf("%.0f%% of rows garbage, y = C·r", 100*w), []Check{CheckRow, CheckFreivalds}, func(t testing.TB, rng *rand.Rand, ch *Challenge, q *Query) (*Commitment, *Answer) {
			cs := honestProducts(t, ch)
			garbleRows(rng, cs, ch.N, w)
			s, cm := sessionOf(cs, ch.N)
			return cm, answer(t, s, q)
		}},
		{fmt.Sprintf("%.0f%% of rows garbage, y forged from A(Br)", 100*w), []Check{CheckConsistency}, func(t testing.TB, rng *rand.Rand, ch *Challenge, q *Query) (*Commitment, *Answer) {
			cs := honestProducts(t, ch)
			bad := garbleRows(rng, cs, ch.N, w)
			s, cm := sessionOf(cs, ch.N)
			a := answer(t, s, q)
			for k := range a.Products {
				all := make([]uint32, ch.N)
				for i := range all {
					all[i] = uint32(i)
				}
				z, _, _ := freivalds(ch.Seed, ch.N, ch.Precision, k, vector(q.VectorSeed, ch.N, k), all, 0)
				for i := range bad {
					a.Products[k].Y[i] = z[i]
				}
			}
			return cm, a
		}},
		{"root committed before the work", []Check{CheckProof}, func(t testing.TB, rng *rand.Rand, ch *Challenge, q *Query) (*Commitment, *Answer) {
			early := make([][]float32, ch.Count)
			for k := range early {
				early[k] = make([]float32, ch.N*ch.N)
				for j := range early[k] {
					early[k][j] = rng.Float32()
				}
			}
			_, cm := sessionOf(early, ch.N)
			s, _ := sessionOf(honestProducts(t, ch), ch.N)
			return cm, answer(t, s, q)
		}},
	}
}

// seeds is how many challenges each case plays (thousands in total).
const seeds = 300

func smallParams(rng *rand.Rand) Params {
	return Params{N: 16 << rng.IntN(3), Precision: benchmark.FP32, Count: 1 + rng.IntN(2), Deadline: time.Minute}
}

// TestHonestNeverRejected: a correct prover passes every time, fp32 on the CPU backend
// and the 16-bit claims computed exactly as a GPU does (inputs exact, fp32 accumulation,
// result rounded to the format).
func TestHonestNeverRejected(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	be := cpuProver(t)
	for i := range 4 * seeds {
		p := smallParams(rng)
		if i%4 == 3 {
			p.Precision = []benchmark.Precision{benchmark.TF32, benchmark.FP16, benchmark.BF16}[i/4%3]
		}
		var b Backend = be
		if p.Precision != benchmark.FP32 {
			b = gpuLike{be}
		}
		if r := run(t, b, p, Timing{Elapsed: time.Second}); !r.Passed {
			t.Fatalf("honest run %d (%+v) rejected: %s: %s", i, p, r.Failed, r.Reason)
		}
	}
}

// gpuLike computes a 16-bit or TF32 claim the way a GPU does: exact products of the
// (exactly representable) inputs accumulated in fp32, the result rounded to the format.
type gpuLike struct{ CPU }

func (g gpuLike) Compute(ctx context.Context, seed [32]byte, p Params) ([][]float32, error) {
	q := p
	q.Precision = benchmark.FP32
	out := make([][]float32, p.Count)
	for t := range out {
		a, b := Matrices(seed, p.N, p.Precision, t)
		out[t] = make([]float32, p.N*p.N)
		g.Backend.MatMul(a, b, out[t], p.N)
		switch p.Precision {
		case benchmark.FP16:
			for i, v := range out[t] {
				out[t][i] = roundBits(v, 11)
			}
		case benchmark.BF16:
			for i, v := range out[t] {
				out[t][i] = roundBits(v, 8)
			}
		}
	}
	return out, nil
}

// TestCheatsCaught: every cheat fails, every time, by the check meant to catch it.
func TestCheatsCaught(t *testing.T) {
	for ci, c := range cheats(0.5) {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(ci)))
			for i := range seeds {
				r := playCheat(t, rng, c, smallParams(rng))
				if r.Passed {
					t.Fatalf("run %d: cheat passed", i)
				}
				if !contains(c.catch, r.Failed) {
					t.Fatalf("run %d: caught by %s (%s), want %v", i, r.Failed, r.Reason, c.catch)
				}
			}
		})
	}
}

// TestGarbageRowsCaughtLarge: at n=1024, where the tolerances are widest, half the rows
// left uncomputed fail, with y consistent with them (Freivalds) or forged (consistency).
func TestGarbageRowsCaughtLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	c := cheats(0.5)[3]
	for i := range 3 {
		r := playCheat(t, rng, c, Params{N: 1024, Precision: benchmark.FP32, Count: 1, Deadline: time.Minute})
		if r.Passed || (r.Failed != CheckFreivalds && r.Failed != CheckRow) {
			t.Fatalf("run %d: %+v", i, r)
		}
		if r := playCheat(t, rng, cheats(0.5)[4], Params{N: 1024, Precision: benchmark.FP32, Count: 1, Deadline: time.Minute}); r.Passed || r.Failed != CheckConsistency {
			t.Fatalf("run %d, forged y: %+v", i, r)
		}
	}
}

func contains(cs []Check, c Check) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

func playCheat(t testing.TB, rng *rand.Rand, c cheat, p Params) *Result {
	ch, err := NewChallenge(p, "rig", "challenger", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	q := NewQuery(p.N, DefaultRows)
	cm, a := c.play(t, rng, ch, q)
	return Verify(ch, cm, q, a, Timing{Elapsed: time.Second}, 0)
}

// TestLateCaught: a commitment after the deadline, or one faster than the round trip
// (impossible for an honest rig), fails.
func TestLateCaught(t *testing.T) {
	be := cpuProver(t)
	p := Params{N: 32, Precision: benchmark.FP32, Count: 1, Deadline: 100 * time.Millisecond}
	for _, tm := range []Timing{{Elapsed: 101 * time.Millisecond}, {Elapsed: 5 * time.Millisecond, RTT: 5 * time.Millisecond}, {Elapsed: time.Hour, RTT: time.Millisecond}} {
		if r := run(t, be, p, tm); r.Passed || r.Failed != CheckLate {
			t.Errorf("timing %+v: %+v", tm, r)
		}
	}
}

// TestDetectionRates prints, for rows garbled at several fractions w, how often the cheat
// got through against the bound (1−w)^rows, and the precision cheats' error sizes.
func TestDetectionRates(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "cheat\tn\trows opened\truns\tpassed\tbound on passing\t\n")
	const runs = 200
	for _, frac := range []float64{1.0 / 16, 1.0 / 8} {
		c := cheats(frac)[4]
		n := 128
		passed := 0
		for range runs {
			if playCheat(t, rng, c, Params{N: n, Precision: benchmark.FP32, Count: 1, Deadline: time.Minute}).Passed {
				passed++
			}
		}
		bound := math.Pow(1-frac, DefaultRows)
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%.2g\t\n", c.name, n, DefaultRows, runs, passed, bound)
		if float64(passed) > 4*bound*runs+5 { // binomial tail beyond this: below 1e-8
			t.Errorf("%s: %d of %d passed, bound %.3g", c.name, passed, runs, bound)
		}
	}
	w.Flush()
	// The row check's statistic for the honest prover and for the precision cheats.
	w = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "prover (fp32 claim)\tn\truns\tmin rms z\tmax rms z\tlimit\t\n")
	for _, n := range []int{64, 256, 1024} {
		for _, pr := range []struct {
			name string
			be   Backend
		}{{"honest fp32", cpuProver(t)}, {"11-bit inputs", lowPrecision{cpuProver(t), 11}}, {"8-bit inputs", lowPrecision{cpuProver(t), 8}}} {
			lo, hi := math.Inf(1), 0.0
			k := max(2, 4096/n)
			for range k {
				r := run(t, pr.be, Params{N: n, Precision: benchmark.FP32, Count: 1, Deadline: time.Minute}, Timing{Elapsed: time.Second})
				if r.Failed != "" && r.Failed != CheckRow {
					t.Fatalf("%s n=%d: failed %s: %s", pr.name, n, r.Failed, r.Reason)
				}
				lo, hi = min(lo, r.RMSZ), max(hi, r.RMSZ)
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%.3g\t%.3g\t%d\t\n", pr.name, n, k, lo, hi, RMSLimit)
		}
	}
	w.Flush()
}
