package benchmark

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Reference holds earlier times to compare a run with: DeepBench's published V100 results,
// or an earlier report of the same rig.
type Reference struct {
	// Name labels the comparison column ("V100", "previous").
	Name string
	ms   map[string]float64
}

func refKey(p Problem, device string) string {
	return string(p.Class) + "|" + string(p.Precision) + "|" + p.Shape() + "|" + device
}

// Lookup returns the reference median time of a result's problem, if it has one.
func (ref *Reference) Lookup(r Result) (float64, bool) {
	if ref == nil {
		return 0, false
	}
	if ms, ok := ref.ms[refKey(r.Problem, r.Device)]; ok {
		return ms, true
	}
	ms, ok := ref.ms[refKey(r.Problem, "")]
	return ms, ok
}

// Len is the number of problems the reference has times for.
func (ref *Reference) Len() int { return len(ref.ms) }

var (
	v100Once sync.Once
	v100     *Reference
	v100Err  error
)

// V100 returns DeepBench's published forward times on an NVIDIA V100 (training set, fp32
// and fp16-mixed; its fp16 times stand for our fp16). Matching is by exact shape.
func V100() (*Reference, error) {
	v100Once.Do(func() {
		b, err := data.ReadFile("data/reference_v100.csv")
		if err != nil {
			v100Err = err
			return
		}
		rd := csv.NewReader(strings.NewReader(string(b)))
		rd.FieldsPerRecord = 4
		recs, err := rd.ReadAll()
		if err != nil {
			v100Err = fmt.Errorf("reference_v100.csv: %w", err)
			return
		}
		ref := &Reference{Name: "V100", ms: map[string]float64{}}
		for _, rec := range recs[1:] {
			ms, err := strconv.ParseFloat(rec[3], 64)
			if err != nil {
				v100Err = fmt.Errorf("reference_v100.csv: %v: %w", rec, err)
				return
			}
			ref.ms[rec[1]+"|"+rec[0]+"|"+rec[2]+"|"] = ms
		}
		v100 = ref
	})
	return v100, v100Err
}

// ReportReference makes a reference of an earlier report, matching problems by shape,
// precision and device.
func ReportReference(name string, r *Report) *Reference {
	ref := &Reference{Name: name, ms: map[string]float64{}}
	for _, res := range r.Results {
		if res.Skipped == "" && res.MedianMS > 0 {
			ref.ms[refKey(res.Problem, res.Device)] = res.MedianMS
		}
	}
	return ref
}
