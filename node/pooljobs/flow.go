package pooljobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime"
)

func decode(j store.Job) (Record, error) {
	var r Record
	if len(j.Data) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(j.Data, &r); err != nil {
		return r, fmt.Errorf("pool job %s: corrupt record: %w", j.ID, err)
	}
	return r, nil
}

func toJob(j store.Job) (Job, error) {
	rec, err := decode(j)
	if err != nil {
		return Job{}, err
	}
	return Job{ID: strings.TrimPrefix(j.ID, Prefix), State: State(j.State), CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, Record: rec}, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // records are plain data
	}
	return b
}

func owesRefund(r Record) bool { return r.AcceptTx != "" && r.Refund == "" }

// update is a change to a record, made in the transaction of a transition.
type update func(*Record)

// cancelTaken tells the members that were running the job and lost it in the transition
// just recorded (it was reassigned, or given back) to stop it, so their rigs are not held
// until the job's deadline. Best effort: a member that cannot be reached (gone) is only
// logged, and its later result is refused anyway.
func (f *Flow) cancelTaken(id, jobID string, before Record, next State, log *slog.Logger) {
	j, err := f.d.Store.Get(id)
	if err != nil {
		return
	}
	after, err := decode(j)
	if err != nil {
		return
	}
	// Only the driver moves assignments to Past, so what was added is what this
	// transition took.
	var lost []Assignment
	if len(after.Past) > len(before.Past) {
		lost = append(lost, after.Past[len(before.Past):]...)
	}
	if next.Terminal() {
		lost = append(lost, after.Assignments...)
	}
	reason := after.Reason
	if reason == "" {
		reason = "the pool took the job back"
	}
	for _, a := range lost {
		if a.Status != "" {
			continue // it finished, failed or declined by itself
		}
		pid, err := peer.Decode(a.Member)
		if err != nil {
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ack, err := f.d.Pool.Cancel(ctx, pid, jobID, reason)
			switch {
			case err != nil:
				log.Info("could not tell the member to stop the job taken from it", "member", a.Member, "err", err)
			case !ack.Accepted:
				log.Info("member did not stop the job taken from it", "member", a.Member, "reason", ack.Reason)
			default:
				log.Info("member stops the job taken from it", "member", a.Member)
			}
		}()
	}
}

func (f *Flow) spawn(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running[id] {
		return
	}
	f.running[id] = true
	if f.wake[id] == nil {
		f.wake[id] = make(chan struct{}, 1)
	}
	ctx := f.ctx
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer func() {
			f.mu.Lock()
			delete(f.running, id)
			f.mu.Unlock()
		}()
		f.drive(ctx, id)
	}()
}

// poke wakes a job's driver (a result came in).
func (f *Flow) poke(id string) {
	f.mu.Lock()
	ch := f.wake[id]
	f.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (f *Flow) wakeup(id string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wake[id]
}

// advance records a transition (to the same state for a change of the record alone).
func (f *Flow) advance(id string, from, to State, note string, u update) error {
	_, err := f.d.Store.Advance(id, string(from), string(to), note, func(sj *store.Job) error {
		r, err := decode(*sj)
		if err != nil {
			return err
		}
		if from != to {
			r.Attempts = 0
		}
		if u != nil {
			u(&r)
		}
		sj.Data = mustJSON(r)
		return nil
	})
	return err
}

// drive takes one job through its states until it ends or the coordinator stops.
func (f *Flow) drive(ctx context.Context, id string) {
	jobID := strings.TrimPrefix(id, Prefix)
	log := f.log.With("job_id", jobID)
	for ctx.Err() == nil {
		j, err := f.d.Store.Get(id)
		if err != nil {
			log.Error("load pool job", "err", err)
			return
		}
		state := State(j.State)
		rec, err := decode(j)
		if err != nil {
			log.Error("load pool job", "err", err)
			return
		}
		if state.Terminal() {
			if state == Failed && owesRefund(rec) {
				f.giveBack(ctx, id, rec, log)
			}
			return
		}
		next, note, u, err := f.step(ctx, id, jobID, state, rec, log)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if f.retry(ctx, id, state, rec, err, log) {
				continue
			}
			return
		}
		if err := f.advance(id, state, next, note, u); err != nil {
			log.Error("record pool job transition", "from", state, "to", next, "err", err)
			return
		}
		log.Info("pool job "+string(next), "from", state, "note", note)
		if next.Terminal() {
			f.jobs.WithLabelValues(string(next)).Inc()
		}
		if state == Dispatching || state == Running {
			f.cancelTaken(id, jobID, rec, next, log)
		}
	}
}

