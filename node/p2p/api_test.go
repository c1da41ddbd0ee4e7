package p2p

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/node/api"
)

// serveAPI serves n's routes on a unix socket and returns a client for it.
func serveAPI(t *testing.T, n *Network) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	srv := api.NewServer(api.Config{Socket: sock}, slog.New(slog.DiscardHandler))
	n.Routes(srv)
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return api.NewClient(sock)
}

func TestRoutesAndMetrics(t *testing.T) {
	nodes := startCluster(t, 3)
	if !waitFor(convergeBound, func() bool {
		for _, nd := range nodes {
			if nd.Market().Len(time.Now()) != 3 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("3 nodes did not converge")
	}
	c := serveAPI(t, nodes[0].Network)
	ctx := context.Background()

	m, err := c.P2PMarket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Records) != 3 {
		t.Fatalf("market lists %d records, want 3", len(m.Records))
	}
	selfs := 0
	for _, r := range m.Records {
		if r.Self {
			selfs++
		}
		if r.TotalGPUs != 8 || r.FreeGPUs != 8 || r.Score < 1000 || r.PricePerGPUHour == "" || r.EthAddress == "" {
			t.Errorf("record %+v", r)
		}
		if r.AgeSeconds < 0 || r.AgeSeconds > 60 || r.ExpiresIn <= 0 {
			t.Errorf("record age %v expires in %v", r.AgeSeconds, r.ExpiresIn)
		}
	}
	if selfs != 1 {
		t.Errorf("%d records marked self, want 1", selfs)
	}

	p, err := c.P2PPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != nodes[0].ID().String() || len(p.Peers) != 2 || len(p.Addrs) == 0 {
		t.Fatalf("peers answer %+v", p)
	}

	offer, _ := json.Marshal(goodOffer())
	d, err := c.P2POffer(ctx, nodes[1].ID().String(), offer)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(d), `"accepted": true`) {
		t.Errorf("offer through the API answered %s", d)
	}
	if _, err := c.P2POffer(ctx, "not-a-peer", offer); err == nil || !strings.Contains(err.Error(), "peer_id") {
		t.Errorf("bad peer id: %v", err)
	}

	const want = `
# HELP gpunode_p2p_connected_peers Peers with an open connection.
# TYPE gpunode_p2p_connected_peers gauge
gpunode_p2p_connected_peers 2
# HELP gpunode_p2p_known_records Live capacity records in the market view.
# TYPE gpunode_p2p_known_records gauge
gpunode_p2p_known_records 3
`
	if err := testutil.GatherAndCompare(nodes[0].reg, strings.NewReader(want),
		"gpunode_p2p_connected_peers", "gpunode_p2p_known_records"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(nodes[0].reg, "gpunode_p2p_invalid_messages_total")
	if err != nil || n != 9 {
		t.Errorf("invalid_messages_total has %d series (%v), want one per reason", n, err)
	}
}
