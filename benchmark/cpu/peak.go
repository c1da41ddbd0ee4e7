package cpu

import (
	"fmt"
	"runtime"
	"strconv"

	"golang.org/x/sys/cpu"
)

// Peak is the CPU's theoretical fp32 throughput: cores × vector lanes × 2 (an FMA is two
// FLOPs) × FMA units per core × clock.
type Peak struct {
	Cores        int
	VectorFloats int     // fp32 lanes of the widest vector unit (CPUID: AVX-512F 16, AVX2 8, SSE 4)
	FMA          bool    // fused multiply-add (CPUID)
	FMAUnits     int     // vector FMA units per core
	GHz          float64 // clock from /proc/cpuinfo
	GFLOPS       float64
}

// DefaultFMAUnits is the vector FMA units per core of current x86 server cores (Intel
// since Haswell for AVX2 and Skylake-SP Gold/Platinum on for AVX-512, AMD Zen 2 on).
const DefaultFMAUnits = 2

// TheoreticalPeak computes Peak from CPUID and /proc/cpuinfo. fmaUnits is the number of
// vector FMA units per core (CPUID does not say; server cores with AVX-512 have 1 or 2,
// DefaultFMAUnits is the usual value; the sgemm benchmark also prints a measured FMA loop).
func TheoreticalPeak(fmaUnits int) Peak {
	p := Peak{Cores: runtime.NumCPU(), VectorFloats: 4, FMA: cpu.X86.HasFMA, FMAUnits: fmaUnits}
	switch {
	case cpu.X86.HasAVX512F:
		p.VectorFloats = 16
	case cpu.X86.HasAVX2 || cpu.X86.HasAVX:
		p.VectorFloats = 8
	}
	p.GHz, _ = strconv.ParseFloat(cpuinfo()["cpu MHz"], 64)
	p.GHz /= 1000
	flops := 1
	if p.FMA {
		flops = 2
	}
	p.GFLOPS = float64(p.Cores*p.VectorFloats*flops*p.FMAUnits) * p.GHz
	return p
}

func (p Peak) String() string {
	return fmt.Sprintf("%d cores × %d fp32 lanes × %d (FMA %v) × %d FMA units × %.2f GHz = %.1f GFLOPS",
		p.Cores, p.VectorFloats, map[bool]int{true: 2, false: 1}[p.FMA], p.FMA, p.FMAUnits, p.GHz, p.GFLOPS)
}
