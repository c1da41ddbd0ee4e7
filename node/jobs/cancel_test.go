package jobs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/gpunode/gpunode/node/store"
)

const takenBack = "taken back by the pool: member gone"

// A running job that is cancelled has its container stopped, its GPUs and the idle
// workload's hold released, and ends Failed with the reason, given back once; a second
// cancel changes nothing.
func TestCancelRunningJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		idle := &fakeIdle{holds: map[string]bool{}}
		r := newRig(t, writeCheckpoint)
		r.rt.release = make(chan struct{}) // the container runs until stopped
		r.deps.Idle = idle
		r.start()
		r.post("1", manifestJSON(nil))
		r.waitState("1", Running)
		if r.m.FreeGPUs() != 1 {
			t.Fatalf("%d GPUs free while the job runs, want 1", r.m.FreeGPUs())
		}
		if err := r.m.Cancel(t.Context(), "1", takenBack); err != nil {
			t.Fatal(err)
		}
		j := r.waitState("1", Failed)
		if j.Reason != takenBack || j.Cancelled != takenBack {
			t.Fatalf("reason %q, cancelled %q, want %q", j.Reason, j.Cancelled, takenBack)
		}
		if j.Result == nil || !j.Result.Cancelled {
			t.Fatalf("result %+v, want the stopped container's", j.Result)
		}
		synctest.Wait()
		if r.rt.stopCount("1") != 1 || r.rt.starts["1"] != 1 {
			t.Fatalf("stopped %d started %d times, want 1 each", r.rt.stopCount("1"), r.rt.starts["1"])
		}
		if r.m.FreeGPUs() != 2 || r.m.NeedsRig() {
			t.Fatalf("%d GPUs free, NeedsRig %v after the cancel", r.m.FreeGPUs(), r.m.NeedsRig())
		}
		if ev := idle.events(); !slices.Equal(ev, []string{"hold 1", "release 1"}) {
			t.Fatalf("idle events %v", ev)
		}
		if got := r.chain.abandoned["1"]; got != takenBack {
			t.Fatalf("given back with %q, want %q", got, takenBack)
		}
		if r.chain.submits != 0 || r.content.publishes != 0 {
			t.Fatalf("a cancelled job published %d and submitted %d", r.content.publishes, r.chain.submits)
		}
		// Again: nothing changes.
		if err := r.m.Cancel(t.Context(), "1", "again"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if j, _ := r.m.Get("1"); j.State != Failed || j.Reason != takenBack || r.rt.stopCount("1") != 1 {
			t.Fatalf("second cancel: %s %q, stopped %d", j.State, j.Reason, r.rt.stopCount("1"))
		}
	})
}

// A cancel recorded while the container cannot be stopped yet holds across a restart:
// the resumed job is stopped, not run on, and never started again.
func TestCancelSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.rt.release = make(chan struct{})
		r.rt.stopErr = errors.New("engine: connection refused")
		r.start()
		r.post("2", manifestJSON(nil))
		r.waitState("2", Running)
		if err := r.m.Cancel(t.Context(), "2", takenBack); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the stop fails; the job waits to retry it
		j, err := r.m.Get("2")
		if err != nil || j.State != Running || j.Cancelled != takenBack {
			t.Fatalf("before the restart: %s cancelled %q (%v)", j.State, j.Cancelled, err)
		}
		r.stop()
		r.rt.mu.Lock()
		r.rt.stopErr = nil
		r.rt.mu.Unlock()
		r.openStore()
		r.start()
		j = r.waitState("2", Failed)
		if j.Reason != takenBack {
			t.Fatalf("reason %q", j.Reason)
		}
		synctest.Wait()
		if r.rt.starts["2"] != 1 || r.chain.submits != 0 || r.m.FreeGPUs() != 2 {
			t.Fatalf("started %d, submitted %d, %d GPUs free", r.rt.starts["2"], r.chain.submits, r.m.FreeGPUs())
		}
	})
}

// A job cancelled while it is evaluated (its dry run) is declined: nothing was taken,
// nothing is given back.
func TestCancelDuringEvaluation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.rt.checkHold = make(chan struct{}) // never closed: the cancel interrupts it
		r.start()
		r.post("3", manifestJSON(nil))
		synctest.Wait()
		if j, err := r.m.Get("3"); err != nil || j.State != Discovered {
			t.Fatalf("job %s (%v), want discovered during its dry run", j.State, err)
		}
		if err := r.m.Cancel(t.Context(), "3", takenBack); err != nil {
			t.Fatal(err)
		}
		j := r.waitState("3", Declined)
		if j.Reason != takenBack {
			t.Fatalf("reason %q", j.Reason)
		}
		synctest.Wait()
		if r.chain.accepts != 0 || r.rt.starts["3"] != 0 || len(r.chain.abandoned) != 0 {
			t.Fatalf("accepted %d, started %d, abandoned %v", r.chain.accepts, r.rt.starts["3"], r.chain.abandoned)
		}
	})
}