// retry handles a failed step: a permanent error or too many attempts ends the job,
// anything else waits with exponential backoff. It reports whether to go on.
func (f *Flow) retry(ctx context.Context, id string, state State, rec Record, stepErr error, log *slog.Logger) bool {
	attempts := rec.Attempts + 1
	end := Failed
	if state == Evaluating || state == Accepting {
		end = Declined
	}
	if errors.Is(stepErr, jobs.ErrPermanent) || attempts >= f.cfg.MaxAttempts {
		reason := stepErr.Error()
		if !errors.Is(stepErr, jobs.ErrPermanent) {
			reason = fmt.Sprintf("%s after %d attempts: %v", state, attempts, stepErr)
		}
		log.Warn("pool job "+string(end), "state", state, "reason", reason)
		err := f.advance(id, state, end, reason, func(r *Record) { r.Reason = reason })
		if err == nil {
			f.jobs.WithLabelValues(string(end)).Inc()
		}
		return err == nil
	}
	wait := min(f.cfg.RetryBase<<min(attempts-1, 16), f.cfg.RetryMax)
	log.Warn("pool job step failed; retrying", "state", state, "attempt", attempts, "in", wait, "err", stepErr)
	if err := f.advance(id, state, state, "retry: "+stepErr.Error(), func(r *Record) {
		r.Attempts, r.Reason = attempts, stepErr.Error()
	}); err != nil {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(wait):
		return true
	}
}

func (f *Flow) step(ctx context.Context, id, jobID string, state State, rec Record, log *slog.Logger) (State, string, update, error) {
	switch state {
	case Evaluating:
		return f.evaluate(ctx, rec)
	case Accepting:
		tx, err := f.d.Chain.Accept(ctx, jobID)
		if err != nil {
			if o, oerr := f.d.Chain.Outcome(ctx, jobID); oerr == nil && o == jobs.OutcomeTaken {
				return Lost, "accepted by another provider", nil, nil
			}
			return "", "", nil, fmt.Errorf("accept: %w", err)
		}
		now := f.now()
		return Dispatching, "accept tx " + tx, func(r *Record) { r.AcceptTx, r.AcceptedAt = tx, now }, nil
	case Dispatching:
		return f.dispatch(ctx, id, jobID, log)
	case Running:
		return f.watch(ctx, id, jobID, log)
	case Verifying:
		return f.verify(ctx, jobID, rec, log)
	case Submitting:
		tx, err := f.d.Chain.Submit(ctx, jobID, rec.OutputCID, rec.OutputHash)
		if err != nil {
			return "", "", nil, fmt.Errorf("submit: %w", err)
		}
		return Submitted, "submit tx " + tx, func(r *Record) { r.SubmitTx = tx }, nil
	case Submitted:
		return f.follow(ctx, jobID, rec, log)
	}
	return "", "", nil, fmt.Errorf("%w: unknown state %q", jobs.ErrPermanent, state)
}

func declined(reason string) (State, string, update, error) {
	return Declined, reason, func(r *Record) { r.Reason = reason }, nil
}

