//go:build integration

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
)

// TestBenchQuickCPU runs `gpunode bench --profile quick --backend cpu` as a user would and
// checks the table, the V100 comparison and the score; then `bench verify` on the kept
// report, and on a tampered copy.
func TestBenchQuickCPU(t *testing.T) {
	bin := testenv.Binary(t)
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "bench", "--profile", "quick", "--backend", "cpu", "--data-dir", data)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpunode bench: %v\n%s\n%s", err, out, stderr.String())
	}
	t.Logf("gpunode bench --profile quick --backend cpu took %s", time.Since(start).Round(time.Second))
	for _, want := range []string{"CLASS", "gemm", "conv", "rnn", "allreduce", "V100 ms", "TFLOPS", "Rig score (DL hashrate):", "signed report kept in"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "16/16") {
		t.Errorf("no progress bar on stderr: %q", stderr.String())
	}

	report := filepath.Join(data, "benchmark", "last-report.json")
	out, err = exec.CommandContext(ctx, bin, "bench", "verify", report).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid, signed by ed25519 key") {
		t.Fatalf("verify: %v: %s", err, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(t.TempDir(), "tampered.json")
	os.WriteFile(tampered, []byte(strings.Replace(string(b), `"profile": "quick"`, `"profile": "full"`, 1)), 0o644)
	out, err = exec.CommandContext(ctx, bin, "bench", "verify", tampered).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "signature does not verify") {
		t.Fatalf("tampered report: %v: %s", err, out)
	}

	// No GPU here: the cuda backend says so and how to measure the CPU instead.
	out, err = exec.CommandContext(ctx, bin, "bench", "--backend", "cuda", "--data-dir", data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no NVIDIA driver") || !strings.Contains(string(out), "--backend cpu") {
		t.Fatalf("cuda without GPUs: %v: %s", err, out)
	}
}
