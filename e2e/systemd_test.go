package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on the shipped unit. The verifier
// insists that ExecStart's binary exists, so the unit is checked with the path of a
// freshly built gpunode in place of /usr/local/bin/gpunode; every other line is as shipped.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testenv.LookPath(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "systemd", "gpunode.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=gpunode", "DeviceAllow=/dev/nvidiactl", "/run/docker.sock"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/gpunode", testenv.Binary(t))
	path := filepath.Join(t.TempDir(), "gpunode.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(path string) (string, error) {
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		var ours []string
		for _, l := range strings.Split(string(out), "\n") {
			// Warnings about other units of this machine are not ours to fix.
			if strings.Contains(l, "gpunode.service") || strings.Contains(l, path) {
				ours = append(ours, l)
			}
		}
		return strings.Join(ours, "\n"), err
	}
	if out, err := verify(path); err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check is live: a misspelt directive is reported.
	bad := filepath.Join(t.TempDir(), "gpunode.service")
	os.WriteFile(bad, []byte(strings.Replace(text, "WatchdogSec=", "WatchDogSecs=", 1)), 0o644)
	if out, _ := verify(bad); !strings.Contains(out, "WatchDogSecs") {
		t.Errorf("a misspelt directive was not reported: %q", out)
	}
}
