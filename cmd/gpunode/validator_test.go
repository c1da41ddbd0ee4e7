package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/internal/testenv"
)

// TestValidatorCommands runs `gpunode validator` as a process against a dev chain:
// register with the minimum stake, add stake, read the status, unstake.
func TestValidatorCommands(t *testing.T) {
	dir := t.TempDir()
	dep := devchain.StartTest(t, 50*time.Millisecond)
	depFile := filepath.Join(dir, "devchain.json")
	devchain.WriteDeployment(depFile, dep)
	ks, pw, hexFile := filepath.Join(dir, "keystore"), filepath.Join(dir, "pw"), filepath.Join(dir, "key.hex")
	os.WriteFile(pw, []byte("node-pass\n"), 0o600)
	os.WriteFile(hexFile, []byte(dep.Accounts[3].PrivateKey), 0o600)
	flags := []string{"--keystore", ks, "--password-file", pw, "--light-kdf"}
	gpunode(t, append([]string{"wallet", "import", "--hex", hexFile}, flags...)...)
	flags = append(flags, "--deployment", depFile)

	status := func() string { return gpunode(t, append([]string{"validator", "status"}, flags...)...) }
	if s := status(); !strings.Contains(s, "not registered") {
		t.Fatalf("status before registering:\n%s", s)
	}
	out := gpunode(t, append([]string{"validator", "register", "--peer-id", "12D3KooWvalidator"}, flags...)...)
	if !strings.Contains(out, "registered: tx 0x") {
		t.Fatalf("register: %s", out)
	}
	if s := status(); !strings.Contains(s, "1000000000000000000 wei") || !strings.Contains(s, "drawable") {
		t.Fatalf("status after registering with the minimum:\n%s", s)
	}
	gpunode(t, append([]string{"validator", "stake", "--amount", "0.5eth"}, flags...)...)
	if s := status(); !strings.Contains(s, "1500000000000000000 wei") {
		t.Fatalf("status after staking half an ether more:\n%s", s)
	}
	gpunode(t, append([]string{"validator", "unstake"}, flags...)...)
	if s := status(); !strings.Contains(s, "unbonding until") {
		t.Fatalf("status after unstaking:\n%s", s)
	}
	// Too early: the unbonding period has not passed.
	bad := append([]string{"validator", "withdraw-stake"}, flags...)
	if out, err := runGpunode(t, bad...); err == nil || !strings.Contains(out, "StakeLocked") {
		t.Fatalf("withdraw-stake while unbonding: %v\n%s", err, out)
	}
	if out, err := runGpunode(t, append([]string{"validator", "stake", "--amount", "lots"}, flags...)...); err == nil || !strings.Contains(out, "want a positive number") {
		t.Fatalf("stake with a bad amount: %v\n%s", err, out)
	}
}

// runGpunode runs the binary and returns its output and error, for a command meant to fail.
func runGpunode(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testenv.Binary(t), args...).CombinedOutput()
	return string(out), err
}
