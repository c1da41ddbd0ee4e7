//go:build integration

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

// TestThreeDaemonsFindEachOther: three daemons on 127.0.0.1-3 meet through one
// bootstrap address, and `gpunode market` on each lists the other two.
func TestThreeDaemonsFindEachOther(t *testing.T) {
	ctx := t.Context()
	first := startDaemon(t, "--simulate-gpus", "dgxa100", "--config", p2pConfig(t, "127.0.0.1", nil))
	var boot string
	deadline := time.Now().Add(30 * time.Second)
	for boot == "" && time.Now().Before(deadline) {
		p, err := api.NewClient(first.socket).P2PPeers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Addrs {
			if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
				boot = a
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if boot == "" {
		t.Fatalf("first daemon has no loopback TCP address:\n%s", first.stderr)
	}
	daemons := []*daemon{first,
		startDaemon(t, "--config", p2pConfig(t, "127.0.0.2", []string{boot})),
		startDaemon(t, "--config", p2pConfig(t, "127.0.0.3", []string{boot})),
	}
	ids := make([]string, len(daemons))
	for i, d := range daemons {
		p, err := api.NewClient(d.socket).P2PPeers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = p.ID
	}
	const bound = 60 * time.Second
	for i, d := range daemons {
		var out string
		ok := false
		for end := time.Now().Add(bound); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			b, err := gpunode(t, "market", "--api-socket", d.socket)
			if err != nil {
				t.Fatalf("gpunode market on daemon %d: %v\n%s", i, err, b)
			}
			out = b
			ok = true
			for j, id := range ids {
				if j != i && !strings.Contains(out, id) {
					ok = false
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			t.Fatalf("gpunode market on daemon %d does not list the other two within %s:\n%s\ndaemon log:\n%s", i, bound, out, d.stderr)
		}
		if !strings.Contains(out, ids[i]+" (self)") {
			t.Errorf("daemon %d's market does not mark its own record:\n%s", i, out)
		}
	}
	// The simulated DGX A100 advertises its eight GPUs.
	b, _ := gpunode(t, "market", "--api-socket", daemons[1].socket)
	if !strings.Contains(b, "8× ") {
		t.Errorf("the simulated rig's GPUs are not in the market:\n%s", b)
	}
}
