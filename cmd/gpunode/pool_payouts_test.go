package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

// TestPrintPoolOwed: a member's status says what the pool owes it, in ETH, by state, and
// why the figures may be stale.
func TestPrintPoolOwed(t *testing.T) {
	st := api.Status{State: "running", GPUMode: "cpu-only",
		PoolOwed: &api.PoolOwed{BookedWei: "1500000000000000000", PublishedWei: "250000000000000000", ClaimedWei: "0", Error: "coordinator unreachable"}}
	var buf bytes.Buffer
	if err := printStatus(&buf, st); err != nil {
		t.Fatal(err)
	}
	want := "1.500000 ETH booked, 0.250000 ETH published unclaimed, 0.000000 ETH claimed — coordinator unreachable"
	if out := buf.String(); !strings.Contains(out, "Pool owes you:") || !strings.Contains(out, want) {
		t.Fatalf("status lacks the pool line %q:\n%s", want, out)
	}
	buf.Reset()
	if err := printStatus(&buf, api.Status{State: "running"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "Pool owes") {
		t.Fatalf("a node in no pool shows a pool line:\n%s", buf.String())
	}
}

// TestPrintPoolPayouts: one line per member's share of a job, with its state and epoch;
// the coordinator's fee; an empty ledger says so.
func TestPrintPoolPayouts(t *testing.T) {
	e := uint64(3)
	p := api.PoolPayouts{Role: "coordinator", Contract: "0xc0", FeeBPS: 500, FeeWei: "100000000000000000",
		NextPublish: time.Now().Add(time.Hour),
		Owed:        api.PoolOwed{BookedWei: "1000000000000000000", PublishedWei: "0", ClaimedWei: "900000000000000000"},
		Shares: []api.PoolShare{
			{JobID: "41", Member: "0xa1", Wei: "900000000000000000", GPUSeconds: 600, Score: 12.5, State: api.ShareClaimed, Epoch: &e},
			{JobID: "42", Member: "0xa2", Wei: "1000000000000000000", GPUSeconds: 60, Score: 10, State: api.ShareBooked},
		}}
	var buf bytes.Buffer
	if err := printPoolPayouts(&buf, p); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"1.000000 ETH booked", "0.900000 ETH claimed", "fee 500 bps: 0.100000 ETH kept", "Next publication:",
		"41", "0xa1", "0.900000 ETH", "600.0", "claimed", "3", "42", "booked"} {
		if !strings.Contains(out, want) {
			t.Errorf("payouts lack %q:\n%s", want, out)
		}
	}
	buf.Reset()
	if err := printPoolPayouts(&buf, api.PoolPayouts{Role: "member", Account: "0xa1", Owed: api.PoolOwed{BookedWei: "0", PublishedWei: "0", ClaimedWei: "0"}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "No paid job has been booked yet.") || !strings.Contains(buf.String(), "account 0xa1") {
		t.Fatalf("empty member ledger:\n%s", buf.String())
	}
}
