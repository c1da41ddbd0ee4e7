// Package benchmark measures what a rig is worth for training, DeepBench style: the
// problem lists (GEMM, convolution, RNN, all-reduce) as data, profiles that pick from them,
// the scoring that turns timings into TFLOPS and a per-GPU and per-rig score (the rig's
// "DL hashrate"), and the signed report that other parties can verify.
//
// Backends that run the kernels live elsewhere (benchmark/cpu, benchmark/harness) and
// satisfy the Backend interface declared here.
package benchmark

import (
	"fmt"
	"strings"
)

// Class is a kind of problem.
type Class string

// The problem classes of DeepBench.
const (
	ClassGEMM      Class = "gemm"
	ClassConv      Class = "conv"
	ClassRNN       Class = "rnn"
	ClassAllReduce Class = "allreduce"
)

// Set is one of DeepBench's problem sets.
type Set string

// DeepBench's problem sets.
const (
	SetTraining        Set = "training"
	SetInferenceServer Set = "inference-server"
	SetInferenceDevice Set = "inference-device"
)

// Precision is the arithmetic a problem runs in.
type Precision string

// Precisions. FP16 and BF16 are mixed precision (16-bit inputs, 32-bit accumulation), as in
// DeepBench's "16 bit inputs, 32 bit addition" results; TF32 is fp32 storage with TF32 tensor
// core math.
const (
	FP32 Precision = "fp32"
	TF32 Precision = "tf32"
	FP16 Precision = "fp16"
	BF16 Precision = "bf16"
)

// Cell is a recurrent cell type.
type Cell string

// RNN cells.
const (
	Vanilla Cell = "vanilla"
	LSTM    Cell = "lstm"
	GRU     Cell = "gru"
)

// Gates is the number of H×H weight matrices a cell multiplies per input.
func (c Cell) Gates() int {
	switch c {
	case LSTM:
		return 4
	case GRU:
		return 3
	default:
		return 1
	}
}

// GEMM is C[m×n] = op(A)[m×k] · op(B)[k×n], column-major as in DeepBench.
type GEMM struct {
	M      int  `json:"m"`
	N      int  `json:"n"`
	K      int  `json:"k"`
	TransA bool `json:"trans_a"`
	TransB bool `json:"trans_b"`
}

// Conv is a forward 2-D convolution, NCHW input of W×H×C with batch N, K filters of S×R
// (width×height).
type Conv struct {
	W       int `json:"w"`
	H       int `json:"h"`
	C       int `json:"c"`
	N       int `json:"n"`
	K       int `json:"k"`
	S       int `json:"s"`
	R       int `json:"r"`
	PadW    int `json:"pad_w"`
	PadH    int `json:"pad_h"`
	StrideW int `json:"stride_w"`
	StrideH int `json:"stride_h"`
}

// OutW is the output width Q.
func (c Conv) OutW() int { return (c.W+2*c.PadW-c.S)/c.StrideW + 1 }

// OutH is the output height P.
func (c Conv) OutH() int { return (c.H+2*c.PadH-c.R)/c.StrideH + 1 }

// RNN is a forward pass of one recurrent layer over Steps time steps, input size = Hidden.
type RNN struct {
	Hidden int  `json:"hidden"`
	Batch  int  `json:"batch"`
	Steps  int  `json:"steps"`
	Cell   Cell `json:"cell"`
}

// AllReduce sums Floats fp32 values across Workers (GPUs, or CPU workers).
type AllReduce struct {
	Floats  int64 `json:"floats"`
	Workers int   `json:"workers"`
}

// Problem is one measured kernel: a shape from a DeepBench set, in a precision.
// Exactly one of GEMM, Conv, RNN, AllReduce is set, matching Class.
type Problem struct {
	Class     Class      `json:"class"`
	Set       Set        `json:"set"`
	Precision Precision  `json:"precision"`
	GEMM      *GEMM      `json:"gemm,omitempty"`
	Conv      *Conv      `json:"conv,omitempty"`
	RNN       *RNN       `json:"rnn,omitempty"`
	AllReduce *AllReduce `json:"allreduce,omitempty"`
}

// Shape is the problem's dimensions in a canonical text form, the key used to match
// reference results.
func (p Problem) Shape() string {
	switch {
	case p.GEMM != nil:
		g := p.GEMM
		return fmt.Sprintf("m=%d n=%d k=%d ta=%s tb=%s", g.M, g.N, g.K, yn(g.TransA), yn(g.TransB))
	case p.Conv != nil:
		c := p.Conv
		return fmt.Sprintf("w=%d h=%d c=%d n=%d k=%d s=%d r=%d pad_w=%d pad_h=%d stride_w=%d stride_h=%d",
			c.W, c.H, c.C, c.N, c.K, c.S, c.R, c.PadW, c.PadH, c.StrideW, c.StrideH)
	case p.RNN != nil:
		r := p.RNN
		return fmt.Sprintf("cell=%s hidden=%d batch=%d steps=%d", r.Cell, r.Hidden, r.Batch, r.Steps)
	case p.AllReduce != nil:
		a := p.AllReduce
		return fmt.Sprintf("floats=%d workers=%d", a.Floats, a.Workers)
	}
	return ""
}

