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

// TestDebPackage builds the Debian package twice (two versions) with `make deb` and, as
// an operator would, installs the first with dpkg, edits the config, upgrades to the
// second (the edit is kept), then removes it (the config and the node's data are kept)
// and purges it. The machine's own gpunode package, if any, is not touched: the test
// refuses to run over one.
func TestDebPackage(t *testing.T) {
	dpkg := testenv.LookPath(t, "dpkg", "dpkg")
	if os.Geteuid() != 0 {
		t.Fatal("installing a .deb needs root: run the tests as root (make test does, as CI)")
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "gpunode").CombinedOutput(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("a gpunode package is already installed on this machine (%s): remove it (dpkg -r gpunode) before running this test", out)
	}
	if _, err := os.Stat("/etc/gpunode"); err == nil {
		t.Fatal("/etc/gpunode exists on this machine (an installed node's config?): the test installs and purges its own; move it away first")
	}
	repo := testenv.RepoRoot(t)
	out := t.TempDir()
	build := func(version string) string {
		t.Helper()
		cmd := exec.Command("bash", "scripts/deb.sh", testenv.Binary(t), out)
		cmd.Dir = repo
		cmd.Env = append(cmd.Environ(), "DEB_VERSION="+version)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("scripts/deb.sh (make deb): %v\n%s", err, b)
		}
		path := filepath.Join(out, "gpunode_"+version+"_amd64.deb")
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("make deb made no %s:\n%s", path, b)
		}
		return path
	}
	v1, v2 := build("0.0.1~test"), build("0.0.2~test")

	run := func(name string, args ...string) string {
		t.Helper()
		b, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	const conf, data = "/etc/gpunode/gpunode.toml", "/var/lib/gpunode"
	_, dataExisted := os.Stat(data)
	t.Cleanup(func() {
		exec.Command(dpkg, "--purge", "gpunode").Run()
		os.RemoveAll("/etc/gpunode")
		if dataExisted != nil {
			os.RemoveAll(data)
		} else {
			os.Remove(filepath.Join(data, "test-marker"))
		}
	})
	installedVersion := func() string {
		return strings.TrimSpace(run("dpkg-query", "-W", "-f=${Version}", "gpunode"))
	}

	// Install.
	run(dpkg, "-i", v1)
	if v := installedVersion(); v != "0.0.1~test" {
		t.Fatalf("installed version %q", v)
	}
	if got := run("/usr/bin/gpunode", "version"); !strings.Contains(got, "gpunode") {
		t.Errorf("gpunode version: %q", got)
	}
	if got := run("/usr/bin/gpunode", "config", "check", conf); got == "" {
		t.Errorf("config check printed nothing")
	}
	if b := run("getent", "passwd", "gpunode"); !strings.HasPrefix(b, "gpunode:") {
		t.Errorf("postinst created no gpunode user: %q", b)
	}
	if b := run("id", "-nG", "gpunode"); !strings.Contains(b, "docker") {
		t.Errorf("gpunode is not in the docker group: %q", b)
	}
	unit := "/lib/systemd/system/gpunode.service"
	u, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(u), "ExecStart=/usr/bin/gpunode daemon") {
		t.Errorf("packaged unit does not start /usr/bin/gpunode:\n%s", u)
	}
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		if b, err := exec.Command(sa, "verify", unit).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, b)
		}
	} else {
		t.Errorf("systemd-analyze not found (Debian's systemd package): %s", testenv.Setup)
	}
	if conffiles := run("dpkg-query", "-W", "-f=${Conffiles}", "gpunode"); !strings.Contains(conffiles, conf) {
		t.Errorf("%s is not a conffile: %q", conf, conffiles)
	}

	// The operator edits the config; the node keeps data.
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited := "# edited by the operator\n" + string(orig)
	if err := os.WriteFile(conf, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(data, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "test-marker"), []byte("wallet"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Upgrade: the edit stays.
	run(dpkg, "-i", v2)
	if v := installedVersion(); v != "0.0.2~test" {
		t.Fatalf("version after upgrade %q", v)
	}
	if b, _ := os.ReadFile(conf); string(b) != edited {
		t.Error("the upgrade replaced the operator's config")
	}

	// Remove: binary and unit gone, config and data kept.
	run(dpkg, "-r", "gpunode")
	for _, gone := range []string{"/usr/bin/gpunode", unit} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("%s still there after dpkg -r", gone)
		}
	}
	if b, _ := os.ReadFile(conf); string(b) != edited {
		t.Error("dpkg -r removed or changed the operator's config")
	}
	if _, err := os.Stat(filepath.Join(data, "test-marker")); err != nil {
		t.Errorf("dpkg -r removed the node's data: %v", err)
	}
	// Purge removes the config but never the data (it holds the wallet).
	run(dpkg, "--purge", "gpunode")
	if _, err := os.Stat(conf); err == nil {
		t.Error("config still there after purge")
	}
	if _, err := os.Stat(filepath.Join(data, "test-marker")); err != nil {
		t.Errorf("purge removed the node's data: %v", err)
	}
}
