// Package testenv lets tests find the real components they run against (dockerd,
// Prometheus, kubo, PyTorch) and fail with a message that says how to get a missing one.
package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
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
	RequireIntegration(t, name)
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
	RequireIntegration(t, "a Docker engine")
	LookPath(t, "docker", "docker.io")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Fatalf("no Docker engine answers (%v: %s): %s", err, out, Setup)
	}
}

// RequireIntegration fails a unit-tier test that reaches for an external component:
// such a test belongs in a file built with the integration tag.
func RequireIntegration(t testing.TB, what string) {
	t.Helper()
	if !Integration {
		t.Fatalf("%s is an external component: this test belongs in the integration tier (a file starting with //go:build integration; run it with go test -tags integration)", what)
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
	RequireIntegration(t, "the gpunode binary")
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

// Registry starts Debian's docker-registry on a free loopback port over storage and
// returns its host:port. extra is appended to its YAML configuration (an auth section,
// say). The registry stops when the test ends.
func Registry(t testing.TB, storage, extra string) string {
	t.Helper()
	bin := LookPath(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", storage, addr) + extra
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
	t.Fatalf("docker-registry did not answer on %s:\n%s", addr, b)
	return ""
}
