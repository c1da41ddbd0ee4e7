package pooljobs

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/runtime"
)

func done(jobID, cid, hash string) pool.Result {
	return pool.Result{JobID: jobID, Status: pool.ResultDone, CID: cid, Hash: hash, WallSeconds: 30, GPUs: 1}
}

// A posted job is evaluated, accepted once, dispatched to one member; that member's
// result is checked against its content, submitted once, and once the chain says
// completed the split is booked for the member with its GPU-seconds and score.
func TestJobDispatchedVerifiedSubmittedAndBooked(t *testing.T) {
	p := newPool(t, 2*time.Second, 2)
	r := newRig(t, p)
	r.post("7", manifestJSON(nil))
	m := r.holder("7")
	hash := r.content.output(t, "bafkreioutput7", "weights")
	ack, err := m.send(done("7", "bafkreioutput7", hash))
	if err != nil || !ack.Accepted {
		t.Fatalf("result: %+v %v", ack, err)
	}
	j := r.waitState("7", Submitted)
	if j.OutputCID != "bafkreioutput7" || j.OutputHash != normHash(hash) {
		t.Fatalf("submitted %s %s, want the member's output", j.OutputCID, j.OutputHash)
	}
	r.chain.setOutcome(jobs.OutcomeCompleted)
	j = r.waitState("7", Paid)
	accepts, submits, abandons := r.chain.counts()
	if accepts != 1 || len(submits) != 1 || submits[0] != "bafkreioutput7|"+normHash(hash) || len(abandons) != 0 {
		t.Fatalf("chain calls: %d accepts, submits %v, abandons %v", accepts, submits, abandons)
	}
	if !j.Booked || r.books.booked() != 1 || r.books.jobs[0] != "7" || r.books.wei[0].String() != "1000000000000000000" {
		t.Fatalf("booked %v %v (record booked %v)", r.books.jobs, r.books.wei, j.Booked)
	}
	w := r.books.works[0]
	if len(w) != 1 || w[0].Member != m.account || w[0].Score != m.score || w[0].GPUSeconds <= 0 || w[0].GPUSeconds > 30 {
		t.Fatalf("work %+v, want the member's account and score, at most its 30 s", w)
	}
	if d := m.dispatches(); len(d) != 1 || d[0].JobID != "7" || d[0].Cluster != nil || d[0].ManifestCID != "bafkreimanifest7" {
		t.Fatalf("member took %+v", d)
	}
	// The member's deadline leaves a tenth of the hour's run window to check and submit.
	if d, want := m.dispatches()[0].Deadline, j.AcceptedAt.Add(54*time.Minute).Unix(); d < want-1 || d > want+1 {
		t.Fatalf("dispatch deadline %d, want %d", d, want)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(r.flow.jobs.WithLabelValues("paid")) == 1 },
		"gpunode_pool_jobs_total{result=paid} never 1")
	// The member sending its result again (its ack lost) is told it is recorded.
	if ack, err := m.send(done("7", "bafkreioutput7", hash)); err != nil || !ack.Accepted {
		t.Fatalf("repeated result: %+v %v", ack, err)
	}
}

// The member first in line refuses the dispatch: the job goes to the next one.
func TestRefusedDispatchGoesToNextMember(t *testing.T) {
	p := newPool(t, 2*time.Second, 0)
	first := p.add(2, 99) // preferred: best score
	second := p.add(2, 50)
	first.mu.Lock()
	first.refuse = "policy: image not allowed"
	first.mu.Unlock()
	r := newRig(t, p)
	r.post("8", manifestJSON(nil))
	if m := r.holder("8"); m != second {
		t.Fatalf("job went to %s, want the second member", m.n.h.ID())
	}
	if len(first.dispatches()) != 0 || len(second.dispatches()) != 1 {
		t.Fatalf("dispatches: first took %d, second %d", len(first.dispatches()), len(second.dispatches()))
	}
}

