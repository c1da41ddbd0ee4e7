//go:build integration

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

// TestMakeInstall installs into a staging root: the binary, the unit, the sysusers file
// and a default config that the binary itself accepts; a second install keeps the config.
func TestMakeInstall(t *testing.T) {
	root := t.TempDir()
	install := func() string {
		cmd := exec.Command("make", "--no-print-directory", "install", "DESTDIR="+root)
		cmd.Dir = testenv.RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		return string(out)
	}
	install()
	for _, f := range []string{"usr/local/bin/gpunode", "etc/systemd/system/gpunode.service", "usr/lib/sysusers.d/gpunode.conf", "etc/gpunode/gpunode.toml"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("not installed: %s", f)
		}
	}
	cfg := filepath.Join(root, "etc/gpunode/gpunode.toml")
	if out, err := exec.Command(filepath.Join(root, "usr/local/bin/gpunode"), "config", "check", cfg).CombinedOutput(); err != nil {
		t.Errorf("installed config does not check: %v\n%s", err, out)
	}
	os.WriteFile(cfg, []byte("# edited by the operator\n"), 0o644)
	if out := install(); !strings.Contains(out, "kept existing") {
		t.Errorf("second install did not keep the config:\n%s", out)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "# edited by the operator\n" {
		t.Error("second install overwrote the operator's config")
	}
}

// TestSystemdUnitAllowsNVIDIADevices checks the unit's device rules against the names the
// NVIDIA driver registers. Under DevicePolicy=closed a GPU whose major is not allowed is
// invisible to NVML, and the node would stop at start: since driver 550.40 /proc/devices
// lists major 195 as "nvidia", before it as "nvidia-frontend"; UVM and the MIG
// capabilities have dynamic majors of their own.
func TestSystemdUnitAllowsNVIDIADevices(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "systemd", "gpunode.service"))
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]string{}
	policy := ""
	for _, l := range strings.Split(string(unit), "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "DeviceAllow="); ok {
			f := strings.Fields(v)
			if len(f) != 2 {
				t.Errorf("device rule %q: want a device and its access", l)
				continue
			}
			allowed[f[0]] = f[1]
		}
		if v, ok := strings.CutPrefix(l, "DevicePolicy="); ok {
			policy = v
		}
	}
	if policy != "closed" {
		t.Errorf("DevicePolicy=%q, want closed", policy)
	}
	for _, dev := range []string{
		"char-nvidia", "char-nvidia-frontend", "char-nvidia-uvm", "char-nvidia-caps",
		"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
	} {
		if allowed[dev] != "rw" {
			t.Errorf("unit does not allow %s rw (rules: %v)", dev, allowed)
		}
	}
}
