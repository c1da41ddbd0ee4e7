//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/node/api"
)

// daemon is a `gpunode daemon` process started by a test.
type daemon struct {
	cmd     *exec.Cmd
	socket  string
	metrics string
	stderr  *testkit.Buffer
	// log is this generation's copy of stderr, <dir>/daemon.<n>.log: it outlives the
	// process, so a test that restarts a daemon still has what the killed one said.
	log  string
	done chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDaemon runs gpunode daemon with its own data dir, socket and metrics port and
// waits until its control API answers.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startDaemonIn(t, t.TempDir(), args...)
}

// startDaemonIn is startDaemon over dir, so that a daemon can be started again on the
// same state and socket.
func startDaemonIn(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	return startDaemonBin(t, testenv.Binary(t), dir, args...)
}

// startDaemonBin is startDaemonIn with another build of gpunode.
func startDaemonBin(t *testing.T, bin, dir string, args ...string) *daemon {
	t.Helper()
	d := &daemon{
		socket:  filepath.Join(dir, "api.sock"),
		metrics: freeAddr(t),
		stderr:  &testkit.Buffer{},
		done:    make(chan error, 1),
	}
	all := append([]string{"daemon", "--data-dir", filepath.Join(dir, "data"), "--api-socket", d.socket, "--metrics-listen", d.metrics, "--ui-listen", "", "--benchmark-on-start=false"}, args...)
	d.cmd = exec.Command(bin, all...)
	gen, logFile := newGeneration(t, dir)
	d.log = logFile.Name()
	d.cmd.Stderr = io.MultiWriter(d.stderr, logFile)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=") // not under systemd here
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	go func() {
		err := d.cmd.Wait() // returns once stderr is copied
		logFile.Close()
		d.done <- err
	}()
	if gen == 1 {
		// Registered before the first generation's kill below, so it runs after every
		// generation's: the logs are complete.
		t.Cleanup(func() {
			if t.Failed() {
				logGenerations(t, dir, 60)
			}
		})
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := api.NewClient(d.socket).Status(ctx)
		cancel()
		if err == nil {
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited before answering (%v):\n%s", err, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer on %s within 30s: %v\n%s", d.socket, err, d.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newGeneration creates the log file of the next daemon started over dir,
// <dir>/daemon.<n>.log, and returns n.
func newGeneration(t *testing.T, dir string) (int, *os.File) {
	t.Helper()
	for n := 1; ; n++ {
		f, err := os.OpenFile(generationLog(dir, n), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return n, f
	}
}

func generationLog(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("daemon.%d.log", n))
}

// logGenerations logs the last lines of each daemon generation's log over dir.
func logGenerations(t *testing.T, dir string, lines int) {
	t.Helper()
	for n := 1; ; n++ {
		b, err := os.ReadFile(generationLog(dir, n))
		if err != nil {
			return
		}
		t.Logf("daemon generation %d over %s, last %d lines of %s:\n%s", n, filepath.Base(dir), lines, generationLog(dir, n), tail(string(b), lines))
	}
}

// stop sends SIGTERM and returns the exit error and how long the daemon took to exit.
func (d *daemon) stop(t *testing.T) (error, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		return err, time.Since(start)
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		t.Fatalf("daemon still running 20s after SIGTERM:\n%s", d.stderr)
		return nil, 0
	}
}

func gpunode(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testenv.Binary(t), args...).CombinedOutput()
	return string(out), err
}

func TestDaemonSimulatedStatusAndStop(t *testing.T) {
	d := startDaemon(t, "--simulate-gpus", "dgxa100")
	out, err := gpunode(t, "status", "--json", "--api-socket", d.socket)
	if err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if len(st.GPUs) != 8 || st.GPUMode != "simulated" || st.State != "running" || st.Version == "" {
		t.Fatalf("status: %d gpus, mode %q, state %q, version %q", len(st.GPUs), st.GPUMode, st.State, st.Version)
	}
	uuids := map[string]bool{}
	for i, g := range st.GPUs {
		if g.Index != i || !strings.HasPrefix(g.UUID, "GPU-") || g.Sample == nil || g.MemoryBytes == 0 {
			t.Errorf("gpu %d: %+v", i, g)
		}
		uuids[g.UUID] = true
	}
	if len(uuids) != 8 {
		t.Errorf("%d distinct uuids, want 8", len(uuids))
	}
	table, err := gpunode(t, "status", "--api-socket", d.socket)
	if err != nil || !strings.Contains(table, "SIMULATED") || !strings.Contains(table, "A100") || !strings.Contains(table, "UUID") {
		t.Errorf("status table (%v):\n%s", err, table)
	}
	err, took := d.stop(t)
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.stderr)
	}
	if took > 10*time.Second {
		t.Errorf("took %s to stop after SIGTERM, want at most 10s", took)
	}
	if _, err := os.Stat(d.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind after a clean stop: %v", err)
	}
}

