package runtime

import (
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	ok := Spec{JobID: "job-1", Image: "x@sha256:00", Command: []string{"/train"}, OutputDir: "/var/out"}
	if errs := ok.Validate(); len(errs) > 0 {
		t.Fatalf("valid spec: %v", errs)
	}
	bad := Spec{
		JobID: "../etc", Network: "host", OutputDir: "out", OutputTarget: "out",
		Inputs:    []Mount{{Source: "rel", Target: "/in"}},
		Resources: Resources{PIDs: -1},
	}
	errs := bad.Validate()
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"job_id", "image", "command", "output_dir", "output_target", "mount 0", "network \"host\"", "negative"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no error mentions %q:\n%s", want, joined)
		}
	}
	if ValidJobID("a/b") || ValidJobID("") || !ValidJobID("0x12ab.job_7") {
		t.Error("ValidJobID")
	}
}

// TestSpecRefusesReservedEnv: a spec that reaches a runtime by another path than a
// manifest is held to the same environment rules.
func TestSpecRefusesReservedEnv(t *testing.T) {
	base := Spec{JobID: "job-1", Image: "x@sha256:00", Command: []string{"/train"}, OutputDir: "/var/out"}
	for _, tt := range []struct {
		env  string
		want string // "" when allowed
	}{
		{"SEED=42", ""},
		{"CUDA_LAUNCH_BLOCKING=1", ""},
		{"PYTHONPATH=/src", ""},
		{"LD_PRELOAD=/out/evil.so", "LD_PRELOAD"},
		{"LD_AUDIT=/out/evil.so", "LD_AUDIT"},
		{"LD_LIBRARY_PATH=/out", "LD_LIBRARY_PATH"},
		{"NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES"},
		{"NVIDIA_DRIVER_CAPABILITIES=all", "NVIDIA_DRIVER_CAPABILITIES"},
		{"NOEQUALS", "KEY=VALUE"},
		{"=x", "KEY=VALUE"},
	} {
		s := base
		s.Env = []string{tt.env}
		errs := s.Validate()
		switch {
		case tt.want == "" && len(errs) > 0:
			t.Errorf("%s refused: %v", tt.env, errs)
		case tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want)):
			t.Errorf("%s: errors %v, want one naming %s", tt.env, errs, tt.want)
		}
	}
}