// A member killed mid-job: within the heartbeat bound the job is taken from it, with a
// recorded reason, and dispatched to another member; the killed member's late result
// is refused ("reassigned"), the new member's is submitted — once.
func TestGoneMemberLosesJobAndLateResultRefused(t *testing.T) {
	const bound = time.Second
	p := newPool(t, bound, 2)
	r := newRig(t, p)
	r.post("9", manifestJSON(nil))
	first := r.holder("9")
	killed := time.Now()
	first.kill()
	var second *member
	testkit.Eventually(t, bound+10*time.Second, func() bool {
		j := r.job("9")
		if j.State != Running || len(j.Assignments) != 1 || j.Assignments[0].Member == first.n.h.ID().String() {
			return false
		}
		for _, m := range p.members {
			if m.n.h.ID().String() == j.Assignments[0].Member {
				second = m
			}
		}
		return true
	}, "job not reassigned after its member died: %s", testkit.Lazy(func() string { return r.history("9") }))
	if took := time.Since(killed); took > bound+5*time.Second {
		t.Errorf("reassigned %s after the kill, bound %s", took, bound)
	}
	j := r.job("9")
	if len(j.Past) != 1 || j.Past[0].Member != first.n.h.ID().String() || !strings.Contains(j.Past[0].Reason, "is gone: no heartbeat within 1s") || j.Reassignments != 1 {
		t.Fatalf("past %+v, reassignments %d", j.Past, j.Reassignments)
	}
	if h := r.history("9"); !strings.Contains(h, "reassigned: member "+first.n.h.ID().String()+" is gone") {
		t.Fatalf("history does not record the reason:\n%s", h)
	}
	if got := testutil.ToFloat64(r.flow.reassigned.WithLabelValues("gone")); got != 1 {
		t.Fatalf("gpunode_pool_reassignments_total{reason=gone} %v", got)
	}
	// Its host still answers: it is told to stop the job.
	testkit.Eventually(t, 10*time.Second, func() bool { return strings.Contains(first.cancelled("9"), "is gone") },
		"the member the job was taken from was not told to stop it")
	if c := second.cancelled("9"); c != "" {
		t.Fatalf("the new member was told to stop: %s", c)
	}
	// The old member's result, arriving late, is refused: its output is never submitted.
	stale := r.content.output(t, "bafkreistale9", "old")
	if ack, err := first.send(done("9", "bafkreistale9", stale)); err != nil || ack.Accepted || !strings.Contains(ack.Reason, "job reassigned to another member") {
		t.Fatalf("late result of the replaced member answered %+v %v", ack, err)
	}
	hash := r.content.output(t, "bafkreioutput9", "new")
	if ack, err := second.send(done("9", "bafkreioutput9", hash)); err != nil || !ack.Accepted {
		t.Fatalf("new member's result: %+v %v", ack, err)
	}
	r.waitState("9", Submitted)
	r.chain.setOutcome(jobs.OutcomeCompleted)
	r.waitState("9", Paid)
	if _, submits, _ := r.chain.counts(); len(submits) != 1 || !strings.HasPrefix(submits[0], "bafkreioutput9|") {
		t.Fatalf("submits %v, want the new member's result once", submits)
	}
	if w := r.books.works[0]; len(w) != 1 || w[0].Member != second.account {
		t.Fatalf("work booked %+v, want only the member that did it", w)
	}
}

