package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

// TestPrintPoolJobs: the coordinator's operator sees each job's state, its members by
// rank with their results, and why it was taken from a member.
func TestPrintPoolJobs(t *testing.T) {
	var b bytes.Buffer
	err := printPoolJobs(&b, api.PoolJobs{Jobs: []api.PoolJob{
		{ID: "9", State: "running", Nodes: 2, UpdatedAt: time.Unix(0, 0), Reassignments: 1, Reason: "member 12D3KooWOld is gone: no heartbeat within 1m0s",
			Members: []api.PoolAssignment{{Rank: 0, Member: "12D3KooWA"}, {Rank: 1, Member: "12D3KooWB", Status: "done"}}},
		{ID: "8", State: "declined", Reason: "pool capacity: not enough members", Members: []api.PoolAssignment{}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"0:12D3KooWA 1:12D3KooWB(done)", "running", "is gone: no heartbeat", "declined", "pool capacity"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := printPoolJobs(&b, api.PoolJobs{}); err != nil || !strings.Contains(b.String(), "no jobs yet") {
		t.Fatalf("empty list: %q %v", b.String(), err)
	}
}
