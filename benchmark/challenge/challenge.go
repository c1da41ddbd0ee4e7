// Package challenge is gpunode's verifiable capacity check: a challenge-response protocol
// in which a rig proves its matrix-multiply throughput to any peer. The rig builds A and B
// from the challenger's seed (a counter-based generator both sides compute), computes
// C = A·B, and commits to a Merkle root over C's rows; the challenger then sends a fresh
// random vector r and picks rows to open, and checks C·r against A(Br) (Freivalds) and the
// opened rows against the root, against C·r and against A_i·B recomputed in float64. The
// time from challenge to commitment, less the round trip, gives the verified throughput,
// which the challenger signs as an Attestation.
//
// The wire format, the generator and the tolerances are specified in
// benchmark/harness/PROTOCOL.md; the CPU backend (benchmark/cpu) is the Go prover, the
// PyTorch harness (harness.py) the GPU one.
package challenge

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/gpunode/gpunode/benchmark"
)

// Protocol is the libp2p protocol ID of the challenge exchange.
const Protocol = "/gpunode/challenge/1.0.0"

// Version is the wire format's version byte.
const Version = 1

// Limits on a challenge. They bound the rig's memory (count·n² fp32 values of C are kept
// until the answer) and every message's size.
const (
	MinN          = 16
	MaxN          = 8192
	MaxCount      = 8
	MaxElements   = 1 << 27 // count·n², 512 MiB of fp32
	MaxDeadline   = 10 * time.Minute
	MaxRows       = 256 // rows opened per product
	MaxPeerIDLen  = 64
	MaxDeviceLen  = 128
	MaxReasonLen  = 256
	MaxClockSkew  = 2 * time.Minute // how far a challenge's issue time may be from the rig's clock
	DefaultRows   = 64
	DefaultFull   = 2 // opened rows the verifier recomputes in full in float64
	minStampBits  = 0
	maxStampBits  = 24
	stampFlopBits = 27 // one expected stamp hash per 2^27 FLOPs of requested work
)

// Errors.
var (
	// ErrBadMessage: a message that does not decode or breaks a limit.
	ErrBadMessage = errors.New("challenge: bad message")
	// ErrRefused: the rig refused the challenge (busy, rate limited, bad stamp); the error
	// carries its reason.
	ErrRefused = errors.New("challenge: refused")
)

// Params are the problem a challenge poses: Count products of n×n matrices in a precision,
// answered (committed) within Deadline of the challenge's arrival.
type Params struct {
	N         int
	Precision benchmark.Precision
	Count     int
	Deadline  time.Duration
}

// Validate reports every problem with the parameters.
func (p Params) Validate() error {
	var errs []error
	if p.N < MinN || p.N > MaxN || bits.OnesCount(uint(p.N)) != 1 {
		errs = append(errs, fmt.Errorf("n %d: want a power of two from %d to %d", p.N, MinN, MaxN))
	}
	if _, ok := precisionCode[p.Precision]; !ok {
		errs = append(errs, fmt.Errorf("precision %q: want fp32, tf32, fp16 or bf16", p.Precision))
	}
	if p.Count < 1 || p.Count > MaxCount {
		errs = append(errs, fmt.Errorf("count %d: want 1 to %d", p.Count, MaxCount))
	} else if p.N >= MinN && p.N <= MaxN && p.Count*p.N*p.N > MaxElements {
		errs = append(errs, fmt.Errorf("count·n² = %d: at most %d", p.Count*p.N*p.N, MaxElements))
	}
	if p.Deadline < time.Millisecond || p.Deadline > MaxDeadline {
		errs = append(errs, fmt.Errorf("deadline %s: want 1ms to %s", p.Deadline, MaxDeadline))
	}
	return errors.Join(errs...)
}

// FLOPs is the work the products cost: 2n³ per product.
func (p Params) FLOPs() float64 { return 2 * math.Pow(float64(p.N), 3) * float64(p.Count) }

// StampBits is the hashcash difficulty of a challenge for these parameters: the challenger
// computes 2^bits SHA-256 hashes on average, one per 2^27 FLOPs of work it asks for.
func (p Params) StampBits() int {
	b := int(math.Ceil(math.Log2(p.FLOPs()))) - stampFlopBits
	return min(maxStampBits, max(minStampBits, b))
}

var precisionCode = map[benchmark.Precision]byte{benchmark.FP32: 1, benchmark.TF32: 2, benchmark.FP16: 3, benchmark.BF16: 4}

func precisionOf(c byte) (benchmark.Precision, bool) {
	for p, x := range precisionCode {
		if x == c {
			return p, true
		}
	}
	return "", false
}

// InputBits is how many significant bits the generator gives A's and B's elements in a
// precision: all of fp32's 24, so that rounding the inputs to TF32, fp16 or bf16 changes
// them; for the 16-bit and TF32 claims, what the format holds exactly (11, or 8 for bf16).
func InputBits(p benchmark.Precision) uint {
	switch p {
	case benchmark.TF32, benchmark.FP16:
		return 11
	case benchmark.BF16:
		return 8
	}
	return 24
}

// Unit roundoffs of the tolerances (PROTOCOL.md, "Tolerances"): products accumulate in
// fp32 in every precision; fp16 and bf16 results are then rounded to their format.
const uAcc = 0x1p-24

func uOut(p benchmark.Precision) float64 {
	switch p {
	case benchmark.FP16:
		return 0x1p-11
	case benchmark.BF16:
		return 0x1p-8
	}
	return 0
}

// RMSLimit bounds the root mean square of an opened row's normalized errors
// |C_ij − X_ij| / (u·S_ij + u_out·|X_ij|): an fp32 product keeps it near 0.5, one computed
// from inputs rounded to 11 or 8 bits far above (PROTOCOL.md).
const RMSLimit = 4

// Challenge is the first message: the problem, its seed, whom it is for, and the stamp.
type Challenge struct {
	Params
	Seed       [32]byte
	Issued     time.Time // millisecond precision on the wire
	Rig        string    // the rig's peer ID, in its text form
	Challenger string    // the challenger's peer ID, in its text form
	Nonce      uint64    // hashcash nonce (Stamp)
}

// Commitment is the rig's answer to a Challenge: one Merkle root over C's rows per product.
type Commitment struct {
	Roots    [][32]byte
	Device   string // the device that computed C, as the rig names it
	ProverMS uint32 // the rig's own time for the work, informational
}

// Query is the challenger's second message: the seed of the random vectors and the rows
// to open, the same rows in every product.
type Query struct {
	VectorSeed [32]byte
	Rows       []uint32
}

// Answer is the rig's reply to a Query: per product, y = C·r (float64) and the opened rows
// with their Merkle proofs.
type Answer struct {
	N        int
	Products []ProductAnswer
}

// ProductAnswer is the answer for one product.
type ProductAnswer struct {
	Y    []float64
	Rows []OpenRow
}

// OpenRow is an opened row of C with its Merkle proof (siblings from the leaf up).
type OpenRow struct {
	Index  uint32
	Values []float32
	Proof  [][32]byte
}

// Refusal is the rig's reply instead of a Commitment: why it does not take the challenge.
type Refusal struct {
	Reason string
}
