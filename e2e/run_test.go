//go:build integration

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
)

// TestSetupProfiles: `make run` installs only what running needs — no kubo build, no
// PyTorch, Prometheus, scikit-learn or npm — while `make setup` (the tests) has them all.
func TestSetupProfiles(t *testing.T) {
	plan := func(profile string) string {
		cmd := exec.Command("bash", "scripts/setup.sh", profile, "--plan")
		cmd.Dir = testenv.RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("setup.sh %s --plan: %v\n%s", profile, err, out)
		}
		return string(out)
	}
	run, test := plan("run"), plan("test")
	for _, want := range []string{"docker.io", "gcc", "start dockerd"} {
		if !strings.Contains(run, want) {
			t.Errorf("run profile lacks %q:\n%s", want, run)
		}
	}
	for _, testOnly := range []string{"kubo", "python3-torch", "python3-sklearn", "prometheus", "docker-registry", "npm"} {
		if strings.Contains(run, testOnly) {
			t.Errorf("run profile would install %s, which only the tests need:\n%s", testOnly, run)
		}
		if !strings.Contains(test, testOnly) {
			t.Errorf("test profile lacks %s:\n%s", testOnly, test)
		}
	}
	// A member of the docker group, not root, runs the run profile once the packages are
	// there and dockerd answers: nothing to install, nothing that needs root.
	t.Run("non-root docker member", func(t *testing.T) {
		testenv.RequireDocker(t)
		if os.Geteuid() != 0 {
			t.Fatal("making a throwaway user needs root: run the tests as root (make test does, as CI)")
		}
		user := fmt.Sprintf("gpnrun%d", os.Getpid()%100000)
		if out, err := exec.Command("useradd", "--no-create-home", "--groups", "docker", "--shell", "/bin/sh", user).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("userdel", user).Run() })
		// The repo must be readable by that user; the test's own checkout is.
		cmd := exec.Command("runuser", "-u", user, "--", "bash", "scripts/setup.sh", "run")
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("setup.sh run as %s (docker group, not root): %v\n%s", user, err, out)
		}
		if out, err := exec.Command("runuser", "-u", user, "--", "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
			t.Fatalf("docker as %s: %v: %s", user, err, out)
		}
		// Not a member: told what to do, not left guessing.
		other := user + "x"
		if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/bin/sh", other).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("userdel", other).Run() })
		cmd = exec.Command("runuser", "-u", other, "--", "bash", "scripts/setup.sh", "run")
		cmd.Dir = testenv.RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "docker group") {
			t.Errorf("setup.sh run as a user outside the docker group: %v\n%s", err, out)
		}
	})

	cmd := exec.Command("bash", "scripts/setup.sh", "nonsense")
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "usage") {
		t.Errorf("setup.sh nonsense: %v\n%s", err, out)
	}
}

var (
	nodeReady = regexp.MustCompile(`gpunode: node ready in (\d+)s`)
	reportCID = regexp.MustCompile(`report_cid=b[a-z2-7]{20,}`)
)

// TestMakeRun runs the README's first command as a new user would, on its own ports, and
// waits for "node ready", then for the node to measure itself and register with its
// signed report; Ctrl-C then stops the node and the dev chain, and nothing of them is
// left running.
func TestMakeRun(t *testing.T) {
	testenv.RequireDocker(t)
	dir := t.TempDir()
	port := func() string {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		return p
	}
	cmd := exec.Command("make", "--no-print-directory", "run", "RUN_DIR="+dir)
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(cmd.Environ(),
		"GPUNODE_RUN_CHAIN="+freeAddr(t), "GPUNODE_RUN_METRICS="+freeAddr(t), "GPUNODE_RUN_P2P_PORT="+port())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the log is long; keep reading so the node never blocks on its stdout
			}
		}
		io.Copy(io.Discard, out)
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})

	var seen []string
	deadline := time.After(5 * time.Minute)
	ready := ""
	for ready == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("make run ended before the node was ready: %v\n%s", <-exited, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if m := nodeReady.FindStringSubmatch(l); m != nil {
				ready = m[1]
			}
		case <-deadline:
			t.Fatalf("no \"node ready\" within 5 minutes:\n%s", strings.Join(seen, "\n"))
		}
	}
	t.Logf("make run: node ready in %ss (setup for running only, build, dev chain, node)", ready)
	for _, step := range []string{"checking what running a node needs", "building", "starting the dev chain", "starting the node"} {
		found := false
		for _, l := range seen {
			found = found || strings.Contains(l, "gpunode: "+step)
		}
		if !found {
			t.Errorf("make run said nothing about %q before the node was ready", step)
		}
	}

	// A new rig measures itself before it registers: its first registration carries the
	// signed benchmark report (before, make run registered with none).
	registered := ""
	deadline = time.After(5 * time.Minute)
	for registered == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("make run ended before the node registered: %v\n%s", <-exited, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if strings.Contains(l, "registered as provider") {
				registered = l
			}
		case <-deadline:
			t.Fatalf("the node did not register within 5 minutes of being ready:\n%s", strings.Join(seen, "\n"))
		}
	}
	if !reportCID.MatchString(registered) {
		t.Errorf("the first registration carries no benchmark report: %s", registered)
	}
	measured := false
	for _, l := range seen {
		measured = measured || strings.Contains(l, "benchmark done")
	}
	if !measured {
		t.Errorf("the node registered before measuring itself:\n%s", strings.Join(seen, "\n"))
	}

	// Ctrl-C, as in a terminal: the whole process group gets SIGINT.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("make run still running a minute after Ctrl-C")
	}
	// Nothing of it is left: no process still has the run folder on its command line.
	if out, err := exec.Command("pgrep", "-f", dir).Output(); err == nil {
		t.Errorf("processes left after Ctrl-C: %s", out)
	}
}
