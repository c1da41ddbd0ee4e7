package benchmark

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestListsMatchDeepBench(t *testing.T) {
	all, err := Lists()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, p := range all {
		if p.AllReduce != nil {
			p.AllReduce = &AllReduce{Floats: p.AllReduce.Floats, Workers: 2}
		}
		if err := p.Validate(); err != nil {
			t.Errorf("embedded problem invalid: %v", err)
		}
		count[string(p.Class)+" "+string(p.Set)]++
	}
	// DeepBench's lists (code/kernels/*_problems.h).
	want := map[string]int{
		"gemm training": 160, "gemm inference-server": 75, "gemm inference-device": 13,
		"conv training": 94, "conv inference-server": 107, "conv inference-device": 17,
		"rnn training": 53, "rnn inference-server": 69, "rnn inference-device": 3,
		"allreduce training": 7,
	}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%s: %d problems, want %d", k, count[k], n)
		}
	}
}

func TestQuickProfile(t *testing.T) {
	q, err := Select(Quick)
	if err != nil {
		t.Fatal(err)
	}
	classes := map[Class]int{}
	for _, p := range q {
		classes[p.Class]++
	}
	for _, c := range []Class{ClassGEMM, ClassConv, ClassRNN, ClassAllReduce} {
		if classes[c] == 0 {
			t.Errorf("quick profile has no %s problem", c)
		}
	}
	caps := Capabilities{Precisions: map[Class][]Precision{ClassGEMM: {FP32, FP16}, ClassConv: {FP32}, ClassRNN: {FP32}, ClassAllReduce: {FP32}}, Workers: 4}
	plan, err := NewPlan(Quick, caps)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(q) + classes[ClassGEMM]; len(plan.Problems) != want {
		t.Errorf("plan has %d problems, want %d", len(plan.Problems), want)
	}
	for _, p := range plan.Problems {
		if p.Class == ClassAllReduce && p.AllReduce.Workers != 4 {
			t.Errorf("%s: workers not filled in", p.ID())
		}
	}
	caps.Workers = 1
	plan, _ = NewPlan(Quick, caps)
	for _, p := range plan.Problems {
		if p.Class == ClassAllReduce {
			t.Errorf("all-reduce planned on a single worker")
		}
	}
	if _, err := Select("fast"); err == nil {
		t.Error("unknown profile accepted")
	}
}

func TestFLOPs(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want float64
	}{
		{Problem{Class: ClassGEMM, GEMM: &GEMM{M: 1760, N: 16, K: 1760}}, 2 * 1760 * 16 * 1760},
		// P = (161-5)/2+1 = 79, Q = (700-20)/2+1 = 341.
		{Problem{Class: ClassConv, Conv: &Conv{W: 700, H: 161, C: 1, N: 4, K: 32, S: 20, R: 5, StrideW: 2, StrideH: 2}}, 2 * 4 * 32 * 79 * 341 * 1 * 5 * 20},
		{Problem{Class: ClassConv, Conv: &Conv{W: 7, H: 7, C: 512, N: 1, K: 512, S: 3, R: 3, PadW: 1, PadH: 1, StrideW: 1, StrideH: 1}}, 2 * 512 * 7 * 7 * 512 * 9},
		{Problem{Class: ClassRNN, RNN: &RNN{Hidden: 512, Batch: 16, Steps: 25, Cell: LSTM}}, 4 * 4 * 512 * 512 * 16 * 25},
		{Problem{Class: ClassRNN, RNN: &RNN{Hidden: 100, Batch: 2, Steps: 3, Cell: GRU}}, 4 * 3 * 100 * 100 * 2 * 3},
		{Problem{Class: ClassRNN, RNN: &RNN{Hidden: 100, Batch: 2, Steps: 3, Cell: Vanilla}}, 4 * 100 * 100 * 2 * 3},
	} {
		if got := tc.p.FLOPs(); got != tc.want {
			t.Errorf("%s: FLOPs %v, want %v", tc.p.Shape(), got, tc.want)
		}
	}
}