// A member that took the job but never answers again about it — alive, its heartbeats
// not listing the job — loses it after the bound.
func TestMemberNotRunningTheJobLosesIt(t *testing.T) {
	const bound = time.Second
	p := newPool(t, bound, 2)
	for _, m := range p.members {
		m.mu.Lock()
		m.hideJob = true
		m.mu.Unlock()
	}
	r := newRig(t, p)
	r.post("10", manifestJSON(nil))
	first := r.holder("10")
	testkit.Eventually(t, bound+10*time.Second, func() bool {
		j := r.job("10")
		// The next member hides it too and loses it a bound later: at least once.
		return j.Reassignments >= 1 && len(j.Past) >= 1 && j.Past[0].Member == first.n.h.ID().String()
	}, "job not taken from a member that stopped listing it: %s", testkit.Lazy(func() string { return r.history("10") }))
	if j := r.job("10"); !strings.Contains(j.Past[0].Reason, "stopped running the job") {
		t.Fatalf("reason %q", j.Past[0].Reason)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return strings.Contains(first.cancelled("10"), "stopped running the job") },
		"the member the job was taken from was not told to stop it")
	if got := testutil.ToFloat64(r.flow.reassigned.WithLabelValues("not_running")); got < 1 {
		t.Fatalf("gpunode_pool_reassignments_total{reason=not_running} %v", got)
	}
}

// Results the flow must refuse: from a member the job was never dispatched to, for a
// job the pool does not have, for another rank than the member's.
func TestResultsFromStrangersRefused(t *testing.T) {
	testenv.Attack(t, "pool", "results from a stranger and from a member the job is not on")
	p := newPool(t, 2*time.Second, 2)
	r := newRig(t, p)
	r.post("11", manifestJSON(nil))
	holder := r.holder("11")
	var stranger *member
	for _, m := range p.members {
		if m != holder {
			stranger = m
		}
	}
	hash := r.content.output(t, "bafkreiforged11", "forged")
	for name, c := range map[string]struct {
		from *member
		res  pool.Result
		want string
	}{
		"member it was not dispatched to": {stranger, done("11", "bafkreiforged11", hash), "was not dispatched to you"},
		"unknown job":                     {holder, done("12", "bafkreiforged11", hash), "not one of this pool's jobs"},
		"another rank":                    {holder, pool.Result{JobID: "11", Status: pool.ResultDone, Rank: 1, DispatchSeq: 1}, "rank 1 of the job is not yours"},
	} {
		ack, err := c.from.send(c.res)
		if err != nil || ack.Accepted || !strings.Contains(ack.Reason, c.want) {
			t.Errorf("%s: answered %+v %v, want a refusal saying %q", name, ack, err, c.want)
		}
	}
	if j := r.job("11"); j.State != Running || j.Assignments[0].Status != "" {
		t.Fatalf("a refused result changed the job: %s %+v", j.State, j.Assignments)
	}
}

// A member reports a CID whose content does not match the tree hash it reports: the
// pool submits nothing of it, and the job goes to another member.
func TestOutputNotMatchingItsHashIsNotSubmitted(t *testing.T) {
	testenv.Attack(t, "pool", "member reports an output whose content does not match its hash")
	p := newPool(t, 2*time.Second, 2)
	r := newRig(t, p)
	r.post("13", manifestJSON(nil))
	cheat := r.holder("13")
	r.content.output(t, "bafkreiempty13", "not the checkpoint")
	claimed := r.content.output(t, "bafkreiclaimed13", "the checkpoint")
	if ack, err := cheat.send(done("13", "bafkreiempty13", claimed)); err != nil || !ack.Accepted {
		t.Fatalf("result: %+v %v", ack, err)
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		j := r.job("13")
		return j.Reassignments == 1 && j.State == Running
	}, "job not reassigned after a bad output: %s", testkit.Lazy(func() string { return r.history("13") }))
	j := r.job("13")
	if !strings.Contains(j.Past[0].Reason, "does not match the tree hash") || j.Assignments[0].Member == cheat.n.h.ID().String() {
		t.Fatalf("past %+v, now %+v", j.Past, j.Assignments)
	}
	if _, submits, _ := r.chain.counts(); len(submits) != 0 {
		t.Fatalf("submitted %v", submits)
	}
	if got := testutil.ToFloat64(r.flow.reassigned.WithLabelValues("bad_output")); got != 1 {
		t.Fatalf("gpunode_pool_reassignments_total{reason=bad_output} %v", got)
	}
}

