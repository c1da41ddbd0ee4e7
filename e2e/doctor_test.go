//go:build integration

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/node/doctor"
)

// runDoctor runs `gpunode doctor --json` with a config file and returns its report, its
// exit status and what it wrote to stderr.
func runDoctor(t *testing.T, config string, args ...string) (doctor.Report, int, string) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), append([]string{"doctor", "--json", "--config", config}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("gpunode doctor: %v", err)
	}
	var rep doctor.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("doctor --json is not JSON (%v):\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return rep, code, stderr.String()
}

func checkOf(t *testing.T, rep doctor.Report, name string) doctor.Result {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("doctor reported no %s check: %+v", name, rep.Checks)
	return doctor.Result{}
}

// TestDoctor runs the real binary against this machine's Docker Engine and a dev chain,
// with a funded wallet: the engine passes, the NVIDIA check says CPU-only and how to
// change that, and the exit status follows the verdicts. Pointed at a socket where no
// engine answers, the docker check fails with its fix and doctor exits 1.
func TestDoctor(t *testing.T) {
	testenv.RequireDocker(t)
	dep := devchainProcess(t)
	var d struct {
		Accounts []struct {
			PrivateKey string `json:"private_key"`
		} `json:"accounts"`
	}
	raw, _ := os.ReadFile(dep)
	if err := json.Unmarshal(raw, &d); err != nil || len(d.Accounts) < 2 {
		t.Fatalf("deployment %s: %v", raw, err)
	}
	dir := t.TempDir()
	keystore, _ := importKey(t, dir, d.Accounts[1].PrivateKey)
	config := func(engine string) string {
		c := node.Default()
		c.DataDir, c.API.Socket = filepath.Join(dir, "data"), filepath.Join(dir, "api.sock")
		c.Runtime.Host, c.Runtime.Instance = engine, "doctor-e2e"
		c.P2P.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/" + strings.Split(freeAddr(t), ":")[1]}
		c.Market.Deployment, c.Market.Keystore = dep, keystore
		return writeConfig(t, c)
	}
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "--force", "gpunode-preflight:doctor-e2e").Run() })

	rep, code, stderr := runDoctor(t, config(""))
	if docker := checkOf(t, rep, "docker"); docker.Status != doctor.OK {
		t.Errorf("docker against the real engine: %+v", docker)
	}
	nv := checkOf(t, rep, "nvidia-driver")
	if nv.Status != doctor.Warn || !strings.Contains(nv.Detail, "running CPU-only") || nv.Fix != doctor.FixNoDriver {
		t.Errorf("nvidia-driver on a machine without a driver: %+v", nv)
	}
	for _, name := range []string{"persistence-mode", "container-toolkit", "gpu-container", "cdi-spec"} {
		if c := checkOf(t, rep, name); c.Status != doctor.Skip || !strings.Contains(c.Detail, "CPU-only") {
			t.Errorf("%s on a CPU-only machine: %+v", name, c)
		}
	}
	for _, name := range []string{"chain-rpc", "wallet", "p2p-listen", "ipfs"} {
		if c := checkOf(t, rep, name); c.Status != doctor.OK {
			t.Errorf("%s: %+v", name, c)
		}
	}
	// A mining dev chain's time runs ahead of real time: no reference for the clock.
	if c := checkOf(t, rep, "clock"); c.Status != doctor.Skip || !strings.Contains(c.Detail, "dev chain") {
		t.Errorf("clock against the dev chain: %+v", c)
	}
	if c := checkOf(t, rep, "benchmark"); c.Status != doctor.Warn || !strings.Contains(c.Fix, "gpunode bench --data-dir "+filepath.Join(dir, "data")) {
		t.Errorf("benchmark with no report: %+v", c)
	}
	if c := checkOf(t, rep, "daemon"); c.Status != doctor.Skip {
		t.Errorf("daemon not running: %+v", c)
	}
	failed := 0
	for _, c := range rep.Checks {
		if c.Status == doctor.Fail {
			failed++
		}
		if c.Status != doctor.OK && c.Status != doctor.Skip && c.Fix == "" {
			t.Errorf("%s is %s without a fix: %+v", c.Name, c.Status, c)
		}
	}
	if (failed > 0) != rep.Failed || (code == 1) != rep.Failed || (code != 0 && code != 1) {
		t.Errorf("exit status %d, %d failed checks, report failed=%v; stderr: %s", code, failed, rep.Failed, stderr)
	}
	healthyFailed := rep.Failed

	rep, code, stderr = runDoctor(t, config("unix://"+filepath.Join(dir, "no-engine.sock")))
	docker := checkOf(t, rep, "docker")
	if docker.Status != doctor.Fail || !strings.Contains(docker.Detail, "does not answer") || docker.Fix != doctor.FixDocker {
		t.Errorf("docker with no engine at the socket: %+v", docker)
	}
	if code != 1 || !rep.Failed || !strings.Contains(stderr, "checks failed") {
		t.Errorf("a failed check: exit status %d, failed=%v, stderr %q", code, rep.Failed, stderr)
	}
	if c := checkOf(t, rep, "runc"); c.Status != doctor.Skip {
		t.Errorf("runc with no engine: %+v", c)
	}

	table, err := gpunode(t, "doctor", "--config", config(""))
	if (err != nil) != healthyFailed {
		t.Errorf("doctor table: exit %v, but --json said failed=%v\n%s", err, healthyFailed, table)
	}
	for _, s := range []string{"STATUS", "WARN    nvidia-driver", "fix: " + doctor.FixNoDriver, "OK      docker"} {
		if !strings.Contains(table, s) {
			t.Errorf("doctor table does not show %q:\n%s", s, table)
		}
	}
}

// TestDoctorWithDaemon: with the daemon running, doctor reports the daemon's own checks
// and AutoNAT's verdict from it, and leaves the daemon's listen ports alone.
func TestDoctorWithDaemon(t *testing.T) {
	testenv.RequireDocker(t)
	config := p2pConfig(t, "127.0.0.1", nil)
	dir := t.TempDir()
	d := startDaemonIn(t, dir, "--config", config, "--simulate-gpus", "dgxa100")
	rep, code, stderr := runDoctor(t, config, "--data-dir", filepath.Join(dir, "data"), "--api-socket", d.socket, "--simulate-gpus", "dgxa100")
	daemon := checkOf(t, rep, "daemon")
	if daemon.Status == doctor.Skip || !strings.Contains(daemon.Detail, "running") {
		t.Errorf("daemon check with the daemon running: %+v", daemon)
	}
	if daemon.Status == doctor.Fail && daemon.Fix == "" {
		t.Errorf("daemon check fails without the daemon's fixes: %+v", daemon)
	}
	if c := checkOf(t, rep, "p2p-listen"); c.Status != doctor.Skip || !strings.Contains(c.Detail, "the daemon is running") {
		t.Errorf("p2p-listen with the daemon running: %+v", c)
	}
	if c := checkOf(t, rep, "p2p-reachability"); strings.Contains(c.Detail, "not running") || (c.Status == doctor.Skip && !strings.Contains(c.Detail, "no verdict yet")) {
		t.Errorf("p2p-reachability with the daemon running: %+v", c)
	}
	if (code == 1) != rep.Failed {
		t.Errorf("exit status %d, report failed=%v; stderr: %s", code, rep.Failed, stderr)
	}
}
