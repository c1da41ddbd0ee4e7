package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

// TestPrintPoolMembers: the coordinator's operator sees each member's inventory, and a
// member whose heartbeats stopped marked GONE.
func TestPrintPoolMembers(t *testing.T) {
	seen := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	err := printPoolMembers(&b, api.PoolMembers{Coordinator: "12D3KooWCoord", HeartbeatBoundSecs: 60, Members: []api.PoolMember{
		{PeerID: "12D3KooWAlive", Account: "0xA1", GPUs: 8, FreeGPUs: 6, GPUModel: "NVIDIA A100-SXM4-80GB", Score: 95.5, Admission: "active", LastSeen: seen, Alive: true},
		{PeerID: "12D3KooWGone", Account: "0xB2", GPUs: 1, Admission: "draining", LastSeen: seen},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Coordinator 12D3KooWCoord", "gone after 1m0s", "12D3KooWAlive  alive", "NVIDIA A100-SXM4-80GB", "95.50", "12D3KooWGone   GONE", "draining", "2026-12-01T08:00:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := printPoolMembers(&b, api.PoolMembers{Coordinator: "c"}); err != nil || !strings.Contains(b.String(), "No member has reported yet") {
		t.Fatalf("empty pool: %v\n%s", err, b.String())
	}
}
