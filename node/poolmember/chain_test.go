package poolmember

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/runtime"
)

var (
	coordinatorPeer = newPeer()
	coordinatorID   = coordinatorPeer.String()
	memberID        = newPeer().String()
)

func newPeer() peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		panic(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return id
}

const hash64 = "5d41402abc4b2a76b9719d911017c592aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// poolJob is a pool job's record as the member's machine keeps it.
func poolJob(id string, rank, nnodes int, state jobs.State) jobs.Job {
	j := jobs.Job{ID: id, State: state, Record: jobs.Record{
		Posting: jobs.Posting{ID: id, Source: jobs.SourcePool, PoolDispatch: 9},
		GPUs:    []string{"GPU-a", "GPU-b"},
		Result:  &runtime.Result{WallTime: 90 * time.Second},
	}}
	if nnodes > 1 {
		j.Posting.Cluster = &runtime.Cluster{ID: "pool-" + id, NodeRank: rank, NNodes: nnodes, NProcPerNode: 2}
	}
	return j
}

func newTestChain() (*Chain, *fakeSender, *fakeMarket, *fakeJobs) {
	s, m, j := &fakeSender{}, &fakeMarket{}, newFakeJobs()
	return NewChain(coordinatorPeer, s, m, j, testkit.Discard()), s, m, j
}

// TestChainSubmit: a done result carries the checkpoint (rank 0) or nothing (rank 1),
// the dispatch it answers, the run time and the GPUs; a refused result is permanent, an
// unreachable coordinator is not.
func TestChainSubmit(t *testing.T) {
	c, s, _, j := newTestChain()
	ctx := t.Context()
	if tx, err := c.Accept(ctx, "5"); err != nil || !strings.Contains(tx, coordinatorID) {
		t.Fatalf("accept: %q %v, want no transaction and the pool named", tx, err)
	}
	j.put(poolJob("5", 0, 1, jobs.Submitting))
	tx, err := c.Submit(ctx, "5", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", hash64)
	if err != nil || tx == "" {
		t.Fatalf("submit: %q %v", tx, err)
	}
	want := pool.Result{JobID: "5", DispatchSeq: 9, Status: pool.ResultDone, CID: "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", Hash: hash64, WallSeconds: 90, GPUs: 2}
	if got := s.results(); len(got) != 1 || got[0] != want {
		t.Fatalf("sent %+v, want %+v", got, want)
	}

	j.put(poolJob("6", 1, 2, jobs.Submitting))
	if _, err := c.Submit(ctx, "6", "", ""); err != nil {
		t.Fatalf("rank 1 submit: %v", err)
	}
	if got := s.results()[1]; got.Rank != 1 || got.CID != "" || got.Hash != "" || got.Status != pool.ResultDone {
		t.Fatalf("rank 1 sent %+v", got)
	}

	s.refuse = "job 5 was reassigned to another member"
	_, err = c.Submit(ctx, "5", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", hash64)
	if !errors.Is(err, jobs.ErrPermanent) || !strings.Contains(err.Error(), "reassigned") {
		t.Fatalf("refused submit: %v, want permanent with the reason", err)
	}
	s.refuse, s.err = "", errors.New("dial backoff")
	if _, err = c.Submit(ctx, "5", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", hash64); err == nil || errors.Is(err, jobs.ErrPermanent) {
		t.Fatalf("unreachable coordinator: %v, want a retryable error", err)
	}

	// A job that is not the pool's is never reported to it.
	chainJob := poolJob("7", 0, 1, jobs.Submitting)
	chainJob.Posting.Source = "chain"
	j.put(chainJob)
	s.err = nil
	if _, err := c.Submit(ctx, "7", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", hash64); !errors.Is(err, jobs.ErrPermanent) {
		t.Fatalf("a chain job's submit through the pool: %v", err)
	}
	if n := len(s.results()); n != 3 { // rank 0, rank 1, the refused one
		t.Fatalf("%d results sent, want 3", n)
	}
}

// TestChainGiveBack: a failed job goes back with its reason, cut to what the wire takes
// without splitting a character; a declined one too, and a refused decline is permanent.
func TestChainGiveBack(t *testing.T) {
	c, s, _, j := newTestChain()
	ctx := t.Context()
	j.put(poolJob("5", 0, 1, jobs.Failed))
	long := strings.Repeat("é", 400) // 800 bytes
	refund, err := c.Abandon(ctx, "5", "training failed: "+long)
	if err != nil || refund != "given back to the pool" {
		t.Fatalf("abandon: %q %v", refund, err)
	}
	got := s.results()[0]
	if got.Status != pool.ResultFailed || len(got.Reason) > 512 || !strings.HasPrefix(got.Reason, "training failed: ") || !strings.HasSuffix(got.Reason, "é") {
		t.Fatalf("failed result %+v", got)
	}
	if _, err := c.Abandon(ctx, "5", ""); err != nil || s.results()[1].Reason == "" {
		t.Fatalf("abandon without a reason: %v, sent %+v", err, s.results()[1])
	}
	s.refuse = "job 5 was reassigned"
	if refund, err := c.Abandon(ctx, "5", "x"); err != nil || !strings.Contains(refund, "taken it back already: job 5 was reassigned") {
		t.Fatalf("abandon of a reassigned job: %q %v", refund, err)
	}
	s.refuse = ""
	j.put(poolJob("8", 0, 1, jobs.Declined))
	if err := c.Declined(ctx, "8", "policy: sponsor denied"); err != nil {
		t.Fatal(err)
	}
	if got := s.results()[3]; got.Status != pool.ResultDeclined || got.Reason != "policy: sponsor denied" || got.DispatchSeq != 9 {
		t.Fatalf("declined result %+v", got)
	}
	s.refuse = "job 8 is not yours"
	if err := c.Declined(ctx, "8", "x"); !errors.Is(err, jobs.ErrPermanent) {
		t.Fatalf("refused decline: %v", err)
	}
	if err := c.Declined(ctx, "99", "x"); err == nil {
		t.Fatal("decline of an unknown job sent")
	}
}

// TestChainOutcome: the outcome is the chain's, whoever the provider is.
func TestChainOutcome(t *testing.T) {
	c, _, m, _ := newTestChain()
	for st, want := range map[market.JobState]jobs.Outcome{
		market.StateAccepted: jobs.OutcomePending, market.StateSubmitted: jobs.OutcomePending,
		market.StateCompleted: jobs.OutcomeCompleted, market.StateRejected: jobs.OutcomeRejected,
		market.StateExpired: jobs.OutcomeExpired, market.StateCancelled: jobs.OutcomeExpired,
	} {
		m.set("5", bindings.JobMarketJob{State: uint8(st), Reward: big.NewInt(1)})
		if got, err := c.Outcome(t.Context(), "5"); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", st, got, err, want)
		}
	}
	m.err = errors.New("rpc down")
	if got, err := c.Outcome(t.Context(), "5"); err == nil || got != jobs.OutcomePending {
		t.Errorf("unreadable chain: %s %v", got, err)
	}
	if _, err := c.Outcome(t.Context(), "v2-5"); !errors.Is(err, jobs.ErrPermanent) {
		t.Errorf("not a chain id: %v", err)
	}
}
