package node

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDaemonLinksNoDevchain: the daemon reads the deployment file (contracts/deploy)
// without linking the dev chain, its simulated backend and its mock contracts.
func TestDaemonLinksNoDevchain(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s (the test needs the go tool on PATH)", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/gpunode/gpunode/contracts/devchain", "github.com/ethereum/go-ethereum/ethclient/simulated", "github.com/gpunode/gpunode/contracts/bindings/mocks"} {
			if pkg == banned {
				t.Errorf("package node links %s", pkg)
			}
		}
	}
}