// evaluate checks a posting as a provider would, and against the pool's members.
func (f *Flow) evaluate(ctx context.Context, rec Record) (State, string, update, error) {
	p := rec.Posting
	mctx, cancel := context.WithTimeout(ctx, f.cfg.ManifestTimeout)
	raw, err := f.d.Content.Get(mctx, p.ManifestCID, job.MaxManifestBytes)
	cancel()
	if err != nil {
		return "", "", nil, fmt.Errorf("fetch manifest %s (within %s): %w", p.ManifestCID, f.cfg.ManifestTimeout, err)
	}
	sum := sha256.Sum256(raw)
	if want := strings.TrimPrefix(strings.ToLower(p.ManifestHash), "0x"); hex.EncodeToString(sum[:]) != want {
		return declined("manifest hash mismatch: the bytes at " + p.ManifestCID + " are not the manifest posted on chain")
	}
	man, err := job.Decode(strings.NewReader(string(raw)))
	if err != nil {
		return declined(err.Error())
	}
	if reason := jobs.CheckTerms(p, man, f.cfg.MinAttestWindow); reason != "" {
		return declined(reason)
	}
	switch {
	case len(man.Command) == 0:
		return declined("the manifest has no command: a job must say what it runs (the image's own entrypoint is not used)")
	case man.Network.Mode == job.NetworkEgress:
		return declined(fmt.Sprintf("the job asks for egress to %v; pool members take only jobs without network", man.Network.Domains))
	case len(man.LocalFiles()) > 0:
		return declined(fmt.Sprintf("inputs name files on the researcher's machine (%s), not on IPFS", strings.Join(man.LocalFiles(), ", ")))
	}
	if f.d.Admitter != nil {
		if ok, reasons := f.d.Admitter.Admit(p, man); !ok {
			return declined("policy: " + strings.Join(reasons, "; "))
		}
	}
	nodes := nodesOf(man)
	// Just after a start the members have not all reported yet: wait for a heartbeat
	// bound before counting them.
	f.mu.Lock()
	settled := f.started.Add(f.cfg.HeartbeatBound)
	f.mu.Unlock()
	for wait := settled.Sub(f.now()); wait > 0 && len(f.candidates(man, nil)) < nodes; wait = settled.Sub(f.now()) {
		select {
		case <-ctx.Done():
			return "", "", nil, ctx.Err()
		case <-time.After(min(wait, f.cfg.Tick)):
		}
	}
	if n := len(f.candidates(man, nil)); n < nodes {
		if tag := f.missingDataset(man); tag != "" {
			return declined(fmt.Sprintf("no live member has dataset %q", tag))
		}
		return declined(fmt.Sprintf("pool capacity: the job needs %d live active members with %d free GPUs and a score of at least %g; %d have them",
			nodes, man.Resources.GPUs, man.Resources.MinScore, n))
	}
	return Accepting, fmt.Sprintf("manifest ok, admitted; %d member(s) can run it", nodes), func(r *Record) { r.Manifest, r.Nodes = man, nodes }, nil
}

// nodesOf is how many member rigs a job runs on.
func nodesOf(man *job.Manifest) int { return man.Resources.NodeCount() }

// scoreOf is the score a member is paid by and judged by: its verified score when it has
// one, else its benchmark's.
func scoreOf(m pool.MemberInfo) float64 {
	if m.Verified > 0 {
		return m.Verified
	}
	return m.Score
}

// candidates lists the live, active members that could run man, but those in skip; the
// least busy with the pool's jobs first, then the most free GPUs, the best score.
func (f *Flow) candidates(man *job.Manifest, skip map[string]bool) []pool.MemberInfo {
	busy := f.busy()
	var out []pool.MemberInfo
	for _, m := range f.d.Pool.Members() {
		switch {
		case !m.Alive, m.Admission != "active", skip[m.Member],
			m.FreeGPUs < man.Resources.GPUs,
			scoreOf(m) < man.Resources.MinScore,
			m.Verified < man.Resources.MinVerifiedScore,
			!hasDatasets(m, man.Datasets()):
			continue
		}
		out = append(out, m)
	}
	less := func(a, b pool.MemberInfo) bool {
		switch {
		case busy[a.Member] != busy[b.Member]:
			return busy[a.Member] < busy[b.Member]
		case a.FreeGPUs != b.FreeGPUs:
			return a.FreeGPUs > b.FreeGPUs
		case scoreOf(a) != scoreOf(b):
			return scoreOf(a) > scoreOf(b)
		}
		return a.Member < b.Member
	}
	for i := 1; i < len(out); i++ {
		for k := i; k > 0 && less(out[k], out[k-1]); k-- {
			out[k], out[k-1] = out[k-1], out[k]
		}
	}
	return out
}