// A member declining the job after acking the dispatch (its own checks) hands it on at
// once; a member failing it too.
func TestDeclinedAndFailedResultsReassign(t *testing.T) {
	p := newPool(t, 5*time.Second, 3)
	r := newRig(t, p)
	r.post("14", manifestJSON(nil))
	first := r.holder("14")
	if ack, err := first.send(pool.Result{JobID: "14", Status: pool.ResultDeclined, Reason: "dry run: image not found"}); err != nil || !ack.Accepted {
		t.Fatalf("declined result: %+v %v", ack, err)
	}
	testkit.Eventually(t, 20*time.Second, func() bool { j := r.job("14"); return j.Reassignments == 1 && j.State == Running },
		"not reassigned after a decline: %s", testkit.Lazy(func() string { return r.history("14") }))
	second := r.holder("14")
	if second == first {
		t.Fatal("dispatched again to the member that declined it")
	}
	if ack, err := second.send(pool.Result{JobID: "14", Status: pool.ResultFailed, Reason: "container exited 1"}); err != nil || !ack.Accepted {
		t.Fatalf("failed result: %+v %v", ack, err)
	}
	testkit.Eventually(t, 20*time.Second, func() bool { j := r.job("14"); return j.Reassignments == 2 && j.State == Running },
		"not reassigned after a failure: %s", testkit.Lazy(func() string { return r.history("14") }))
	if third := r.holder("14"); third == first || third == second {
		t.Fatal("dispatched again to a member that had it")
	}
	if testutil.ToFloat64(r.flow.reassigned.WithLabelValues("declined")) != 1 || testutil.ToFloat64(r.flow.reassigned.WithLabelValues("failed")) != 1 {
		t.Fatal("declined and failed reassignments not counted")
	}
}

// Nobody takes the job before its run deadline: it is given back on chain, saying why.
func TestNobodyTakesTheJobGivenBack(t *testing.T) {
	p := newPool(t, 5*time.Second, 1)
	p.members[0].mu.Lock()
	p.members[0].refuse = "busy with its own work"
	p.members[0].mu.Unlock()
	r := newRig(t, p)
	pst := r.post("15", manifestJSON(nil))
	_ = pst
	// The run window (an hour) is too long to wait for: move the acceptance back.
	r.waitState("15", Dispatching)
	if err := r.flow.advance(StoreID("15"), Dispatching, Dispatching, "test: accepted long ago", func(rec *Record) {
		rec.AcceptedAt = time.Now().Add(-2 * time.Hour)
	}); err != nil {
		t.Fatal(err)
	}
	j := r.waitState("15", Failed)
	if !strings.Contains(j.Reason, "no member took the job in time to run it before its run deadline") || !strings.Contains(j.Reason, "busy with its own work") {
		t.Fatalf("reason %q", j.Reason)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return r.job("15").Refund != "" }, "job never given back")
	if _, _, abandons := r.chain.counts(); len(abandons) != 1 || abandons[0] != j.Reason {
		t.Fatalf("abandons %v", abandons)
	}
}

// A coordinator restarted while a job runs on a member resumes it: the member's result
// after the restart is taken, and the job is submitted once; restarted again after the
// submission, it follows the outcome without submitting again.
func TestRestartResumesAndNeverSubmitsTwice(t *testing.T) {
	p := newPool(t, 2*time.Second, 2)
	r := newRig(t, p)
	r.post("16", manifestJSON(nil))
	m := r.holder("16")
	r.restart()
	if j := r.job("16"); j.State != Running || j.Assignments[0].Member != m.n.h.ID().String() {
		t.Fatalf("after a restart: %s %+v", j.State, j.Assignments)
	}
	hash := r.content.output(t, "bafkreioutput16", "w")
	testkit.Eventually(t, 10*time.Second, func() bool {
		ack, err := m.send(done("16", "bafkreioutput16", hash))
		return err == nil && ack.Accepted
	}, "result refused after a restart")
	r.waitState("16", Submitted)
	r.restart()
	r.restart()
	r.chain.setOutcome(jobs.OutcomeCompleted)
	r.waitState("16", Paid)
	accepts, submits, _ := r.chain.counts()
	if accepts != 1 || len(submits) != 1 {
		t.Fatalf("%d accepts, %d submits across restarts", accepts, len(submits))
	}
	if len(m.dispatches()) != 1 {
		t.Fatalf("dispatched %d times across restarts", len(m.dispatches()))
	}
	if r.books.booked() != 1 {
		t.Fatalf("booked %d times", r.books.booked())
	}
}

