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
