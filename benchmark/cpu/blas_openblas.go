//go:build cgo && !noopenblas

package cpu

/*
#cgo pkg-config: openblas
#include <cblas.h>

static void sgemm_col(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
		const float *b, int ldb, float beta, float *c, int ldc) {
	cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
*/
import "C"

import (
	"strings"
	"unsafe"
)

// blasName names the BLAS the backend runs on.
func blasName() string {
	return "openblas " + strings.TrimSpace(C.GoString(C.openblas_get_config()))
}

// setThreads sets how many threads OpenBLAS uses.
func setThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// sgemm is BLAS sgemm, column-major: C = alpha·op(A)·op(B) + beta·C.
func sgemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGEMM(ta, tb, m, n, k, a, lda, b, ldb, c, ldc)
	C.sgemm_col(cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.int(lda), (*C.float)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.int(ldc))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
