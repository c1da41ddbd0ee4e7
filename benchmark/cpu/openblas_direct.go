//go:build cgo && !noopenblas

package cpu

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <immintrin.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
	const float *, int, float, float *, int);
typedef void (*set_threads_fn)(int);

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// cpu_now is the CPU time of all the process's threads.
static double cpu_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// direct_sgemm times reps calls of OpenBLAS's cblas_sgemm on n×n matrices it owns, with
// no Go in between: OpenBLAS's own throughput, the yardstick for the backend's wrapping.
// It returns the best time in seconds, or -1 without OpenBLAS, and in *cpu the CPU
// seconds the timed calls used.
static double direct_sgemm(int n, int reps, int threads, double *cpu) {
	void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!h) return -1;
	sgemm_fn sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
	set_threads_fn set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
	if (!sgemm || !set_threads) return -1;
	set_threads(threads);
	size_t sz = (size_t)n * n;
	float *a = malloc(sz * sizeof(float)), *b = malloc(sz * sizeof(float)), *c = malloc(sz * sizeof(float));
	for (size_t i = 0; i < sz; i++) { a[i] = (float)(i % 7) * 0.25f - 0.75f; b[i] = (float)(i % 5) * 0.5f - 1.0f; c[i] = 0; }
	// 102, 111: CblasColMajor, CblasNoTrans.
	sgemm(102, 111, 111, n, n, n, 1, a, n, b, n, 0, c, n);
	double best = 1e30;
	double c0 = cpu_now();
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		sgemm(102, 111, 111, n, n, n, 1, a, n, b, n, 0, c, n);
		double t = now() - t0;
		if (t < best) best = t;
	}
	*cpu = cpu_now() - c0;
	free(a); free(b); free(c);
	return best;
}

// fma_peak measures one core's fp32 FMA throughput in GFLOPS with 24 independent
// accumulator chains (enough to cover latency × units on current cores), in the widest
// vectors the CPU has.
__attribute__((target("avx512f"))) static double fma_peak512(long iters) {
	__m512 acc[24];
	__m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
	for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
	double t0 = now();
	for (long it = 0; it < iters; it++) {
		for (int i = 0; i < 24; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
	}
	double t = now() - t0;
	float sink = 0; for (int i = 0; i < 24; i++) sink += _mm512_reduce_add_ps(acc[i]);
	volatile float v = sink; (void)v;
	return (double)iters * 24 * 16 * 2 / t / 1e9;
}

__attribute__((target("avx2,fma"))) static double fma_peak256(long iters) {
	__m256 acc[24];
	__m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
	for (int i = 0; i < 24; i++) acc[i] = _mm256_set1_ps((float)i);
	double t0 = now();
	for (long it = 0; it < iters; it++) {
		for (int i = 0; i < 24; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
	}
	double t = now() - t0;
	float tmp[8]; float sink = 0;
	for (int i = 0; i < 24; i++) { _mm256_storeu_ps(tmp, acc[i]); for (int j = 0; j < 8; j++) sink += tmp[j]; }
	volatile float v = sink; (void)v;
	return (double)iters * 24 * 8 * 2 / t / 1e9;
}
*/
import "C"

// directSgemm returns OpenBLAS's best time in seconds of reps n×n×n sgemm calls (negative
// without OpenBLAS) and the CPU seconds all reps took.
func directSgemm(n, reps, threads int) (best, cpu float64) {
	var c C.double
	best = float64(C.direct_sgemm(C.int(n), C.int(reps), C.int(threads), &c))
	return best, float64(c)
}

// cpuSeconds is the CPU time of all the process's threads, on the clock directSgemm uses.
func cpuSeconds() float64 { return float64(C.cpu_now()) }

// measureFMA returns one core's measured fp32 FMA GFLOPS at the given vector width in
// floats (16 or 8), or 0 if unsupported here.
func measureFMA(width int) float64 {
	const iters = 20_000_000
	switch width {
	case 16:
		return float64(C.fma_peak512(iters))
	case 8:
		return float64(C.fma_peak256(iters))
	}
	return 0
}
