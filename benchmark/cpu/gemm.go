package cpu

import (
	"fmt"
	"runtime"
	"sync"
)

// checkGEMM panics on a call that would read or write outside its slices: the cgo path
// hands raw pointers to C, so bounds are checked here once.
func checkGEMM(ta, tb bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	ar, ac := m, k
	if ta {
		ar, ac = k, m
	}
	br, bc := k, n
	if tb {
		br, bc = n, k
	}
	if m <= 0 || n <= 0 || k <= 0 || lda < max(1, ar) || ldb < max(1, br) || ldc < max(1, m) ||
		len(a) < lda*(ac-1)+ar || len(b) < ldb*(bc-1)+br || len(c) < ldc*(n-1)+m {
		panic(fmt.Sprintf("sgemm: bad arguments m=%d n=%d k=%d lda=%d ldb=%d ldc=%d len(a)=%d len(b)=%d len(c)=%d", m, n, k, lda, ldb, ldc, len(a), len(b), len(c)))
	}
}

// goSgemm is the pure-Go sgemm (column-major), used when built without OpenBLAS. It packs
// op(A) column-major so that each column of C is a sum of contiguous axpys, and splits
// the columns of C across threads.
func goSgemm(threads int, ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGEMM(ta, tb, m, n, k, a, lda, b, ldb, c, ldc)
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	ap := make([]float32, m*k) // op(A), column-major m×k
	for p := 0; p < k; p++ {
		col := ap[p*m : (p+1)*m]
		for i := range col {
			if ta {
				col[i] = a[i*lda+p]
			} else {
				col[i] = a[p*lda+i]
			}
		}
	}
	const kb = 256 // a block of A's columns stays in cache across columns of C
	var wg sync.WaitGroup
	chunk := (n + threads - 1) / threads
	for j0 := 0; j0 < n; j0 += chunk {
		j1 := min(n, j0+chunk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := j0; j < j1; j++ {
				cj := c[j*ldc : j*ldc+m]
				if beta == 0 {
					clear(cj)
				} else if beta != 1 {
					for i := range cj {
						cj[i] *= beta
					}
				}
			}
			for p0 := 0; p0 < k; p0 += kb {
				p1 := min(k, p0+kb)
				for j := j0; j < j1; j++ {
					cj := c[j*ldc : j*ldc+m]
					for p := p0; p < p1; p++ {
						var bv float32
						if tb {
							bv = b[p*ldb+j]
						} else {
							bv = b[j*ldb+p]
						}
						axpy(alpha*bv, ap[p*m:(p+1)*m], cj)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func axpy(s float32, x, y []float32) {
	y = y[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		y[i] += s * x[i]
		y[i+1] += s * x[i+1]
		y[i+2] += s * x[i+2]
		y[i+3] += s * x[i+3]
	}
	for ; i < len(x); i++ {
		y[i] += s * x[i]
	}
}

// MatMul computes the row-major n×n product c = a·b with the backend's sgemm (the
// challenge prover's kernel). Row-major a·b is column-major bᵀ·aᵀ, hence the swap.
func (b *Backend) MatMul(a, bm, c []float32, n int) {
	setThreads(b.threads)
	sgemm(false, false, n, n, n, 1, bm, n, a, n, 0, c, n)
}
