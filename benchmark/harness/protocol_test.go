package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/benchmark"
)

func loadPlan(t testing.TB) benchmark.Plan {
	t.Helper()
	b, err := os.ReadFile("testdata/plan.json")
	if err != nil {
		t.Fatal(err)
	}
	var p benchmark.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// testdata/cpu-run.jsonl is real output of harness.py --device cpu on Debian's torch for
// testdata/plan.json.
func TestParseRealOutput(t *testing.T) {
	plan := loadPlan(t)
	f, err := os.Open("testdata/cpu-run.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	hello, res, err := Parse(f, plan, func(benchmark.Result) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	if hello.Device != "cpu" || len(hello.Devices) != 1 || n != len(plan.Problems) || len(res) != n {
		t.Fatalf("hello %+v, %d progress, %d results", hello, n, len(res))
	}
	r, err := benchmark.NewReport("torch-cpu", hello.Harness, plan, benchmark.Hardware{CPU: hello.CPU, Cores: hello.CPUCount}, res, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Scores.Rig <= 0 {
		t.Errorf("no score: %+v", r.Scores)
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	plan := loadPlan(t)
	good, err := os.ReadFile("testdata/cpu-run.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(good)), "\n")
	result0 := lines[1]
	edit := func(i int, from, to string) string {
		l := append([]string(nil), lines...)
		if !strings.Contains(l[i], from) {
			t.Fatalf("line %d lacks %q", i, from)
		}
		l[i] = strings.Replace(l[i], from, to, 1)
		return strings.Join(l, "\n")
	}
	drop := func(i int) string {
		l := append([]string(nil), lines[:i]...)
		return strings.Join(append(l, lines[i+1:]...), "\n")
	}
	for name, tc := range map[string]struct {
		out  string
		want string
	}{
		"empty":            {"", "no hello"},
		"truncated":        {strings.Join(lines[:4], "\n"), "ended before done"},
		"not json":         {lines[0] + "\nTraceback (most recent call last):", "not a JSON object"},
		"unknown field":    {edit(1, `"repeats"`, `"bonus":1,"repeats"`), "unknown field"},
		"unknown type":     {edit(1, `"type":"result"`, `"type":"rsult"`), "unknown line type"},
		"result first":     {strings.Join(lines[1:], "\n"), "before hello"},
		"negative time":    {edit(1, `"min_ms":`, `"min_ms":-`), "positive"},
		"min above median": {edit(1, `"min_ms":`, `"min_ms":9`), "min ≤ median"},
		"index outside":    {edit(1, `"index":0`, `"index":99`), "outside the plan"},
		"no index":         {edit(1, `"index":0,`, ``), "index missing"},
		"unknown device":   {edit(1, `"device":"cpu"`, `"device":"gpu7"`), "did not list"},
		"duplicate":        {strings.Replace(string(good), result0, result0+"\n"+result0, 1), "second result"},
		"missing result":   {drop(2), "done counts"},
		"count mismatch":   {edit(len(lines)-1, `"results":8`, `"results":9`), "done counts"},
		"after done":       {string(good) + result0, "after done"},
		"repeats":          {edit(1, `"repeats":2`, `"repeats":40`), "timed runs"},
		"no batch":         {edit(1, `"batch":181,`, ``), "batch 0 out of range"},
		"batch too large":  {edit(1, `"batch":181`, `"batch":70000`), "batch 70000 out of range"},
		"protocol":         {edit(0, `"protocol":1`, `"protocol":2`), "protocol 2"},
		"second hello":     {lines[0] + "\n" + string(good), "second hello"},
		"skip no reason":   {edit(3, `"reason":"fp16 needs a CUDA device"`, `"reason":""`), "without a reason"},
		"long reason":      {edit(3, `"reason":"fp16 needs a CUDA device"`, `"reason":"`+strings.Repeat("x", 2000)+`"`), "longer than"},
		"device kind":      {edit(0, `"device":"cpu"`, `"device":"tpu"`), "want cpu or cuda"},
		"harness error":    {lines[0] + "\n" + `{"type":"error","error":"CUDA out of memory"}`, "harness failed: CUDA out of memory"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Parse(strings.NewReader(tc.out), plan, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.want != "harness failed: CUDA out of memory" && !errors.Is(err, ErrProtocol) {
				t.Errorf("%v is not ErrProtocol", err)
			}
		})
	}
}

// FuzzParse: harness output comes from a container running code the node did not write.
// No input may panic the parser, and whatever it accepts must be complete and plausible.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.jsonl")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	plan := loadPlan(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, res, err := Parse(bytes.NewReader(b), plan, nil)
		if err != nil {
			return
		}
		if len(res) != len(plan.Problems) {
			t.Fatalf("accepted %d results for %d problems", len(res), len(plan.Problems))
		}
		for _, r := range res {
			if err := r.Check(); err != nil {
				t.Fatalf("accepted an implausible result: %v", err)
			}
		}
	})
}