// Postings the pool does not take are declined with the reason, nothing sent on chain.
func TestPoolDeclines(t *testing.T) {
	p := newPool(t, time.Second, 1) // one member, 2 free GPUs, score 90
	r := newRig(t, p)
	for id, c := range map[string]struct {
		man  []byte
		want string
	}{
		"21": {manifestJSON(func(m map[string]any) { m["resources"] = map[string]any{"gpus": 4} }), "pool capacity: the job needs 1 live active members with 4 free GPUs"},
		"22": {manifestJSON(func(m map[string]any) { m["resources"] = map[string]any{"gpus": 1, "min_score": 500} }), "score of at least 500"},
		"23": {[]byte(`{"version":1,"image":"x"`), "manifest"},
		"24": {manifestJSON(func(m map[string]any) { m["evaluation"].(map[string]any)["threshold"] = 0.5 }), "threshold mismatch"},
	} {
		r.post(id, c.man)
		if j := r.waitState(id, Declined); !strings.Contains(j.Reason, c.want) {
			t.Errorf("job %s declined with %q, want %q", id, j.Reason, c.want)
		}
	}
	// The bytes at the CID are not the posted manifest.
	pst := r.post("25", manifestJSON(nil))
	r.content.mu.Lock()
	r.content.files["bafkreimanifest26"] = manifestJSON(nil)
	r.content.mu.Unlock()
	pst.ID, pst.ManifestHash = "26", strings.Repeat("00", 32)
	if err := r.flow.Posted(t.Context(), pst); err != nil {
		t.Fatal(err)
	}
	if j := r.waitState("26", Declined); !strings.Contains(j.Reason, "manifest hash mismatch") {
		t.Errorf("declined with %q", j.Reason)
	}
	sealed := pst
	sealed.ID, sealed.Sealed = "27", true
	if err := r.flow.Posted(t.Context(), sealed); err != nil {
		t.Fatal(err)
	}
	if j := r.waitState("27", Declined); j.Reason != SealedReason {
		t.Errorf("sealed job declined with %q", j.Reason)
	}
	r.waitState("25", Running) // the good one is taken
	if accepts, _, _ := r.chain.counts(); accepts != 1 {
		t.Fatalf("%d accepts, want only job 25's", accepts)
	}
	// Counted just after the transition is recorded.
	testkit.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(r.flow.jobs.WithLabelValues("declined")) == 6 },
		"gpunode_pool_jobs_total{result=declined} %v, want 6", testkit.Lazy(func() string {
			return fmt.Sprint(testutil.ToFloat64(r.flow.jobs.WithLabelValues("declined")))
		}))
}

func withDataset(tag string) func(map[string]any) {
	return func(m map[string]any) { m["inputs"] = []any{map[string]any{"dataset": tag, "path": "/data"}} }
}

// hasDatasets makes m report tags and waits until the coordinator has heard it.
func (p *testPool) hasDatasets(m *member, tags ...string) {
	m.mu.Lock()
	m.datasets = tags
	m.mu.Unlock()
	testkit.Eventually(p.t, 10*time.Second, func() bool {
		for _, mi := range p.c.Members() {
			if mi.Member == m.n.h.ID().String() && slices.Equal(mi.Datasets, tags) {
				return true
			}
		}
		return false
	}, "the coordinator never heard the member's datasets %v", tags)
}

