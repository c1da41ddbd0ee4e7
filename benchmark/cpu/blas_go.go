//go:build !cgo || noopenblas

package cpu

import "sync/atomic"

var goThreads atomic.Int64

func blasName() string { return "pure-go" }

func setThreads(n int) { goThreads.Store(int64(n)) }

func sgemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	goSgemm(int(goThreads.Load()), ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
