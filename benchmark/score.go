package benchmark

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Result is the measurement of one problem on one device.
type Result struct {
	Problem Problem `json:"problem"`
	// Device is where it ran: "gpu0", "gpu1", …, "cpu", or "rig" for an all-reduce across
	// all of them.
	Device string `json:"device"`
	// Warmup and Repeats are the untimed and timed runs.
	Warmup  int `json:"warmup"`
	Repeats int `json:"repeats"`
	// The spread of the timed runs, milliseconds.
	MinMS    float64 `json:"min_ms"`
	MedianMS float64 `json:"median_ms"`
	MaxMS    float64 `json:"max_ms"`
	// TFLOPS is Problem.FLOPs() / median time (compute problems).
	TFLOPS float64 `json:"tflops,omitempty"`
	// AlgBW and BusBW are all-reduce bandwidths in GB/s (10⁹ bytes/s) at the median time:
	// algbw = bytes / time, busbw = algbw · 2(n−1)/n (nccl-tests' definitions).
	AlgBW float64 `json:"algbw_gbs,omitempty"`
	BusBW float64 `json:"busbw_gbs,omitempty"`
	// Skipped says why the backend did not run the problem (e.g. a precision the device
	// lacks); a skipped result has no times and is not scored.
	Skipped string `json:"skipped,omitempty"`
}

// Derive fills in TFLOPS or the bandwidths from the times.
func (r *Result) Derive() {
	r.TFLOPS, r.AlgBW, r.BusBW = 0, 0, 0
	if r.Skipped != "" || r.MedianMS <= 0 {
		return
	}
	sec := r.MedianMS / 1e3
	if r.Problem.Class == ClassAllReduce {
		r.AlgBW = r.Problem.Bytes() / sec / 1e9
		n := float64(r.Problem.AllReduce.Workers)
		r.BusBW = r.AlgBW * 2 * (n - 1) / n
		return
	}
	r.TFLOPS = r.Problem.FLOPs() / sec / 1e12
}

// Check reports a result that could not come from a real measurement.
func (r Result) Check() error {
	if err := r.Problem.Validate(); err != nil {
		return err
	}
	if r.Device == "" {
		return fmt.Errorf("result %s: no device", r.Problem.ID())
	}
	if r.Skipped != "" {
		return nil
	}
	for _, v := range []float64{r.MinMS, r.MedianMS, r.MaxMS} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			return fmt.Errorf("result %s: times must be positive and finite, have min %v median %v max %v", r.Problem.ID(), r.MinMS, r.MedianMS, r.MaxMS)
		}
	}
	if r.MinMS > r.MedianMS || r.MedianMS > r.MaxMS {
		return fmt.Errorf("result %s: want min ≤ median ≤ max, have %v, %v, %v", r.Problem.ID(), r.MinMS, r.MedianMS, r.MaxMS)
	}
	if r.Repeats < 1 || r.Warmup < 0 {
		return fmt.Errorf("result %s: want ≥ 1 repeat and ≥ 0 warm-up runs, have %d and %d", r.Problem.ID(), r.Repeats, r.Warmup)
	}
	return nil
}

// Spread summarizes timed runs (milliseconds) as min, median and max.
func Spread(ms []float64) (lo, med, hi float64) {
	if len(ms) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return s[0], med, s[n-1]
}

// ClassScore is the geometric mean over one device's problems of one class and precision.
type ClassScore struct {
	Device    string    `json:"device"`
	Class     Class     `json:"class"`
	Precision Precision `json:"precision"`
	// Value is in TFLOPS, or busbw GB/s for all-reduce.
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Problems int     `json:"problems"`
}

// DeviceScore is one device's overall score, TFLOPS.
type DeviceScore struct {
	Device string  `json:"device"`
	Score  float64 `json:"score"`
}

// Scores are the report's summary.
//
// A class score is the geometric mean of TFLOPS over the class's problems in one
// precision on one device (all-reduce: of busbw GB/s, device "rig"). A device's score is
// the geometric mean, over the compute classes it ran (GEMM, convolution, RNN), of the
// class's best precision score: what the device delivers for training in the fastest
// arithmetic it supports. The rig's score, its "DL hashrate", is the sum of its devices'
// scores; all-reduce is reported beside it (AllReduceBusBW) since it is not in TFLOPS.
type Scores struct {
	Classes []ClassScore  `json:"classes"`
	Devices []DeviceScore `json:"devices"`
	// Rig is the sum of the device scores, TFLOPS.
	Rig float64 `json:"rig"`
	// AllReduceBusBW is the geometric mean busbw of the all-reduce problems, GB/s.
	AllReduceBusBW float64 `json:"allreduce_busbw_gbs,omitempty"`
}

// Score computes the scores of results whose TFLOPS and bandwidths are derived.
func Score(results []Result) Scores {
	type key struct {
		dev   string
		class Class
		prec  Precision
	}
	logs := map[key][]float64{}
	for _, r := range results {
		if r.Skipped != "" {
			continue
		}
		v := r.TFLOPS
		if r.Problem.Class == ClassAllReduce {
			v = r.BusBW
		}
		if v <= 0 {
			continue
		}
		k := key{r.Device, r.Problem.Class, r.Problem.Precision}
		logs[k] = append(logs[k], math.Log(v))
	}
	var s Scores
	for k, l := range logs {
		unit := "TFLOPS"
		if k.class == ClassAllReduce {
			unit = "GB/s"
		}
		s.Classes = append(s.Classes, ClassScore{Device: k.dev, Class: k.class, Precision: k.prec, Value: expMean(l), Unit: unit, Problems: len(l)})
	}
	slices.SortFunc(s.Classes, func(a, b ClassScore) int {
		return cmp.Or(cmp.Compare(a.Device, b.Device), cmp.Compare(a.Class, b.Class), cmp.Compare(a.Precision, b.Precision))
	})
	best := map[string]map[Class]float64{}
	var ar []float64
	for _, c := range s.Classes {
		if c.Class == ClassAllReduce {
			ar = append(ar, math.Log(c.Value))
			continue
		}
		if best[c.Device] == nil {
			best[c.Device] = map[Class]float64{}
		}
		best[c.Device][c.Class] = max(best[c.Device][c.Class], c.Value)
	}
	for dev, m := range best {
		var l []float64
		for _, class := range []Class{ClassGEMM, ClassConv, ClassRNN} {
			if v, ok := m[class]; ok {
				l = append(l, math.Log(v))
			}
		}
		s.Devices = append(s.Devices, DeviceScore{Device: dev, Score: expMean(l)})
	}
	slices.SortFunc(s.Devices, func(a, b DeviceScore) int { return cmp.Compare(a.Device, b.Device) })
	for _, d := range s.Devices {
		s.Rig += d.Score
	}
	if len(ar) > 0 {
		s.AllReduceBusBW = expMean(ar)
	}
	return s
}

func expMean(logs []float64) float64 {
	var sum float64
	for _, l := range logs {
		sum += l
	}
	return math.Exp(sum / float64(len(logs)))
}
