//go:build integration

package doctor

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node"
)

// TestRunSimulatedRig runs every check with the real adapters on the dgxa100
// simulation: NVML's checks read the mock, the GPU container path is not tried for GPUs
// that do not exist, and a node with no chain skips the chain's checks saying why.
func TestRunSimulatedRig(t *testing.T) {
	testenv.RequireDocker(t)
	dir := t.TempDir()
	cfg := node.Default()
	cfg.DataDir = dir
	cfg.GPU.Simulate = "dgxa100"
	cfg.API.Socket = filepath.Join(dir, "api.sock")
	cfg.Runtime.Instance = "doctor-test-run"
	cfg.P2P.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t))}
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "--force", "gpunode-preflight:doctor-test-run").Run() })

	rep := Run(t.Context(), cfg, DefaultOptions(), testkit.Discard())
	got := map[string]Result{}
	for _, c := range rep.Checks {
		if _, dup := got[c.Name]; dup {
			t.Errorf("check %s reported twice", c.Name)
		}
		got[c.Name] = c
	}
	want(t, got["nvidia-driver"], OK, "8× Mock NVIDIA A100-SXM4-40GB (simulated rig)", "")
	want(t, got["persistence-mode"], OK, "on for 8 of 8 GPUs", "")
	want(t, got["docker"], OK, "answers", "")
	for _, name := range []string{"container-toolkit", "gpu-container", "cdi-spec"} {
		want(t, got[name], Skip, "simulated GPUs", "")
	}
	want(t, got["chain-rpc"], Skip, "no deployment file "+filepath.Join(dir, "devchain.json"), FixNoChain)
	want(t, got["clock"], Skip, "no chain configured", "")
	want(t, got["wallet"], Skip, "no chain configured", "")
	want(t, got["p2p-listen"], OK, "bindable", "")
	want(t, got["ipfs"], OK, "embedded store "+filepath.Join(dir, "ipfs"), "")
	want(t, got["benchmark"], Warn, "no benchmark report", "gpunode bench --data-dir "+dir)
	want(t, got["daemon"], Skip, "no daemon answers on "+cfg.API.Socket, "")
	want(t, got["p2p-reachability"], Skip, "the daemon is not running", "")
	if len(got) != 18 {
		t.Errorf("%d checks, want 18: %+v", len(got), rep.Checks)
	}
	failed := false
	for _, c := range rep.Checks {
		failed = failed || c.Status == Fail
	}
	if failed != rep.Failed {
		t.Errorf("report failed=%v, checks failed=%v", rep.Failed, failed)
	}
}