// A finished job is left alone; one whose result is submitted is too late to cancel;
// a cancel without a reason, or of a job the machine does not have, is an error.
func TestCancelFinishedAndUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.start()
		r.post("4", manifestJSON(nil))
		r.waitState("4", Submitted)
		if err := r.m.Cancel(t.Context(), "4", takenBack); !errors.Is(err, ErrTooLate) {
			t.Fatalf("cancel of a submitted job: %v", err)
		}
		r.chain.set("4", OutcomeCompleted)
		r.waitState("4", Paid)
		if err := r.m.Cancel(t.Context(), "4", takenBack); err != nil {
			t.Fatalf("cancel of a paid job: %v", err)
		}
		synctest.Wait()
		if j, _ := r.m.Get("4"); j.State != Paid || j.Cancelled != "" || j.Reason != "" {
			t.Fatalf("paid job after a cancel: %s cancelled %q reason %q", j.State, j.Cancelled, j.Reason)
		}
		if err := r.m.Cancel(t.Context(), "99", takenBack); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("cancel of an unknown job: %v", err)
		}
		if err := r.m.Cancel(t.Context(), "4", "  "); err == nil || !strings.Contains(err.Error(), "reason") {
			t.Fatalf("cancel without a reason: %v", err)
		}
	})
}

// A pool job dispatched again records the latest dispatch, which its result answers; a
// chain job, a cancelled job and a finished one do not take a dispatch.
func TestRedispatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.rt.release = make(chan struct{})
		r.start()
		r.postWith("40", manifestJSON(nil), func(p *Posting) { poolPosting(0, 0)(p); p.PoolDispatch = 3 })
		r.post("41", manifestJSON(nil))
		r.waitState("40", Running)
		r.waitState("41", Running)
		if err := r.m.Redispatched("40", 9); err != nil {
			t.Fatal(err)
		}
		if j, _ := r.m.Get("40"); j.Posting.PoolDispatch != 9 || j.State != Running {
			t.Fatalf("after the repeat: %s, dispatch %d, want running, 9", j.State, j.Posting.PoolDispatch)
		}
		if err := r.m.Redispatched("41", 9); err == nil || !strings.Contains(err.Error(), "not from a pool") {
			t.Fatalf("chain job dispatched by a pool: %v", err)
		}
		if err := r.m.Cancel(t.Context(), "40", takenBack); err != nil {
			t.Fatal(err)
		}
		if err := r.m.Redispatched("40", 10); err == nil {
			t.Fatal("a cancelled job took a dispatch")
		}
		r.waitState("40", Failed)
		if err := r.m.Redispatched("40", 11); err == nil || !strings.Contains(err.Error(), "ended") {
			t.Fatalf("a failed job took a dispatch: %v", err)
		}
		if j, _ := r.m.Get("40"); j.Posting.PoolDispatch != 9 {
			t.Fatalf("dispatch %d, want 9", j.Posting.PoolDispatch)
		}
		// Job 41 is stopped too: nothing runs on once the test ends.
		if err := r.m.Cancel(t.Context(), "41", "test over"); err != nil {
			t.Fatal(err)
		}
		r.waitState("41", Failed)
	})
}

// heldChain holds acceptances until hold is closed (an accept transaction under way).
type heldChain struct {
	*fakeChain
	hold chan struct{}
}

func (c *heldChain) Accept(ctx context.Context, id string) (string, error) {
	select {
	case <-c.hold:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return c.fakeChain.Accept(ctx, id)
}

// A job cancelled while its acceptance is under way is accepted first (a transaction is
// not cut off), then stopped before it starts, and given back.
func TestCancelWhileAccepting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		hc := &heldChain{fakeChain: r.chain, hold: make(chan struct{})}
		r.deps.Chain = hc
		r.start()
		r.post("5", manifestJSON(nil))
		r.waitState("5", Accepting)
		if err := r.m.Cancel(t.Context(), "5", takenBack); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if j, _ := r.m.Get("5"); j.State != Accepting {
			t.Fatalf("job %s, want still accepting until the acceptance is through", j.State)
		}
		close(hc.hold)
		j := r.waitState("5", Failed)
		synctest.Wait()
		if j.Reason != takenBack || r.chain.accepts != 1 || r.rt.starts["5"] != 0 || r.chain.abandoned["5"] != takenBack {
			t.Fatalf("reason %q, accepts %d, starts %d, given back with %q", j.Reason, r.chain.accepts, r.rt.starts["5"], r.chain.abandoned["5"])
		}
	})
}