func TestDeriveAndScore(t *testing.T) {
	g := func(m int, ms float64, dev string, prec Precision) Result {
		return Result{Problem: Problem{Class: ClassGEMM, Set: SetTraining, Precision: prec, GEMM: &GEMM{M: m, N: 1000, K: 1000}},
			Device: dev, Repeats: 3, MinMS: ms, MedianMS: ms, MaxMS: ms}
	}
	rs := []Result{
		g(1000, 1, "gpu0", FP32), // 2 TFLOPS
		g(4000, 1, "gpu0", FP32), // 8 TFLOPS → geomean 4
		g(1000, 0.1, "gpu0", FP16),
		g(1000, 2, "gpu1", FP32),
		{Problem: Problem{Class: ClassAllReduce, Set: SetTraining, Precision: FP32, AllReduce: &AllReduce{Floats: 250_000_000, Workers: 2}},
			Device: "rig", Repeats: 1, MinMS: 1000, MedianMS: 1000, MaxMS: 1000},
		{Problem: Problem{Class: ClassGEMM, Set: SetTraining, Precision: BF16, GEMM: &GEMM{M: 1, N: 1, K: 1}}, Device: "gpu1", Skipped: "no bf16"},
	}
	for i := range rs {
		rs[i].Derive()
	}
	if !approx(rs[0].TFLOPS, 2) || !approx(rs[4].AlgBW, 1) || !approx(rs[4].BusBW, 1) {
		t.Fatalf("derive: %v TFLOPS, %v/%v GB/s", rs[0].TFLOPS, rs[4].AlgBW, rs[4].BusBW)
	}
	s := Score(rs)
	var got []string
	for _, c := range s.Classes {
		got = append(got, c.Device+" "+string(c.Class)+" "+string(c.Precision))
	}
	if strings.Join(got, ",") != "gpu0 gemm fp16,gpu0 gemm fp32,gpu1 gemm fp32,rig allreduce fp32" {
		t.Errorf("classes %v", got)
	}
	if !approx(s.Classes[1].Value, 4) {
		t.Errorf("gpu0 fp32 score %v, want geometric mean 4", s.Classes[1].Value)
	}
	// gpu0's best precision is fp16 (20 TFLOPS), gpu1 has fp32 only (1 TFLOPS).
	if len(s.Devices) != 2 || !approx(s.Devices[0].Score, 20) || !approx(s.Devices[1].Score, 1) || !approx(s.Rig, 21) {
		t.Errorf("devices %+v rig %v", s.Devices, s.Rig)
	}
	if !approx(s.AllReduceBusBW, 1) {
		t.Errorf("busbw %v", s.AllReduceBusBW)
	}
}

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func TestResultCheck(t *testing.T) {
	ok := Result{Problem: Problem{Class: ClassGEMM, Set: SetTraining, Precision: FP32, GEMM: &GEMM{M: 1, N: 1, K: 1}}, Device: "cpu", Repeats: 1, MinMS: 1, MedianMS: 2, MaxMS: 3}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Result){
		"negative": func(r *Result) { r.MinMS = -1 },
		"nan":      func(r *Result) { r.MedianMS = math.NaN() },
		"order":    func(r *Result) { r.MinMS = 5 },
		"repeats":  func(r *Result) { r.Repeats = 0 },
		"device":   func(r *Result) { r.Device = "" },
		"shape":    func(r *Result) { r.Problem.Conv = &Conv{} },
		"class":    func(r *Result) { r.Problem.Class = ClassRNN },
	} {
		r := ok
		mut(&r)
		if r.Check() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func testReport(t *testing.T) *Report {
	t.Helper()
	plan, err := NewPlan(Quick, Capabilities{Precisions: map[Class][]Precision{ClassGEMM: {FP32}, ClassConv: {FP32}, ClassRNN: {FP32}, ClassAllReduce: {FP32}}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var rs []Result
	for i, p := range plan.Problems {
		dev := "cpu"
		if p.Class == ClassAllReduce {
			dev = "rig"
		}
		ms := float64(i + 1)
		rs = append(rs, Result{Problem: p, Device: dev, Warmup: 1, Repeats: 3, MinMS: ms * 0.9, MedianMS: ms, MaxMS: ms * 1.3})
	}
	r, err := NewReport("cpu", "cpu/1 test", plan, Hardware{OS: "linux", CPU: "test cpu", Cores: 2}, rs, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReportSignVerify(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	r := testReport(t)
	if err := r.Verify(); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned report: %v, want ErrUnsigned", err)
	}
	if err := r.Sign(key); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeReport(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(); err != nil {
		t.Fatalf("round trip: %v", err)
	}

	tamper := map[string]func(*Report){
		"score":       func(r *Report) { r.Scores.Rig *= 2 },
		"time":        func(r *Report) { r.Results[0].MedianMS /= 2 },
		"hardware":    func(r *Report) { r.Hardware.CPU = "faster cpu" },
		"timestamp":   func(r *Report) { r.CreatedAt = r.CreatedAt.Add(time.Hour) },
		"public key":  func(r *Report) { other, _, _ := ed25519.GenerateKey(nil); r.PublicKey = other },
		"drop result": func(r *Report) { r.Results = r.Results[1:] },
	}
	for name, mut := range tamper {
		c, _ := DecodeReport(bytes.NewReader(b))
		mut(c)
		if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s tampered: %v, want ErrBadSignature", name, err)
		}
	}
	// A report re-signed by its own key after inflating the score still fails: scores
	// must follow from results.
	c, _ := DecodeReport(bytes.NewReader(b))
	c.Scores.Rig *= 2
	_ = c.Sign(key)
	if err := c.Verify(); err == nil || errors.Is(err, ErrBadSignature) {
		t.Errorf("inflated, re-signed score: %v, want a score mismatch", err)
	}
	c, _ = DecodeReport(bytes.NewReader(b))
	c.Results[0].TFLOPS *= 2
	_ = c.Sign(key)
	if err := c.Verify(); err == nil {
		t.Error("inflated, re-signed TFLOPS verified")
	}
	// Byte-level tamper of the file.
	raw := bytes.Replace(b, []byte(`"cores": 2`), []byte(`"cores": 64`), 1)
	c, err = DecodeReport(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("edited file: %v", err)
	}
}

func TestDecodeReportStrict(t *testing.T) {
	for name, in := range map[string]string{
		"unknown field": `{"version":1,"bonus":true}`,
		"trailing":      `{"version":1} {}`,
		"not json":      `version=1`,
		"wrong type":    `{"version":"1"}`,
	} {
		if _, err := DecodeReport(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestV100Reference(t *testing.T) {
	ref, err := V100()
	if err != nil {
		t.Fatal(err)
	}
	q, _ := Select(Quick)
	matched := 0
	for _, p := range q {
		if _, ok := ref.Lookup(Result{Problem: p, Device: "cpu"}); ok {
			matched++
		}
	}
	if matched == 0 {
		t.Error("no quick problem matches DeepBench's V100 results")
	}
	// DeepBench: 1760x16x1760 NN fp32 took 0.038 ms on a V100.
	ms, ok := ref.Lookup(Result{Problem: Problem{Class: ClassGEMM, Precision: FP32, GEMM: &GEMM{M: 1760, N: 16, K: 1760}}})
	if !ok || ms != 0.038 {
		t.Errorf("V100 1760x16x1760: %v %v", ms, ok)
	}
}

// FuzzDecodeReport: reports arrive from other peers; decoding and verifying must never
// panic, and whatever verifies must re-encode to something that verifies.
func FuzzDecodeReport(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/report-*.json")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"results":[{"problem":{"class":"gemm"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReport(bytes.NewReader(b))
		if err != nil {
			return
		}
		if r.Verify() != nil {
			return
		}
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := DecodeReport(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if err := r2.Verify(); err != nil {
			t.Fatalf("verified report fails after re-encoding: %v", err)
		}
	})
}

// TestWriteSeedReport keeps a signed seed report in testdata for the fuzzer and for
// `gpunode bench verify` tests.
func TestSeedReportVerifies(t *testing.T) {
	b, err := os.ReadFile("testdata/report-signed.json")
	if os.IsNotExist(err) || os.Getenv("GPUNODE_UPDATE_TESTDATA") != "" {
		_, key, _ := ed25519.GenerateKey(nil)
		r := testReport(t)
		if err := r.Sign(key); err != nil {
			t.Fatal(err)
		}
		b, _ = json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile("testdata/report-signed.json", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := DecodeReport(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
}