// hasDatasets reports whether a member reports every dataset tag in tags. It only
// narrows the choice: the member's own policy decides whether the sponsor may use them.
func hasDatasets(m pool.MemberInfo, tags []string) bool {
	for _, t := range tags {
		if !slices.Contains(m.Datasets, t) {
			return false
		}
	}
	return true
}

// missingDataset names a dataset the job mounts that no live, active member reports;
// "" if each is somewhere.
func (f *Flow) missingDataset(man *job.Manifest) string {
	members := f.d.Pool.Members()
	for _, t := range man.Datasets() {
		if !slices.ContainsFunc(members, func(m pool.MemberInfo) bool {
			return m.Alive && m.Admission == "active" && slices.Contains(m.Datasets, t)
		}) {
			return t
		}
	}
	return ""
}

// busy counts the ranks of unfinished pool jobs each member runs.
func (f *Flow) busy() map[string]int {
	out := map[string]int{}
	list, err := f.d.Store.List(func(j store.Job) bool { return IsStoreID(j.ID) && !State(j.State).Terminal() })
	if err != nil {
		return out
	}
	for _, j := range list {
		rec, err := decode(j)
		if err != nil {
			continue
		}
		for _, a := range rec.Assignments {
			if a.Status == "" {
				out[a.Member]++
			}
		}
	}
	return out
}

// runDeadline is when the job's result must be on chain.
func runDeadline(rec Record) time.Time { return rec.AcceptedAt.Add(runWindow(rec)) }

func runWindow(rec Record) time.Duration {
	if w := rec.Posting.RunWindow(); w > 0 {
		return w
	}
	return 24 * time.Hour
}

// resultDeadline is when the members' results must be back: a tenth of the run window
// (at most 30 minutes) before the run deadline, left to fetch and check the output and
// submit it.
func resultDeadline(rec Record) time.Time {
	return runDeadline(rec).Add(-min(runWindow(rec)/10, 30*time.Minute))
}

// clusterOf places rank r of a multi-rig job; nil for one rig. A job dispatched again
// meets on a network of another name, away from what its earlier members left.
func clusterOf(jobID string, rec Record, rank int) *runtime.Cluster {
	if rec.Nodes <= 1 {
		return nil
	}
	id := "pool-" + jobID
	if rec.Reassignments > 0 {
		id = fmt.Sprintf("%s-%d", id, rec.Reassignments)
	}
	return &runtime.Cluster{ID: id, NodeRank: rank, NNodes: rec.Nodes, NProcPerNode: max(rec.Manifest.Resources.GPUs, 1)}
}

// dispatch gives each rank without a member to one, the next member when one refuses,
// until every rank has one; past the run deadline it gives the job back.
func (f *Flow) dispatch(ctx context.Context, id, jobID string, log *slog.Logger) (State, string, update, error) {
	refusals := map[string]string{}
	for {
		j, err := f.d.Store.Get(id)
		if err != nil {
			return "", "", nil, err
		}
		rec, err := decode(j)
		if err != nil {
			return "", "", nil, err
		}
		if rec.Manifest == nil {
			return "", "", nil, fmt.Errorf("%w: no manifest recorded", jobs.ErrPermanent)
		}
		// A rank already dispatched may have failed or gone meanwhile.
		if next, note, u, bad := f.check(jobID, rec, log); bad {
			return next, note, u, nil
		}
		nodes := max(rec.Nodes, 1)
		assigned := map[int]bool{}
		skip := map[string]bool{}
		for _, a := range rec.Assignments {
			assigned[a.Rank], skip[a.Member] = true, true
		}
		for _, a := range rec.Past {
			skip[a.Member] = true
		}
		if len(assigned) >= nodes {
			return Running, fmt.Sprintf("dispatched to %s", members(rec.Assignments)), nil, nil
		}
		deadline := resultDeadline(rec)
		if f.now().After(deadline) {
			reason := fmt.Sprintf("no member took the job in time to run it before its run deadline %s", runDeadline(rec).UTC().Format(time.RFC3339))
			if len(refusals) > 0 {
				reason += ": " + joinReasons(refusals)
			}
			return Failed, reason, func(r *Record) { r.Reason = reason }, nil
		}
		for rank := 0; rank < nodes; rank++ {
			if assigned[rank] {
				continue
			}
			for _, m := range f.candidates(rec.Manifest, skip) {
				a, why := f.offer(ctx, jobID, rec, rank, m, deadline)
				if why != "" {
					if refusals[m.Member] != why { // said once, not at every pass
						log.Info("member did not take the pool job", "member", m.Member, "rank", rank, "reason", why)
					}
					refusals[m.Member] = why
					skip[m.Member] = true
					continue
				}
				delete(refusals, m.Member)
				if err := f.advance(id, Dispatching, Dispatching, fmt.Sprintf("rank %d dispatched to %s", rank, m.Member), func(r *Record) {
					r.Assignments = append(r.Assignments, a)
				}); err != nil {
					return "", "", nil, err
				}
				assigned[rank], skip[m.Member] = true, true
				break
			}
		}
		if len(assigned) >= nodes {
			continue // recorded: the next pass moves on
		}
		select {
		case <-ctx.Done():
			return "", "", nil, ctx.Err()
		case <-time.After(f.cfg.Tick):
		case <-f.wakeup(id):
		}
	}
}

