package pooljobs

import (
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testkit"
)

// A member killed mid-job whose machine did not take the cancel sent when the job was
// reassigned (it was down) comes back and lists the job in its heartbeats again, as a
// member resuming its jobs after a restart does: the coordinator tells it to stop, since
// the job is another member's now. The new member is never told to stop.
func TestRestartedMemberToldToStopReassignedJob(t *testing.T) {
	const bound = time.Second
	p := newPool(t, bound, 2)
	r := newRig(t, p)
	r.post("60", manifestJSON(nil))
	first := r.holder("60")
	first.mu.Lock()
	first.noCancels = true
	first.mu.Unlock()
	first.kill()
	testkit.Eventually(t, bound+10*time.Second, func() bool {
		j := r.job("60")
		return j.Reassignments == 1 && len(j.Assignments) == 1 && j.Assignments[0].Member != first.n.h.ID().String()
	}, "job not reassigned after its member died: %s", testkit.Lazy(func() string { return r.history("60") }))
	second := r.holder("60")
	if c := first.cancelled("60"); c != "" {
		t.Fatalf("a member refusing cancels recorded one: %s", c)
	}
	// It restarts, resumes the job and reports it running.
	first.mu.Lock()
	first.noCancels = false
	first.mu.Unlock()
	first.beat(t.Context())
	testkit.Eventually(t, 10*time.Second, func() bool { return strings.Contains(first.cancelled("60"), "job reassigned to another member") },
		"the restarted member was not told to stop the job taken from it")
	if c := first.cancelled("60"); !strings.Contains(c, "is gone") {
		t.Fatalf("cancel reason %q, want the reason it lost the job", c)
	}
	if c := second.cancelled("60"); c != "" {
		t.Fatalf("the job's member now was told to stop: %s", c)
	}
	// Once it stopped listing the job, it is not told again.
	n := strings.Count(first.cancelled("60"), "reassigned")
	mark := time.Now()
	testkit.Eventually(t, 10*time.Second, func() bool {
		for _, mi := range p.c.Members() {
			if mi.Member == first.n.h.ID().String() {
				return mi.LastSeen.After(mark.Add(2*bound)) && len(mi.Running) == 0
			}
		}
		return false
	}, "no heartbeat without the job for two bounds")
	if got := strings.Count(first.cancelled("60"), "reassigned"); got != n {
		t.Fatalf("told %d times, then %d: a member that stopped was told again", n, got)
	}
}

// A member whose heartbeats list a job the pool does not have, or one the pool gave
// another member, is told to stop it; the member that has the job is not.
func TestMemberRunningAJobNotItsToldToStop(t *testing.T) {
	p := newPool(t, 2*time.Second, 2)
	r := newRig(t, p)
	r.post("61", manifestJSON(nil))
	holder := r.holder("61")
	r.waitState("61", Running)
	var other *member
	for _, m := range p.members {
		if m != holder {
			other = m
		}
	}
	other.mu.Lock()
	other.extra = []string{"61", "77"}
	other.mu.Unlock()
	testkit.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(other.cancelled("61"), "not dispatched to you") && strings.Contains(other.cancelled("77"), "not one of this pool's jobs")
	}, "the member was not told to stop jobs that are not its: 61 %q, 77 %q",
		testkit.Lazy(func() string { return other.cancelled("61") }), testkit.Lazy(func() string { return other.cancelled("77") }))
	if c := holder.cancelled("61"); c != "" {
		t.Fatalf("the job's member was told to stop: %s", c)
	}
	if j := r.job("61"); j.State != Running || len(j.Assignments) != 1 || j.Assignments[0].Member != holder.n.h.ID().String() {
		t.Fatalf("the job moved: %s %+v", j.State, j.Assignments)
	}
}

// A member still listing a job the pool gave back, which did not take the cancel sent
// then, is told to stop it once it takes cancels.
func TestMemberToldToStopJobThePoolEnded(t *testing.T) {
	p := newPool(t, time.Second, 1)
	r := newRig(t, p)
	r.post("62", manifestJSON(nil))
	m := r.holder("62")
	m.mu.Lock()
	m.noCancels = true
	m.mu.Unlock()
	if err := r.flow.advance(StoreID("62"), Running, Running, "test: accepted long ago", func(rec *Record) {
		rec.AcceptedAt = time.Now().Add(-55 * time.Minute) // past the members' deadline, before the chain's
	}); err != nil {
		t.Fatal(err)
	}
	r.flow.poke(StoreID("62"))
	r.waitState("62", Failed)
	testkit.Eventually(t, 10*time.Second, func() bool { return r.job("62").Refund != "" }, "job never given back")
	// Two cancels are refused — the one sent when the pool gave the job back and the
	// reconcile's first, which race — before the member takes cancels, so the one it
	// takes is a reconcile's.
	testkit.Eventually(t, 10*time.Second, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.refused >= 2
	}, "the member was not sent two cancels while it refused them")
	if c := m.cancelled("62"); c != "" {
		t.Fatalf("a member refusing cancels recorded one: %s", c)
	}
	m.mu.Lock()
	m.noCancels = false
	m.mu.Unlock()
	testkit.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(m.cancelled("62"), "the pool ended the job: the members did not finish in time")
	}, "the member was not told to stop the job the pool gave back: %q", testkit.Lazy(func() string { return m.cancelled("62") }))
}