// A job mounting a private dataset goes to the member that reports it, not to a
// better-placed member without it; a job whose dataset no live member reports is
// declined saying which.
func TestDatasetJobGoesToMemberThatHasIt(t *testing.T) {
	p := newPool(t, 2*time.Second, 0)
	best := p.add(2, 99) // first in line for any job, but holds no dataset
	holder := p.add(2, 50)
	p.hasDatasets(best, "imagenet")
	p.hasDatasets(holder, "imagenet", "medical-ct")
	r := newRig(t, p)
	r.post("41", manifestJSON(withDataset("medical-ct")))
	if m := r.holder("41"); m != holder {
		t.Fatalf("job went to %s, want the member with the dataset", m.n.h.ID())
	}
	if len(best.dispatches()) != 0 {
		t.Fatalf("the member without the dataset took %+v", best.dispatches())
	}
	// A job without a dataset still goes to the best-placed member.
	r.post("42", manifestJSON(nil))
	if m := r.holder("42"); m != best {
		t.Fatalf("a plain job went to %s, want the best-placed member", m.n.h.ID())
	}
	r.post("43", manifestJSON(withDataset("genomes")))
	if j := r.waitState("43", Declined); j.Reason != `no live member has dataset "genomes"` {
		t.Fatalf("declined with %q", j.Reason)
	}
	if accepts, _, _ := r.chain.counts(); accepts != 2 {
		t.Fatalf("%d accepts, want jobs 41 and 42 only", accepts)
	}
}

// The only member with the dataset refuses the dispatch (its own policy does not share
// it with this sponsor): the job is not given to a member without the dataset.
func TestDatasetJobNotReassignedToMemberWithout(t *testing.T) {
	p := newPool(t, 2*time.Second, 0)
	other := p.add(2, 99)
	holder := p.add(2, 50)
	p.hasDatasets(holder, "medical-ct")
	holder.mu.Lock()
	holder.refuse = "policy: local datasets: sponsor may not use dataset \"medical-ct\""
	holder.mu.Unlock()
	r := newRig(t, p)
	r.post("44", manifestJSON(withDataset("medical-ct")))
	// Each pass offers the job again to the members it may go to: a few passes.
	testkit.Eventually(t, 20*time.Second, func() bool { return holder.offers() >= 3 },
		"the member with the dataset was offered the job %s times, want 3", testkit.Lazy(func() string { return fmt.Sprint(holder.offers()) }))
	if n := other.offers(); n != 0 {
		t.Fatalf("the member without the dataset was offered the job %d times", n)
	}
	if j := r.job("44"); j.State != Dispatching {
		t.Fatalf("job 44 %s (%s), want still looking for a member", j.State, j.Reason)
	}
}

// Another provider accepted the job first: lost, nothing dispatched.
func TestJobTakenByAnotherProviderIsLost(t *testing.T) {
	p := newPool(t, 5*time.Second, 1)
	r := newRig(t, p)
	r.chain.mu.Lock()
	r.chain.taken = true
	r.chain.mu.Unlock()
	r.post("30", manifestJSON(nil))
	r.waitState("30", Lost)
	if n := len(p.members[0].dispatches()); n != 0 {
		t.Fatalf("dispatched %d times", n)
	}
}

// What a member is paid for: the shorter of its reported and the coordinator's measured
// time, times at most the GPUs the job asked for.
func TestWorks(t *testing.T) {
	at := time.Now()
	rec := Record{Manifest: &job.Manifest{Resources: job.Resources{GPUs: 2}}, Assignments: []Assignment{
		{Account: "0x00000000000000000000000000000000000000a1", Score: 80, DispatchedAt: at, ResultAt: at.Add(100 * time.Second), WallSeconds: 1e6, GPUs: 64},
		{Account: "0x00000000000000000000000000000000000000a2", Score: 90, DispatchedAt: at, ResultAt: at.Add(100 * time.Second), WallSeconds: 40, GPUs: 1},
	}}
	w := Works(rec)
	if len(w) != 2 || w[0].GPUSeconds != 200 || w[0].Score != 80 || w[1].GPUSeconds != 40 || w[1].Member != common.HexToAddress("0xa2") {
		t.Fatalf("works %+v", w)
	}
}

