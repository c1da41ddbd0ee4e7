//go:build integration

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/runtime/docker"
)

// TestCleanupSparesAnotherRunsContainers: two runs of the e2e tests on one engine (two
// engineers', or the whole suite beside one test) give their daemons data dirs that
// differ only above the last element (…/TestJobLoop123/007 and …/TestJobLoop456/007).
// When one run ends, its cleanup must remove its own containers and leave the other's
// alone: a running job force-removed under its node dies with exit 137, and the node
// then cannot collect its output ("Could not find the file /out in container").
func TestCleanupSparesAnotherRunsContainers(t *testing.T) {
	img := exampleImage(t, "trainer")
	mine, theirs := filepath.Join(t.TempDir(), "007"), filepath.Join(t.TempDir(), "007")
	create := func(dir string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("docker", "create", "--network", "none",
			"--label", docker.LabelInstance+"="+instanceFor("provider", dir), "--label", docker.LabelJob+"=1", img).CombinedOutput()
		if err != nil {
			t.Fatalf("docker create: %v\n%s", err, out)
		}
		id := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("docker", "rm", "-f", "-v", id).Run() })
		return id
	}
	exists := func(id string) bool { return exec.Command("docker", "container", "inspect", id).Run() == nil }
	own, other := create(mine), create(theirs)

	leaveNothing(mine, instanceFor("provider", mine))
	if exists(own) {
		t.Errorf("the run's cleanup left its own job container %.12s", own)
	}
	if !exists(other) {
		t.Errorf("the run's cleanup removed job container %.12s of another run (instances %s and %s)",
			other, instanceFor("provider", mine), instanceFor("provider", theirs))
	}
}
