//go:build integration

package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
)

// TestPolicyCheckAsValidator: policy check --as-validator explains the [validator] rules
// for a job's validation duty and the caps its evaluation would get.
func TestPolicyCheckAsValidator(t *testing.T) {
	bin := testenv.Binary(t)
	root := testenv.RepoRoot(t)
	manifest := filepath.Join(root, "job", "testdata", "valid.json")
	pol := filepath.Join(root, "node", "policy", "testdata", "validator.toml")
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"policy", "check", manifest, "--policy", pol, "--as-validator"}, args...)...).CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("policy check %s: err %v, want ok=%v\n%s", strings.Join(args, " "), err, wantOK, out)
		}
		return string(out)
	}
	out := run(true, "--sponsor", "0x1111111111111111111111111111111111111111", "--fee", "1000")
	for _, w := range []string{"pass local validator.sponsors", "pass local validator.images.allow", "pass local validator.min_fee_wei", "EVALUATE (caps: cpus 2, memory 4096 MiB, run time 30m0s"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	out = run(false, "--sponsor", "0x2222222222222222222222222222222222222222", "--fee", "10")
	for _, w := range []string{"FAIL local validator.sponsors", "FAIL local validator.min_fee_wei: fee 10 wei, minimum 1000 wei", "declines the validation duty"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if out := run(false, "--sponsor", "0x1111111111111111111111111111111111111111", "--fee", "5000", "--token", "0x5555555555555555555555555555555555555555"); !strings.Contains(out, "not listed") {
		t.Errorf("unlisted token:\n%s", out)
	}
	if out := run(false, "--fee", "-1"); !strings.Contains(out, "--fee") {
		t.Errorf("bad fee:\n%s", out)
	}
}
