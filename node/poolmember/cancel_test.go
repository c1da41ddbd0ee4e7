package poolmember

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/pool"
)

func cancelOf(id, reason string) pool.Cancel {
	return pool.Cancel{Version: pool.Version, Coordinator: coordinatorID, Member: memberID, Seq: 9, Time: time.Now().UnixMilli(), JobID: id, Reason: reason}
}

// TestAcceptCancel: the coordinator's cancel stops a pool job in the member's machine
// with the pool's reason; a job the member does not have is nothing to stop; a job that
// came from elsewhere, or whose result is handed in, is not stopped; a job acked a moment
// ago is waited for while the coordinator waits.
func TestAcceptCancel(t *testing.T) {
	mk, j := &fakeMarket{}, newFakeJobs()
	mk.set("12", accepted("12"))
	a := NewAccepter(j, mk, testkit.Discard())
	j.put(jobs.Job{ID: "20", State: jobs.Running, Record: jobs.Record{Posting: jobs.Posting{ID: "20", Source: jobs.SourcePool}}})
	j.put(jobs.Job{ID: "21", State: jobs.Running, Record: jobs.Record{Posting: jobs.Posting{ID: "21", Source: "chain"}}})
	j.put(jobs.Job{ID: "22", State: jobs.Submitted, Record: jobs.Record{Posting: jobs.Posting{ID: "22", Source: jobs.SourcePool}}})

	if ok, reason := a.Cancel(t.Context(), cancelOf("20", "member gone: no heartbeat within 30s")); !ok {
		t.Fatalf("cancel refused: %s", reason)
	}
	if got := j.cancels["20"]; got != "taken back by the pool: member gone: no heartbeat within 30s" {
		t.Fatalf("machine cancelled job 20 with %q", got)
	}
	if ok, reason := a.Cancel(t.Context(), cancelOf("30", "x")); !ok || !strings.Contains(reason, "nothing to stop") {
		t.Fatalf("unknown job: %v %q", ok, reason)
	}
	if ok, reason := a.Cancel(t.Context(), cancelOf("21", "x")); ok || !strings.Contains(reason, "not from the pool") {
		t.Fatalf("chain job: %v %q", ok, reason)
	}
	if ok, reason := a.Cancel(t.Context(), cancelOf("22", "x")); ok || !strings.Contains(reason, "too late") {
		t.Fatalf("submitted job: %v %q", ok, reason)
	}
	if _, ok := j.cancels["21"]; ok {
		t.Fatal("a chain job was cancelled by the pool")
	}

	// Acked, not yet in the machine: waited for, within the coordinator's patience.
	if ok, reason := a.Accept(t.Context(), validDispatch("12")); !ok {
		t.Fatalf("dispatch refused: %s", reason)
	}
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	ok, reason := a.Cancel(short, cancelOf("12", "x"))
	cancel()
	if ok || !strings.Contains(reason, "send the cancel again") {
		t.Fatalf("cancel of a job not yet in the machine: %v %q", ok, reason)
	}
	// The machine records the job while the cancel waits for it.
	wait, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	missedBefore := j.missed("12")
	answered := make(chan string, 1)
	go func() {
		ok, reason := a.Cancel(wait, cancelOf("12", "reassigned"))
		if ok {
			reason = ""
		} else if reason == "" {
			reason = "refused"
		}
		answered <- reason
	}()
	testkit.Eventually(t, 5*time.Second, func() bool { return j.missed("12") > missedBefore }, "the cancel never looked for the job")
	j.put(jobs.Job{ID: "12", State: jobs.Discovered, Record: jobs.Record{Posting: j.discovered[0]}})
	if reason := <-answered; reason != "" {
		t.Fatalf("cancel of a job just recorded: %s", reason)
	}
	if got := j.cancels["12"]; got != TakenBackPrefix+"reassigned" {
		t.Fatalf("job 12 cancelled with %q", got)
	}
}

// TestRepeatedDispatchRecorded: a repeated dispatch of a job under way is acked and
// recorded in the machine as the latest, which the job's result answers.
func TestRepeatedDispatchRecorded(t *testing.T) {
	mk, j := &fakeMarket{}, newFakeJobs()
	mk.set("12", accepted("12"))
	a := NewAccepter(j, mk, testkit.Discard())
	d := validDispatch("12")
	if ok, reason := a.Accept(t.Context(), d); !ok {
		t.Fatalf("refused: %s", reason)
	}
	j.put(jobs.Job{ID: "12", State: jobs.Running, Record: jobs.Record{Posting: j.discovered[0]}})
	d.Seq = 17
	if ok, reason := a.Accept(t.Context(), d); !ok {
		t.Fatalf("repeat refused: %s", reason)
	}
	if len(j.discovered) != 1 || j.redispatches["12"] != 17 {
		t.Fatalf("discovered %d, redispatch recorded %v, want one job and dispatch 17", len(j.discovered), j.redispatches)
	}
}