// assigned maps a job's current ranks to the members holding them.
func (r *rig) assigned(id string) map[int]*member {
	out := map[int]*member{}
	for _, a := range r.job(id).Assignments {
		for _, m := range r.pool.members {
			if m.n.h.ID().String() == a.Member {
				out[a.Rank] = m
			}
		}
	}
	return out
}

func twoNodes(m map[string]any) { m["resources"] = map[string]any{"gpus": 1, "nodes": 2} }

// A two-rig job goes to two members, each with its place in the cluster; it is verified
// and submitted only once both ranks are done (rank 1 publishing nothing), and both
// members are paid for their work.
func TestMultiRigJob(t *testing.T) {
	p := newPool(t, 5*time.Second, 3)
	r := newRig(t, p)
	r.post("40", manifestJSON(twoNodes))
	r.waitState("40", Running)
	ranks := r.assigned("40")
	if len(ranks) != 2 || ranks[0] == ranks[1] {
		t.Fatalf("ranks %v, want two members", ranks)
	}
	for rank, m := range ranks {
		d := m.dispatches()
		if len(d) != 1 || d[0].Cluster == nil || *d[0].Cluster != (runtime.Cluster{ID: "pool-40", NodeRank: rank, NNodes: 2, NProcPerNode: 1}) {
			t.Fatalf("rank %d dispatch %+v", rank, d)
		}
	}
	if ack, err := ranks[1].send(pool.Result{JobID: "40", Status: pool.ResultDone, Rank: 1, WallSeconds: 20, GPUs: 1}); err != nil || !ack.Accepted {
		t.Fatalf("rank 1 result: %+v %v", ack, err)
	}
	hash := r.content.output(t, "bafkreioutput40", "ddp")
	if ack, err := ranks[0].send(pool.Result{JobID: "40", Status: pool.ResultDone, CID: "bafkreioutput40", Hash: hash, WallSeconds: 20, GPUs: 1}); err != nil || !ack.Accepted {
		t.Fatalf("rank 0 result: %+v %v", ack, err)
	}
	r.waitState("40", Submitted)
	// One rank done is not the job done: it was verified only after rank 0's result.
	h, err := r.store.History(StoreID("40"))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, tr := range h {
		if strings.HasPrefix(tr.Note, "rank ") && strings.Contains(tr.Note, " done by ") || tr.To == string(Verifying) {
			order = append(order, tr.To+" "+tr.Note[:6])
		}
	}
	if want := []string{"running rank 1", "running rank 0", "verifying all 2 "}; strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("history order %q, want %q", order, want)
	}
	r.chain.setOutcome(jobs.OutcomeCompleted)
	r.waitState("40", Paid)
	if w := r.books.works[0]; len(w) != 2 || w[0].Member == w[1].Member {
		t.Fatalf("work booked %+v, want both members", w)
	}
}

