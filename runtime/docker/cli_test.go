//go:build integration

package docker_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/apiserver"
	"github.com/gpunode/gpunode/runtime"
)

// TestCLI drives `gpunode image pull|ls|prune` and `gpunode logs -f` against the
// runtime through the daemon's route table on a real control-API socket.
func TestCLI(t *testing.T) {
	bin := testenv.Binary(t)
	addr := startRegistry(t, t.TempDir(), false)
	ref := pushUnique(t, addr, "gpunode/cli", "v1")
	img := probeImage(t)
	rt := registryRuntime(t, nil)

	socket := filepath.Join(t.TempDir(), "api.sock")
	// The runtime knows nothing of the control API: the daemon's route table serves it.
	srv, err := apiserver.New(api.Config{Socket: socket}, testLogger(t), node.Routes(node.Backends{Runtime: rt}, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	go srv.Serve(ctx, ln)

	gpunode := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append(args, "--api-socket", socket)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := gpunode("image", "pull", ref)
	if err != nil || !strings.Contains(out, "pulled "+ref) || !strings.Contains(out, "layers 2/2") {
		t.Fatalf("image pull: %v\n%s", err, out)
	}
	if out, err := gpunode("image", "pull", addr+"/gpunode/cli:v1"); err == nil || !strings.Contains(out, "tags are refused") {
		t.Errorf("image pull by tag: %v\n%s", err, out)
	}
	out, err = gpunode("image", "ls")
	if err != nil || !strings.Contains(out, ref) {
		t.Errorf("image ls: %v\n%s", err, out)
	}
	out, err = gpunode("image", "prune", "--cap", "0")
	if err != nil || !strings.Contains(out, "removed ") {
		t.Errorf("image prune: %v\n%s", err, out)
	}
	if out, _ := gpunode("image", "ls"); strings.Contains(out, ref) {
		t.Errorf("image still listed after prune:\n%s", out)
	}

	spec := runtime.Spec{JobID: "cli-logs", Image: img, Command: []string{"/probe", "echo:one", "sleep:2s", "echo:two"}, OutputDir: filepath.Join(t.TempDir(), "out")}
	if _, err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	out, err = gpunode("logs", "-f", spec.JobID)
	if err != nil || out != "one\ntwo\n" {
		t.Errorf("logs -f = %q, %v", out, err)
	}
	if out, err := gpunode("logs", "no-such-job"); err == nil || !strings.Contains(out, "unknown job") {
		t.Errorf("logs of an unknown job: %v\n%s", err, out)
	}
}
