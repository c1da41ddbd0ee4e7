//go:build integration

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
)

// TestPoolCLI runs the built binary: keygen, sign, verify, and policy check with a pool
// policy, a tightening local policy and a loosening one.
func TestPoolCLI(t *testing.T) {
	bin := testenv.Binary(t)
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("gpunode %s: err %v, want ok=%v\n%s", strings.Join(args, " "), err, wantOK, out)
		}
		return string(out)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run(true, "pool", "keygen")
	if out := run(false, "pool", "keygen"); !strings.Contains(out, "refusing to replace") {
		t.Errorf("second keygen: %s", out)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "pool.pub"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(pub))
	write("pool.toml", "version = 1\n[limits]\nmax_gpus = 4\n[sponsors]\ndeny = [\"0x2222222222222222222222222222222222222222\"]\n")
	run(true, "pool", "sign", "pool.toml", "--seq", "7")
	if out := run(true, "pool", "verify", "pool.toml.signed", "--pool-key", key); !strings.Contains(out, "seq 7") {
		t.Errorf("verify: %s", out)
	}
	manifest := filepath.Join(root, "job", "testdata", "valid.json")
	pool := []string{"--pool-policy", "pool.toml.signed", "--pool-key", key}

	write("local.toml", "version = 1\n[limits]\nmax_gpus = 2\n[datasets]\n\"medical-ct\" = [\"*\"]\n")
	out := run(true, append([]string{"policy", "check", manifest, "--policy", "local.toml"}, pool...)...)
	for _, w := range []string{"pass pool limits.max_gpus: job asks for 2 GPUs, limit 4", "pass local limits.max_gpus", "ALLOW"} {
		if !strings.Contains(out, w) {
			t.Errorf("check output lacks %q:\n%s", w, out)
		}
	}
	out = run(false, append([]string{"policy", "check", manifest, "--policy", "local.toml", "--sponsor", "0x2222222222222222222222222222222222222222"}, pool...)...)
	if !strings.Contains(out, "FAIL pool sponsors.deny: sponsor 0x2222222222222222222222222222222222222222 is denied") || !strings.Contains(out, "policy denies the job") {
		t.Errorf("denied check output:\n%s", out)
	}

	write("loose.toml", "version = 1\n[limits]\nmax_gpus = 16\n")
	out = run(false, append([]string{"policy", "check", manifest, "--policy", "loose.toml"}, pool...)...)
	if !strings.Contains(out, "may only tighten the pool's") || !strings.Contains(out, "limits.max_gpus = 16 exceeds the pool's 4") {
		t.Errorf("loosening local policy not refused clearly:\n%s", out)
	}

	signed, _ := os.ReadFile(filepath.Join(dir, "pool.toml.signed"))
	write("tampered.signed", strings.Replace(string(signed), `"seq": 7`, `"seq": 8`, 1))
	if out := run(false, "pool", "verify", "tampered.signed", "--pool-key", key); !strings.Contains(out, "bad signature") {
		t.Errorf("tampered verify: %s", out)
	}
}

// TestPolicyCheckMarket: `policy check` explains the open-market keys when given the
// job's terms: the bond against max_bond_wei, validators, run window, image size.
func TestPolicyCheckMarket(t *testing.T) {
	bin := testenv.Binary(t)
	manifest := filepath.Join(testenv.RepoRoot(t), "job", "testdata", "valid.json")
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.toml")
	os.WriteFile(policy, []byte("version = 1\nmax_bond_wei = \"1000\"\nmax_image_bytes = 5000\n[validators]\nallow = [\"0x3333333333333333333333333333333333333333\"]\n[datasets]\n\"medical-ct\" = [\"*\"]\n"), 0o600)
	check := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"policy", "check", manifest, "--policy", policy}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := check("--bond", "1000", "--validators", "0x3333333333333333333333333333333333333333", "--run-window", "8h", "--prepare", "1m", "--image-bytes", "4000")
	for _, w := range []string{"pass local max_bond_wei: the job asks a bond of 1000, cap 1000", "pass local validators.allow", "pass node min_run_window_factor: run window 8h0m0s", "pass node max_image_bytes", "ALLOW"} {
		if err != nil || !strings.Contains(out, w) {
			t.Errorf("check output lacks %q (%v):\n%s", w, err, out)
		}
	}
	out, err = check("--bond", "1001", "--validators", "0x4444444444444444444444444444444444444444", "--run-window", "6h", "--image-bytes", "6000", "--token", "0x5555555555555555555555555555555555555555")
	for _, w := range []string{"FAIL local tokens: the job pays in token 0x5555555555555555555555555555555555555555", "FAIL local tokens.0x5555555555555555555555555555555555555555.max_bond (unset: no bond)", "FAIL local validators.allow", "FAIL node min_run_window_factor", "FAIL node max_image_bytes: image is 6000 bytes, cap 5000", "policy denies the job"} {
		if err == nil || !strings.Contains(out, w) {
			t.Errorf("check output lacks %q (%v):\n%s", w, err, out)
		}
	}
}
