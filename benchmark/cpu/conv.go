package cpu

import "github.com/gpunode/gpunode/benchmark"

// convBuffers holds a convolution's tensors, NCHW: x is N×C×H×W, w is K×C×R×S, y is
// N×K×P×Q, col is the im2col scratch of one image, (C·R·S)×(P·Q).
type convBuffers struct {
	x, w, y, col []float32
}

func newConv(c benchmark.Conv, fill func([]float32)) *convBuffers {
	b := &convBuffers{
		x:   make([]float32, c.N*c.C*c.H*c.W),
		w:   make([]float32, c.K*c.C*c.R*c.S),
		y:   make([]float32, c.N*c.K*c.OutH()*c.OutW()),
		col: make([]float32, c.C*c.R*c.S*c.OutH()*c.OutW()),
	}
	fill(b.x)
	fill(b.w)
	return b
}

// conv2d is the forward convolution as im2col + GEMM, the way DeepBench's CPU runs and
// cuDNN's IMPLICIT_GEMM see it: per image, Y(PQ×K) = col(PQ×CRS) · Wᵀ(CRS×K), with both
// matrices column-major as they lie in memory.
func conv2d(c benchmark.Conv, b *convBuffers) {
	p, q := c.OutH(), c.OutW()
	pq, crs := p*q, c.C*c.R*c.S
	for n := 0; n < c.N; n++ {
		im2col(c, b.x[n*c.C*c.H*c.W:(n+1)*c.C*c.H*c.W], b.col)
		sgemm(false, false, pq, c.K, crs, 1, b.col, pq, b.w, crs, 0, b.y[n*c.K*pq:(n+1)*c.K*pq], pq)
	}
}

// im2col lays out one C×H×W image so that row (c,r,s) of col holds, for every output
// position (p,q), the input pixel the filter tap (c,r,s) sees there (0 in the padding).
func im2col(c benchmark.Conv, x, col []float32) {
	p, q := c.OutH(), c.OutW()
	row := 0
	for ch := 0; ch < c.C; ch++ {
		img := x[ch*c.H*c.W : (ch+1)*c.H*c.W]
		for r := 0; r < c.R; r++ {
			for s := 0; s < c.S; s++ {
				dst := col[row*p*q : (row+1)*p*q]
				for op := 0; op < p; op++ {
					ih := op*c.StrideH - c.PadH + r
					line := dst[op*q : (op+1)*q]
					if ih < 0 || ih >= c.H {
						clear(line)
						continue
					}
					src := img[ih*c.W : (ih+1)*c.W]
					for oq := range line {
						iw := oq*c.StrideW - c.PadW + s
						if iw < 0 || iw >= c.W {
							line[oq] = 0
						} else {
							line[oq] = src[iw]
						}
					}
				}
				row++
			}
		}
	}
}
