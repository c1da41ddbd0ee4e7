package benchmark

import (
	"bufio"
	"embed"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The problem lists are DeepBench's (github.com/baidu-research/DeepBench, Apache-2.0,
// code/kernels/*_problems.h), converted to CSV; reference_v100.csv holds the forward times
// of its published NVIDIA V100 results (results/train/DeepBench_NV_V100.xlsx).
//
//go:embed data/*.csv data/quick.txt
var data embed.FS

// Profile names a problem selection.
type Profile string

// Profiles.
const (
	// Quick is a representative subset (data/quick.txt): about a minute on a modern GPU.
	Quick Profile = "quick"
	// Full is every problem of every DeepBench set.
	Full Profile = "full"
)

// Timing says how many times a backend runs each problem. A backend runs Warmup untimed
// runs, then timed runs until it has at least MinRepeats and either MaxRepeats or
// MinTimeMS of measured time.
type Timing struct {
	Warmup     int     `json:"warmup"`
	MinRepeats int     `json:"min_repeats"`
	MaxRepeats int     `json:"max_repeats"`
	MinTimeMS  float64 `json:"min_time_ms"`
}

// Validate checks the timing is runnable.
func (t Timing) Validate() error {
	if t.Warmup < 0 || t.MinRepeats < 1 || t.MaxRepeats < t.MinRepeats || t.MaxRepeats > 100000 || t.MinTimeMS < 0 {
		return fmt.Errorf("timing %+v: want warmup ≥ 0, 1 ≤ min_repeats ≤ max_repeats ≤ 100000, min_time_ms ≥ 0", t)
	}
	return nil
}

// Plan is what a backend runs: problems and how to time them.
type Plan struct {
	Profile  Profile   `json:"profile"`
	Timing   Timing    `json:"timing"`
	Problems []Problem `json:"problems"`
}

// Capabilities is what a backend can run: the precisions per class, the number of
// devices it runs each compute problem on (0 means 1) and the number of workers (GPUs,
// or CPU workers) its all-reduce spans.
type Capabilities struct {
	Precisions map[Class][]Precision
	Devices    int
	Workers    int
}

// Results is how many results a plan gives on a backend with these capabilities: each
// compute problem once per device, each all-reduce once.
func (c Capabilities) Results(plan Plan) int {
	n := 0
	for _, p := range plan.Problems {
		if p.Class == ClassAllReduce {
			n++
		} else {
			n += max(1, c.Devices)
		}
	}
	return n
}

var (
	listsOnce sync.Once
	lists     []Problem
	listsErr  error
)

// Lists returns every problem of DeepBench's lists (fp32, all-reduce workers unset).
func Lists() ([]Problem, error) {
	listsOnce.Do(func() { lists, listsErr = loadLists() })
	return slices.Clone(lists), listsErr
}

func loadLists() ([]Problem, error) {
	var all []Problem
	for _, f := range []struct {
		name  string
		class Class
		cols  int
	}{{"gemm", ClassGEMM, 6}, {"conv", ClassConv, 12}, {"rnn", ClassRNN, 5}, {"allreduce", ClassAllReduce, 2}} {
		b, err := data.ReadFile("data/" + f.name + ".csv")
		if err != nil {
			return nil, err
		}
		r := csv.NewReader(strings.NewReader(string(b)))
		r.FieldsPerRecord = f.cols
		if _, err := r.Read(); err != nil {
			return nil, fmt.Errorf("%s.csv: header: %w", f.name, err)
		}
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s.csv: %w", f.name, err)
			}
			p, err := parseRow(f.class, rec)
			if err != nil {
				return nil, fmt.Errorf("%s.csv: %v: %w", f.name, rec, err)
			}
			all = append(all, p)
		}
	}
	return all, nil
}

func parseRow(class Class, rec []string) (Problem, error) {
	p := Problem{Class: class, Set: Set(rec[0]), Precision: FP32}
	var n []int
	for _, s := range rec[1:] {
		switch s {
		case "true":
			n = append(n, 1)
		case "false":
			n = append(n, 0)
		case string(Vanilla), string(LSTM), string(GRU):
		default:
			v, err := strconv.Atoi(s)
			if err != nil {
				return p, err
			}
			n = append(n, v)
		}
	}
	switch class {
	case ClassGEMM:
		p.GEMM = &GEMM{M: n[0], N: n[1], K: n[2], TransA: n[3] == 1, TransB: n[4] == 1}
	case ClassConv:
		p.Conv = &Conv{W: n[0], H: n[1], C: n[2], N: n[3], K: n[4], S: n[5], R: n[6], PadW: n[7], PadH: n[8], StrideW: n[9], StrideH: n[10]}
	case ClassRNN:
		p.RNN = &RNN{Hidden: n[0], Batch: n[1], Steps: n[2], Cell: Cell(rec[4])}
	case ClassAllReduce:
		p.AllReduce = &AllReduce{Floats: int64(n[0])}
	}
	return p, nil
}

// quickKeys returns the "class set shape" lines of data/quick.txt.
func quickKeys() ([]string, error) {
	f, err := data.Open("data/quick.txt")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		keys = append(keys, l)
	}
	return keys, sc.Err()
}

func listKey(p Problem) string {
	q := p
	if q.AllReduce != nil {
		a := *q.AllReduce
		a.Workers = 0
		q.AllReduce = &a
	}
	return string(q.Class) + " " + string(q.Set) + " " + q.Shape()
}

// Select returns the problems of a profile, without precisions or workers filled in.
func Select(profile Profile) ([]Problem, error) {
	all, err := Lists()
	if err != nil {
		return nil, err
	}
	switch profile {
	case Full:
		return all, nil
	case Quick:
		keys, err := quickKeys()
		if err != nil {
			return nil, err
		}
		byKey := map[string]Problem{}
		for _, p := range all {
			byKey[listKey(p)] = p
		}
		var out []Problem
		for _, k := range keys {
			p, ok := byKey[k]
			if !ok {
				return nil, fmt.Errorf("quick profile: %q is not in the problem lists", k)
			}
			out = append(out, p)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown profile %q (want quick or full)", profile)
}

// DefaultTiming is the timing of a profile.
func DefaultTiming(profile Profile) Timing {
	if profile == Full {
		return Timing{Warmup: 5, MinRepeats: 10, MaxRepeats: 1000, MinTimeMS: 1000}
	}
	return Timing{Warmup: 1, MinRepeats: 3, MaxRepeats: 50, MinTimeMS: 200}
}

// NewPlan expands a profile for a backend: every problem in every precision the backend
// supports for its class, all-reduce across the backend's workers (skipped with fewer
// than two).
func NewPlan(profile Profile, caps Capabilities) (Plan, error) {
	probs, err := Select(profile)
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{Profile: profile, Timing: DefaultTiming(profile)}
	for _, p := range probs {
		if p.Class == ClassAllReduce {
			if caps.Workers < 2 {
				continue
			}
			a := *p.AllReduce
			a.Workers = caps.Workers
			p.AllReduce = &a
		}
		for _, prec := range caps.Precisions[p.Class] {
			q := p
			q.Precision = prec
			plan.Problems = append(plan.Problems, q)
		}
	}
	if len(plan.Problems) == 0 {
		return Plan{}, fmt.Errorf("profile %s: the backend supports none of its problems", profile)
	}
	return plan, nil
}
