//go:build cgo && !noopenblas

package cpu

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>

// OpenBLAS is loaded at run time, the way go-nvml loads the NVIDIA driver: the gpunode
// binary starts on a rig without it and falls back to the pure-Go kernels.
// The enum values are the CBLAS standard's (CblasColMajor, CblasNoTrans, CblasTrans).
enum { COL_MAJOR = 102, NO_TRANS = 111, TRANS = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
	const float *, int, float, float *, int);
typedef void (*set_threads_fn)(int);
typedef char *(*get_config_fn)(void);

static sgemm_fn p_sgemm;
static set_threads_fn p_set_threads;
static get_config_fn p_get_config;

static int blas_open(void) {
	const char *names[] = {"libopenblas.so.0", "libopenblas.so", NULL};
	for (int i = 0; names[i]; i++) {
		void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (!h) continue;
		p_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
		p_set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
		p_get_config = (get_config_fn)dlsym(h, "openblas_get_config");
		if (p_sgemm && p_set_threads && p_get_config) return 1;
		dlclose(h);
	}
	return 0;
}

static const char *blas_config(void) { return p_get_config(); }
static void blas_set_threads(int n) { p_set_threads(n); }

static void sgemm_col(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
		const float *b, int ldb, float beta, float *c, int ldc) {
	p_sgemm(COL_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
*/
import "C"

import (
	"strings"
	"sync/atomic"
	"unsafe"
)

// haveOpenBLAS is whether libopenblas.so.0 was found; without it the pure-Go kernels run.
var haveOpenBLAS = C.blas_open() == 1

var goThreads atomic.Int64

// blasName names the BLAS the backend runs on.
func blasName() string {
	if !haveOpenBLAS {
		return "pure-go (libopenblas.so.0 not found)"
	}
	return "openblas " + strings.TrimSpace(C.GoString(C.blas_config()))
}

// setThreads sets how many threads the kernels use.
func setThreads(n int) {
	goThreads.Store(int64(n))
	if haveOpenBLAS {
		C.blas_set_threads(C.int(n))
	}
}

// sgemm is BLAS sgemm, column-major: C = alpha·op(A)·op(B) + beta·C.
func sgemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGEMM(ta, tb, m, n, k, a, lda, b, ldb, c, ldc)
	if !haveOpenBLAS {
		goSgemm(int(goThreads.Load()), ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
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