// One rank of a two-rig job fails: the whole job is taken from both members and
// dispatched to two others, in a cluster of another name; the first pair's results are
// refused from then on.
func TestMultiRigRankFailureReassignsWholeJob(t *testing.T) {
	p := newPool(t, 5*time.Second, 4)
	r := newRig(t, p)
	r.post("41", manifestJSON(twoNodes))
	r.waitState("41", Running)
	first := r.assigned("41")
	if ack, err := first[1].send(pool.Result{JobID: "41", Status: pool.ResultFailed, Rank: 1, Reason: "rendezvous timed out"}); err != nil || !ack.Accepted {
		t.Fatalf("failed result: %+v %v", ack, err)
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		j := r.job("41")
		return j.State == Running && j.Reassignments == 1 && len(j.Assignments) == 2
	}, "job not reassigned: %s", testkit.Lazy(func() string { return r.history("41") }))
	j := r.job("41")
	if len(j.Past) != 2 {
		t.Fatalf("past %+v, want both first members", j.Past)
	}
	second := r.assigned("41")
	for _, m := range second {
		if m == first[0] || m == first[1] {
			t.Fatal("dispatched again to a member of the failed pair")
		}
		if d := m.dispatches(); len(d) != 1 || d[0].Cluster.ID != "pool-41-1" {
			t.Fatalf("second dispatch %+v", d)
		}
	}
	// Rank 0, still running, is told to stop; rank 1 failed by itself.
	testkit.Eventually(t, 10*time.Second, func() bool { return strings.Contains(first[0].cancelled("41"), "rendezvous timed out") },
		"the other rank was not told to stop")
	if c := first[1].cancelled("41"); c != "" {
		t.Fatalf("the failed rank was told to stop: %s", c)
	}
	hash := r.content.output(t, "bafkreioutput41", "x")
	if ack, err := first[0].send(pool.Result{JobID: "41", Status: pool.ResultDone, CID: "bafkreioutput41", Hash: hash, WallSeconds: 1}); err != nil || ack.Accepted || !strings.Contains(ack.Reason, "reassigned") {
		t.Fatalf("result of the replaced rank 0 answered %+v %v", ack, err)
	}
}

// A member the coordinator still counts alive but cannot reach (its host went away
// between two heartbeats) is passed over for the next one.
func TestUnreachableMemberPassedOver(t *testing.T) {
	p := newPool(t, 30*time.Second, 0)
	gone := p.add(2, 99) // preferred: best score
	other := p.add(2, 50)
	gone.kill()
	if err := gone.n.h.Close(); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, p)
	r.post("42", manifestJSON(nil))
	if m := r.holder("42"); m != other {
		t.Fatalf("job went to %s, want the reachable member", m.n.h.ID())
	}
	if h := r.history("42"); !strings.Contains(h, "dispatched to "+other.n.h.ID().String()) {
		t.Fatalf("history:\n%s", h)
	}
}

// Members that do not finish in time to submit: the job is given back, saying why.
func TestMembersTooSlowGivenBack(t *testing.T) {
	p := newPool(t, 30*time.Second, 1)
	r := newRig(t, p)
	r.post("43", manifestJSON(nil))
	r.holder("43")
	if err := r.flow.advance(StoreID("43"), Running, Running, "test: accepted long ago", func(rec *Record) {
		rec.AcceptedAt = time.Now().Add(-55 * time.Minute) // past the members' deadline, before the chain's
	}); err != nil {
		t.Fatal(err)
	}
	r.flow.poke(StoreID("43"))
	j := r.waitState("43", Failed)
	if !strings.Contains(j.Reason, "the members did not finish in time to submit") {
		t.Fatalf("reason %q", j.Reason)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return r.job("43").Refund != "" }, "job never given back")
	testkit.Eventually(t, 10*time.Second, func() bool { return strings.Contains(p.members[0].cancelled("43"), "did not finish") },
		"the member was not told to stop the job given back")
	if _, submits, abandons := r.chain.counts(); len(submits) != 0 || len(abandons) != 1 {
		t.Fatalf("submits %v, abandons %v", submits, abandons)
	}
}

// A job posted just after the coordinator started, before its members reported, waits a
// heartbeat bound for them rather than being declined for want of capacity.
func TestJobPostedBeforeMembersReportWaitsForThem(t *testing.T) {
	p := newPool(t, 15*time.Second, 0) // the member below joins well within it
	r := newRig(t, p)
	r.post("44", manifestJSON(nil))
	m := p.add(2, 90)
	if got := r.holder("44"); got != m {
		t.Fatalf("job went to %v", got)
	}
}
