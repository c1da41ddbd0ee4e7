package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

func TestPrintPeersGraylisted(t *testing.T) {
	var b strings.Builder
	until := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	if err := printPeers(&b, api.P2PPeers{ID: "12D3self", Graylisted: []api.P2PGraylisted{{ID: "12D3flood", Until: until}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "graylisted until 2026-12-01T06:00:00Z: 12D3flood") {
		t.Errorf("peers output:\n%s", b.String())
	}
}
