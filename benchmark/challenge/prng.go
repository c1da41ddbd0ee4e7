package challenge

import (
	"crypto/sha256"
	"encoding/binary"
	"math"

	"github.com/gpunode/gpunode/benchmark"
)

// The matrices and the random vectors come from a counter-based generator: element i of a
// stream is a pure function of the stream's key and i, so any party can compute any element
// alone (the verifier needs single rows of A), and a GPU computes them all in parallel. The
// exact definition is in benchmark/harness/PROTOCOL.md ("Challenge matrices"); harness.py
// implements the same arithmetic in PyTorch.

// Stream tags: which matrix or vector a key is for.
const (
	tagA = 'A'
	tagB = 'B'
	tagR = 'r'
)

// prngDomain separates the generator's keys from every other use of SHA-256 in gpunode.
const prngDomain = "gpunode/challenge/1 prng"

// streamKey derives the two 32-bit keys of one stream from a 32-byte seed, the stream's
// tag and the product's index t (0 ≤ t < count).
func streamKey(seed [32]byte, tag byte, t int) (k0, k1 uint32) {
	h := sha256.New()
	h.Write([]byte(prngDomain))
	h.Write(seed[:])
	h.Write([]byte{tag})
	var tb [4]byte
	binary.LittleEndian.PutUint32(tb[:], uint32(t))
	h.Write(tb[:])
	var sum [32]byte
	h.Sum(sum[:0])
	return binary.LittleEndian.Uint32(sum[0:4]), binary.LittleEndian.Uint32(sum[4:8])
}

// lowbias32 is Chris Wellons' 32-bit integer hash (public domain): two multiplies and
// three xor-shifts, bijective, with low bias. Harness.py computes it on int64 tensors.
func lowbias32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// word is element i of the stream keyed (k0, k1).
func word(k0, k1, i uint32) uint32 { return lowbias32(lowbias32(i+k0) ^ k1) }

// value turns a word into a number in [-1, 1) with bits significant bits: the top bits
// of the word as a signed integer, scaled by a power of two. Every such value is exact
// in fp32, in float64, and (for bits ≤ 11) in fp16 and TF32, (bits ≤ 8) in bf16.
func value(w uint32, bits uint) float64 {
	return float64(int32(w>>(32-bits))-int32(1)<<(bits-1)) * math.Ldexp(1, 1-int(bits))
}

// stream generates elements of one keyed stream.
type stream struct {
	k0, k1 uint32
	bits   uint
	scale  float32
	half   int32
}

func newStream(seed [32]byte, tag byte, t int, bits uint) stream {
	k0, k1 := streamKey(seed, tag, t)
	return stream{k0: k0, k1: k1, bits: bits, scale: float32(math.Ldexp(1, 1-int(bits))), half: int32(1) << (bits - 1)}
}

// at is element i as float64.
func (s stream) at(i uint32) float64 { return value(word(s.k0, s.k1, i), s.bits) }

// fill32 writes elements start, start+1, … into dst as float32.
func (s stream) fill32(dst []float32, start uint32) {
	k0, k1, sh, half, sc := s.k0, s.k1, (32-s.bits)&31, s.half, s.scale
	for j := range dst {
		w := word(k0, k1, start+uint32(j))
		dst[j] = float32(int32(w>>sh)-half) * sc
	}
}

// fill64 writes elements start, start+1, … into dst as float64.
func (s stream) fill64(dst []float64, start uint32) {
	k0, k1, sh, half, sc := s.k0, s.k1, (32-s.bits)&31, s.half, float64(s.scale)
	for j := range dst {
		w := word(k0, k1, start+uint32(j))
		dst[j] = float64(int32(w>>sh)-half) * sc
	}
}

// Matrices returns A and B of product t, row-major n×n float32, as the prover uses them.
func Matrices(seed [32]byte, n int, p benchmark.Precision, t int) (a, b []float32) {
	a, b = make([]float32, n*n), make([]float32, n*n)
	FillMatrix(a, seed, 'A', n, p, t)
	FillMatrix(b, seed, 'B', n, p, t)
	return a, b
}

// FillMatrix writes matrix which ('A' or 'B') of product t into dst (n×n, row-major),
// splitting the work across goroutines.
func FillMatrix(dst []float32, seed [32]byte, which byte, n int, p benchmark.Precision, t int) {
	s := newStream(seed, which, t, InputBits(p))
	parallelRows(n, func(r0, r1 int) { s.fill32(dst[r0*n:r1*n], uint32(r0*n)) })
}

// vector returns random vector v of product t for a query seed: n float64 values with 24
// significant bits.
func vector(qseed [32]byte, n, t int) []float64 {
	r := make([]float64, n)
	newStream(qseed, tagR, t, 24).fill64(r, 0)
	return r
}
