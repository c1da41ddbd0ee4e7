// Package testenv lets tests find the real components they run against (dockerd,
// Prometheus, kubo, PyTorch) and fail with a message that says how to get a missing one.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Setup is the command that installs everything the tests use.
const Setup = "run `make setup` (as root) or `make test`, which installs it"

// LookPath returns the path of a binary the test needs, failing the test with how to
// install it when absent.
func LookPath(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: it comes from Debian's %s package; %s", name, pkg, Setup)
	}
	return p
}

// Cache is the folder where tool builds (kubo, solc) are cached between runs.
func Cache() string {
	if d := os.Getenv("GPUNODE_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "gpunode")
}

// RequireDocker fails the test unless a Docker engine answers.
func RequireDocker(t testing.TB) {
	t.Helper()
	LookPath(t, "docker", "docker.io")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Fatalf("no Docker engine answers (%v: %s): %s", err, out, Setup)
	}
}

// RepoRoot returns the repository's top folder.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// Binary builds cmd/gpunode once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gpunode-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "gpunode")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/gpunode")
		cmd.Dir = RepoRoot(t)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build gpunode: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}
