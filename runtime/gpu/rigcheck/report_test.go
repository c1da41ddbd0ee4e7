package rigcheck

import (
	"strings"
	"testing"
)

// TestReportFormat pins the format the README documents: a header with the format
// version, [sections] of indented "key: value" lines, problems marked, a last RESULT line.
func TestReportFormat(t *testing.T) {
	var r Report
	s := r.Section("nvml")
	s.Line("driver", "%s (cuda %s)", "550.54.15", "12.4")
	s.Line("gpu 0 GetPowerUsage", "ERROR_NOT_SUPPORTED")
	h := r.Section("harness")
	h.Problem("gemm fp32 4096", "harness %.1f TFLOPS, torch %.1f TFLOPS:\nmore than 10%% apart", 10.0, 14.0)
	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := `== gpunode rig check (report format 1)

[nvml]
  driver:                      550.54.15 (cuda 12.4)
  gpu 0 GetPowerUsage:         ERROR_NOT_SUPPORTED

[harness]
  gemm fp32 4096:              PROBLEM: harness 10.0 TFLOPS, torch 14.0 TFLOPS: more than 10% apart

RESULT: FAIL (1 problems)
`
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
	var ok Report
	ok.Section("nvml").Line("gpus", "8")
	b.Reset()
	ok.WriteTo(&b)
	if !strings.HasSuffix(b.String(), "\nRESULT: PASS\n") {
		t.Errorf("passing report ends %q", b.String())
	}
}
