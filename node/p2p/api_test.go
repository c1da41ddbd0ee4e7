package p2p

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/node/api"
)

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
	c := nodes[0].Network
	ctx := context.Background()

	m := c.MarketView()
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

	p := c.Peers()
	if p.ID != nodes[0].ID().String() || len(p.Peers) != 2 || len(p.Addrs) == 0 {
		t.Fatalf("peers answer %+v", p)
	}

	offer := api.Offer(goodOffer())
	d, err := c.Offer(ctx, api.OfferRequest{PeerID: nodes[1].ID().String(), Offer: offer})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Accepted {
		t.Errorf("offer answered %+v", d)
	}
	if _, err := c.Offer(ctx, api.OfferRequest{PeerID: "not-a-peer", Offer: offer}); !errors.Is(err, api.ErrInvalidArgument) || !strings.Contains(err.Error(), "peer_id") {
		t.Errorf("bad peer id: %v, want invalid_argument", err)
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