func hasNVIDIADriver() bool {
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "/usr/lib64/libnvidia-ml.so.1", "/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

func TestDaemonWithoutDriver(t *testing.T) {
	d := startDaemon(t)
	out, err := gpunode(t, "status", "--json", "--api-socket", d.socket)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if hasNVIDIADriver() {
		if st.GPUMode != "nvml" {
			t.Fatalf("driver present but gpu mode %q: %s", st.GPUMode, st.GPUNote)
		}
		return
	}
	if st.GPUMode != "cpu-only" || len(st.GPUs) != 0 {
		t.Errorf("mode %q with %d gpus, want cpu-only with none", st.GPUMode, len(st.GPUs))
	}
	var lines []string
	for _, l := range strings.Split(d.stderr.String(), "\n") {
		if strings.Contains(strings.ToLower(l), "nvidia") || strings.Contains(strings.ToLower(l), "nvml") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "no NVIDIA driver found") || !strings.Contains(lines[0], "running CPU-only") {
		t.Errorf("want exactly one line about the missing driver, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if err, _ := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.stderr)
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	d := startDaemon(t, "--simulate-gpus", "dgxa100")
	// Both signals arrive before the graceful stop can finish its work.
	d.cmd.Process.Signal(syscall.SIGINT)
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not exit after two signals")
	}
}

func TestStatusWithoutDaemon(t *testing.T) {
	out, err := gpunode(t, "status", "--api-socket", filepath.Join(t.TempDir(), "none.sock"))
	if err == nil || !strings.Contains(out, "no gpunode daemon is running") {
		t.Errorf("status without a daemon: err %v, output:\n%s", err, out)
	}
}

func TestConfigCommands(t *testing.T) {
	def, err := gpunode(t, "config", "default")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gpunode.toml")
	os.WriteFile(path, []byte(def), 0o644)
	if out, err := gpunode(t, "config", "check", path); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("check of the default config: %v\n%s", err, out)
	}
	bad := filepath.Join(testenv.RepoRoot(t), "node", "testdata", "bad-many.toml")
	out, err := gpunode(t, "config", "check", bad)
	if err == nil {
		t.Fatalf("check of a bad file succeeded:\n%s", out)
	}
	for _, w := range []string{`unknown key "colour"`, `key "log.level": wrong type`} {
		if !strings.Contains(out, w) {
			t.Errorf("check output lacks %q:\n%s", w, out)
		}
	}
	// A daemon refuses to start on a bad file, naming the problem.
	out, err = gpunode(t, "daemon", "--config", bad, "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(out, "colour") {
		t.Errorf("daemon with a bad config: %v\n%s", err, out)
	}
	// Flags override the file: an invalid flag value is reported too.
	out, err = gpunode(t, "daemon", "--config", path, "--log-format", "xml", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(out, `log.format: "xml"`) {
		t.Errorf("daemon with --log-format xml: %v\n%s", err, out)
	}
}

// TestMissingDockerIsReported: a node whose container engine does not answer keeps
// running and says what is missing and how to fix it.
func TestMissingDockerIsReported(t *testing.T) {
	c := node.Default()
	c.Runtime.Host = "unix:///nonexistent/docker.sock"
	d := startDaemon(t, "--config", writeConfig(t, c))
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := gpunode(t, "status", "--api-socket", d.socket)
		if err == nil && strings.Contains(out, "docker:") && strings.Contains(out, "PROBLEM") {
			if !strings.Contains(out, "start dockerd") {
				t.Errorf("the problem does not say how to fix it:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reported the missing engine (%v):\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(d.stderr.String(), `check=docker`) {
		t.Errorf("log does not name the missing prerequisite:\n%s", d.stderr)
	}
	if err, _ := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.stderr)
	}
}
