package cpu

import (
	"math"

	"github.com/gpunode/gpunode/benchmark"
)

// rnnBuffers holds one recurrent layer, column-major: w and u are the g·H×H input and
// recurrent weights (gates stacked: LSTM i,f,g,o; GRU r,z,n), x the H×(B·T) inputs of
// every step, h and c the H×B state, gx the g·H×(B·T) input projections, gh the g·H×B
// recurrent projection of one step. There are no biases.
type rnnBuffers struct {
	w, u, x, h, c, gx, gh []float32
}

func newRNN(r benchmark.RNN, fill func([]float32)) *rnnBuffers {
	g, hd, bt := r.Cell.Gates(), r.Hidden, r.Batch*r.Steps
	b := &rnnBuffers{
		w: make([]float32, g*hd*hd), u: make([]float32, g*hd*hd), x: make([]float32, hd*bt),
		h: make([]float32, hd*r.Batch), c: make([]float32, hd*r.Batch),
		gx: make([]float32, g*hd*bt), gh: make([]float32, g*hd*r.Batch),
	}
	fill(b.w)
	fill(b.u)
	fill(b.x)
	return b
}

// rnnForward runs the layer over every step from a zero state, as cuDNN does: the input
// projections of all steps in one GEMM, then per step one recurrent GEMM and the cell's
// element-wise math. The final state is left in b.h (and b.c for LSTM).
func rnnForward(r benchmark.RNN, b *rnnBuffers) {
	g, hd, bs := r.Cell.Gates(), r.Hidden, r.Batch
	gh := g * hd
	clear(b.h)
	clear(b.c)
	sgemm(false, false, gh, bs*r.Steps, hd, 1, b.w, gh, b.x, hd, 0, b.gx, gh)
	for t := 0; t < r.Steps; t++ {
		sgemm(false, false, gh, bs, hd, 1, b.u, gh, b.h, hd, 0, b.gh, gh)
		gx := b.gx[t*bs*gh : (t+1)*bs*gh]
		for n := 0; n < bs; n++ {
			cellStep(r.Cell, hd, gx[n*gh:(n+1)*gh], b.gh[n*gh:(n+1)*gh], b.h[n*hd:(n+1)*hd], b.c[n*hd:(n+1)*hd])
		}
	}
}

// cellStep updates one batch column's state h (and c) from its input projection x and
// recurrent projection r, each g·H long with the gates stacked.
func cellStep(cell benchmark.Cell, hd int, x, r, h, c []float32) {
	switch cell {
	case benchmark.Vanilla:
		for i := 0; i < hd; i++ {
			h[i] = tanh(x[i] + r[i])
		}
	case benchmark.LSTM:
		for i := 0; i < hd; i++ {
			in := sigmoid(x[i] + r[i])
			f := sigmoid(x[hd+i] + r[hd+i])
			gg := tanh(x[2*hd+i] + r[2*hd+i])
			o := sigmoid(x[3*hd+i] + r[3*hd+i])
			c[i] = f*c[i] + in*gg
			h[i] = o * tanh(c[i])
		}
	case benchmark.GRU:
		for i := 0; i < hd; i++ {
			rg := sigmoid(x[i] + r[i])
			z := sigmoid(x[hd+i] + r[hd+i])
			n := tanh(x[2*hd+i] + rg*r[2*hd+i])
			h[i] = (1-z)*n + z*h[i]
		}
	}
}

func sigmoid(v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) }
func tanh(v float32) float32    { return float32(math.Tanh(float64(v))) }