// offer dispatches rank of the job to m; it returns the assignment, or why m did not
// take it.
func (f *Flow) offer(ctx context.Context, jobID string, rec Record, rank int, m pool.MemberInfo, deadline time.Time) (Assignment, string) {
	pid, err := peer.Decode(m.Member)
	if err != nil {
		return Assignment{}, err.Error()
	}
	at := f.now()
	ack, err := f.d.Pool.Dispatch(ctx, pid, pool.Dispatch{
		JobID: jobID, ManifestCID: rec.Posting.ManifestCID, ManifestHash: rec.Posting.ManifestHash,
		Deadline: deadline.Unix(), Cluster: clusterOf(jobID, rec, rank),
	})
	switch {
	case err != nil:
		return Assignment{}, err.Error()
	case !ack.Accepted:
		return Assignment{}, "refused: " + ack.Reason
	}
	return Assignment{Rank: rank, Member: m.Member, Account: m.Account.Hex(), Score: scoreOf(m),
		DispatchSeq: ack.Seq, DispatchedAt: at}, ""
}

func members(as []Assignment) string {
	var s []string
	for _, a := range as {
		s = append(s, fmt.Sprintf("%s (rank %d)", a.Member, a.Rank))
	}
	return strings.Join(s, ", ")
}

func joinReasons(m map[string]string) string {
	var s []string
	for k, v := range m {
		s = append(s, k+": "+v)
	}
	return strings.Join(s, "; ")
}

// check looks at the job's members: one that failed or declined the job, is gone (no
// heartbeat within the bound) or whose heartbeats stopped listing it for the bound loses
// it, and the whole job is dispatched again, away from every member it was on. It
// returns the transition to make, if any.
func (f *Flow) check(jobID string, rec Record, log *slog.Logger) (State, string, update, bool) {
	now := f.now()
	bound := f.cfg.HeartbeatBound
	byID := map[string]pool.MemberInfo{}
	for _, m := range f.d.Pool.Members() {
		byID[m.Member] = m
	}
	f.mu.Lock()
	started := f.started
	f.mu.Unlock()
	for _, a := range rec.Assignments {
		var kind, why string
		switch a.Status {
		case pool.ResultDone:
			continue
		case pool.ResultFailed, pool.ResultDeclined:
			kind, why = a.Status, fmt.Sprintf("member %s %s the job: %s", a.Member, a.Status, a.Reason)
		default:
			base := later(a.DispatchedAt, started)
			m, known := byID[a.Member]
			if known {
				base = later(base, f.listedAt(jobID, a.Member, m))
			}
			switch {
			case (!known || !m.Alive) && now.Sub(later(base, m.LastSeen)) > bound:
				kind, why = "gone", fmt.Sprintf("member %s is gone: no heartbeat within %s", a.Member, bound)
			case known && m.Alive && m.LastSeen.After(base) && now.Sub(base) > bound:
				kind, why = "not_running", fmt.Sprintf("member %s stopped running the job: its heartbeats have not listed it for %s", a.Member, bound)
			}
		}
		if kind == "" {
			continue
		}
		return f.reassign(jobID, kind, why, log)
	}
	return "", "", nil, false
}