func yn(t bool) string {
	if t {
		return "T"
	}
	return "N"
}

// ID identifies a problem within a plan: class, precision and shape.
func (p Problem) ID() string {
	return string(p.Class) + "/" + string(p.Precision) + "/" + strings.ReplaceAll(p.Shape(), " ", ",")
}

// FLOPs is the work of one run of a compute problem, the numerator of its TFLOPS:
//
//   - GEMM: 2·m·n·k (DeepBench's count).
//   - Convolution (forward): 2·N·K·P·Q·C·R·S, with P, Q the output height and width
//     (DeepBench's count, padding included).
//   - RNN (forward, input size = hidden): 4·g·H²·B·T, g = 1 (vanilla), 4 (LSTM), 3 (GRU):
//     per step an input and a recurrent g·H×H matrix times the B-column batch. DeepBench's
//     published RNN TFLOPS count only one of the two products (2·g·H²·B·T), so compare RNN
//     results with DeepBench by time, not by TFLOPS. Element-wise gate math is not counted.
//
// It is 0 for all-reduce, which is measured in bytes (see Bytes).
func (p Problem) FLOPs() float64 {
	switch {
	case p.GEMM != nil:
		return 2 * float64(p.GEMM.M) * float64(p.GEMM.N) * float64(p.GEMM.K)
	case p.Conv != nil:
		c := p.Conv
		return 2 * float64(c.N) * float64(c.K) * float64(c.OutH()) * float64(c.OutW()) * float64(c.C) * float64(c.R) * float64(c.S)
	case p.RNN != nil:
		r := p.RNN
		h := float64(r.Hidden)
		return 4 * float64(r.Cell.Gates()) * h * h * float64(r.Batch) * float64(r.Steps)
	}
	return 0
}

// Bytes is the size of the buffer an all-reduce sums, 4·floats; 0 for compute problems.
func (p Problem) Bytes() float64 {
	if p.AllReduce == nil {
		return 0
	}
	return 4 * float64(p.AllReduce.Floats)
}

// Validate checks that the problem is well formed: one shape matching its class, positive
// dimensions, a known set and precision. Plans and reports from elsewhere go through it.
func (p Problem) Validate() error {
	n := 0
	for _, set := range []bool{p.GEMM != nil, p.Conv != nil, p.RNN != nil, p.AllReduce != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("problem %s: want exactly one shape, have %d", p.Class, n)
	}
	switch p.Set {
	case SetTraining, SetInferenceServer, SetInferenceDevice:
	default:
		return fmt.Errorf("problem %s: unknown set %q", p.ID(), p.Set)
	}
	switch p.Precision {
	case FP32, TF32, FP16, BF16:
	default:
		return fmt.Errorf("problem %s: unknown precision %q", p.ID(), p.Precision)
	}
	pos := func(vs ...int64) bool {
		for _, v := range vs {
			if v <= 0 || v > 1<<31 {
				return false
			}
		}
		return true
	}
	ok := false
	switch p.Class {
	case ClassGEMM:
		g := p.GEMM
		ok = g != nil && pos(int64(g.M), int64(g.N), int64(g.K))
	case ClassConv:
		c := p.Conv
		ok = c != nil && pos(int64(c.W), int64(c.H), int64(c.C), int64(c.N), int64(c.K), int64(c.S), int64(c.R), int64(c.StrideW), int64(c.StrideH)) &&
			c.PadW >= 0 && c.PadH >= 0 && c.PadW < 1<<16 && c.PadH < 1<<16 && c.OutW() > 0 && c.OutH() > 0
	case ClassRNN:
		r := p.RNN
		ok = r != nil && pos(int64(r.Hidden), int64(r.Batch), int64(r.Steps)) && (r.Cell == Vanilla || r.Cell == LSTM || r.Cell == GRU)
	case ClassAllReduce:
		a := p.AllReduce
		ok = a != nil && pos(a.Floats, int64(a.Workers))
	default:
		return fmt.Errorf("problem: unknown class %q", p.Class)
	}
	if !ok {
		return fmt.Errorf("problem %s: shape does not match class or has a non-positive dimension", p.ID())
	}
	return nil
}