// listedAt is when m's heartbeats last listed the job.
func (f *Flow) listedAt(jobID, member string, m pool.MemberInfo) time.Time {
	key := jobID + "/" + member
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range m.Running {
		if r == jobID && m.LastSeen.After(f.listed[key]) {
			f.listed[key] = m.LastSeen
		}
	}
	return f.listed[key]
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// reassign takes the job from all its members (every rank of a multi-rig job) and
// dispatches it again; kind labels the reason in the metrics.
func (f *Flow) reassign(jobID, kind, why string, log *slog.Logger) (State, string, update, bool) {
	f.reassigned.WithLabelValues(kind).Inc()
	log.Warn("pool job taken from its members; dispatching it again", "reason", why)
	now := f.now()
	return Dispatching, "reassigned: " + why, func(r *Record) {
		for _, a := range r.Assignments {
			if a.Status == "" || a.Status == pool.ResultDone {
				a.Reason = why
			}
			a.TakenAt = now
			r.Past = append(r.Past, a)
		}
		r.Assignments, r.OutputCID, r.OutputHash = nil, "", ""
		r.Reassignments++
		r.Reason = why
	}, true
}

// watch waits until every rank is done, reassigning the job when a member loses it.
func (f *Flow) watch(ctx context.Context, id, jobID string, log *slog.Logger) (State, string, update, error) {
	for {
		j, err := f.d.Store.Get(id)
		if err != nil {
			return "", "", nil, err
		}
		rec, err := decode(j)
		if err != nil {
			return "", "", nil, err
		}
		if next, note, u, bad := f.check(jobID, rec, log); bad {
			return next, note, u, nil
		}
		done := 0
		for _, a := range rec.Assignments {
			if a.Status == pool.ResultDone {
				done++
			}
		}
		if done == len(rec.Assignments) && done > 0 {
			return Verifying, fmt.Sprintf("all %d rank(s) done", done), nil, nil
		}
		if d := resultDeadline(rec); f.now().After(d) {
			reason := fmt.Sprintf("the members did not finish in time to submit before the run deadline %s", runDeadline(rec).UTC().Format(time.RFC3339))
			return Failed, reason, func(r *Record) { r.Reason = reason }, nil
		}
		select {
		case <-ctx.Done():
			return "", "", nil, ctx.Err()
		case <-time.After(f.cfg.Tick):
		case <-f.wakeup(id):
		}
	}
}

// verify fetches rank 0's output and checks its tree hash: a member cannot make the pool
// submit a result that is not there. A mismatch, or an output that cannot be fetched,
// takes the job from its members.
func (f *Flow) verify(ctx context.Context, jobID string, rec Record, log *slog.Logger) (State, string, update, error) {
	var r0 *Assignment
	for i := range rec.Assignments {
		if rec.Assignments[i].Rank == 0 {
			r0 = &rec.Assignments[i]
		}
	}
	if r0 == nil {
		return "", "", nil, fmt.Errorf("%w: no rank 0 recorded", jobs.ErrPermanent)
	}
	fctx, cancel := context.WithTimeout(ctx, f.cfg.FetchTimeout)
	dir, err := f.d.Content.Fetch(fctx, r0.CID)
	cancel()
	if err != nil {
		if rec.Attempts+1 >= f.cfg.MaxAttempts {
			next, note, u, _ := f.reassign(jobID, "bad_output", fmt.Sprintf("member %s's output %s cannot be fetched: %v", r0.Member, r0.CID, err), log)
			return next, note, u, nil
		}
		return "", "", nil, fmt.Errorf("fetch output %s: %w", r0.CID, err)
	}
	got, err := treehash.Sum(dir)
	if err != nil {
		return "", "", nil, fmt.Errorf("hash output %s: %w", r0.CID, err)
	}
	if normHash(got) != normHash(r0.Hash) {
		next, note, u, _ := f.reassign(jobID, "bad_output", fmt.Sprintf("member %s's output %s does not match the tree hash it reported (%s, the content's is %s)", r0.Member, r0.CID, r0.Hash, got), log)
		return next, note, u, nil
	}
	cid, hash := r0.CID, normHash(got)
	return Submitting, "output " + cid + " matches its tree hash", func(r *Record) { r.OutputCID, r.OutputHash = cid, hash }, nil
}

func normHash(h string) string { return strings.TrimPrefix(strings.ToLower(h), "0x") }

// follow waits for the chain's verdict; a completed job's split is booked.
func (f *Flow) follow(ctx context.Context, jobID string, rec Record, log *slog.Logger) (State, string, update, error) {
	t := time.NewTicker(f.cfg.OutcomePoll)
	defer t.Stop()
	for {
		o, err := f.d.Chain.Outcome(ctx, jobID)
		if err != nil {
			log.Warn("ask chain for outcome", "err", err)
		}
		switch o {
		case jobs.OutcomeCompleted:
			return f.book(ctx, jobID, rec, log)
		case jobs.OutcomeRejected:
			return Rejected, "validators scored it below the threshold", func(r *Record) { r.Reason = "below threshold" }, nil
		case jobs.OutcomeExpired:
			return Expired, "deadline passed on chain", func(r *Record) { r.Reason = "deadline passed" }, nil
		case jobs.OutcomeTaken:
			return Lost, "the chain names another provider", func(r *Record) { r.Reason = "taken by another provider" }, nil
		}
		select {
		case <-ctx.Done():
			return "", "", nil, ctx.Err()
		case <-t.C:
		}
	}
}

// Works is what each member of a done job is paid for: GPU-seconds (the shorter of the
// time the member reports and the time from dispatch to its result, times the GPUs the
// job asked for, or fewer if the member says it used fewer; one for a CPU job) and score.
func Works(rec Record) []pool.Work {
	gpus := 1
	if rec.Manifest != nil {
		gpus = max(rec.Manifest.Resources.GPUs, 1)
	}
	var out []pool.Work
	for _, a := range rec.Assignments {
		wall := a.WallSeconds
		if !a.ResultAt.IsZero() {
			wall = min(wall, max(a.ResultAt.Sub(a.DispatchedAt).Seconds(), 0))
		}
		g := gpus
		if a.GPUs > 0 && a.GPUs < g {
			g = a.GPUs
		}
		out = append(out, pool.Work{Member: common.HexToAddress(a.Account), GPUSeconds: wall * float64(g), Score: a.Score})
	}
	return out
}

func (f *Flow) book(ctx context.Context, jobID string, rec Record, log *slog.Logger) (State, string, update, error) {
	reward, ok := new(big.Int).SetString(rec.Posting.RewardWei, 10)
	if !ok {
		reward = new(big.Int)
	}
	works := Works(rec)
	booker := f.booker()
	if booker == nil {
		log.Info("pool job paid; no ledger to book the split in", "reward_wei", reward, "work", works)
		return Paid, "validators confirmed the result", nil, nil
	}
	if err := booker.Book(ctx, jobID, reward, works); err != nil {
		if errors.Is(err, pool.ErrNoWork) || errors.Is(err, pool.ErrBadWork) || errors.Is(err, pool.ErrBadReward) {
			reason := "paid, but the split cannot be booked: " + err.Error()
			log.Error("pool job paid; split not booked", "err", err)
			return Paid, reason, func(r *Record) { r.Reason = reason }, nil
		}
		return "", "", nil, fmt.Errorf("book the split: %w", err)
	}
	return Paid, "validators confirmed the result; split booked", func(r *Record) { r.Booked = true }, nil
}

// giveBack gives a failed job back on chain, once; after a restart, Run resumes it.
func (f *Flow) giveBack(ctx context.Context, id string, rec Record, log *slog.Logger) {
	jobID := strings.TrimPrefix(id, Prefix)
	for attempt := 1; ctx.Err() == nil; attempt++ {
		refund, err := f.d.Chain.Abandon(ctx, jobID, rec.Reason)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := min(f.cfg.RetryBase<<min(attempt-1, 16), f.cfg.RetryMax)
			log.Warn("give the pool job back on chain; retrying", "attempt", attempt, "in", wait, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		log.Info("pool job given back", "refund", refund, "reason", rec.Reason)
		if err := f.advance(id, Failed, Failed, refund, func(r *Record) { r.Refund = refund }); err != nil {
			log.Error("record refund", "err", err)
		}
		return
	}
}
