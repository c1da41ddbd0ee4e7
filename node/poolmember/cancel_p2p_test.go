package poolmember

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime"
)

// TestPoolCancelOverLibp2p: on real libp2p hosts, the coordinator takes a running job
// back: the member's machine stops its container and fails it with the pool's reason,
// and its heartbeats stop listing it. A job dispatched twice is acked twice, and its
// result answers the second dispatch, the one the coordinator records.
func TestPoolCancelOverLibp2p(t *testing.T) {
	ctx := t.Context()
	co, mem := newP2PNode(t), newP2PNode(t)
	if err := mem.h.Connect(ctx, peer.AddrInfo{ID: co.h.ID(), Addrs: co.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	c, err := pool.NewCoordinator(co.h, co.key, time.Minute, testkit.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := &received{refuse: map[string]string{"50": "job reassigned to another member"}}
	c.SetResultHandler(got.handle)

	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	content := &memContent{blobs: map[string][]byte{}, published: map[string]string{}}
	rt := &heldRuntime{results: map[string]chan runtime.Result{}, specs: map[string]runtime.Spec{}, release: make(chan struct{})}
	chainView := &fakeMarket{}
	for _, id := range []string{"50", "51"} {
		chainView.set(id, bindings.JobMarketJob{State: uint8(market.StateAccepted), Sponsor: common.HexToAddress("0xb7"), Reward: newBig(1e18)})
	}
	var member *pool.Member
	cfg := jobs.Default()
	cfg.OutcomePoll, cfg.RetryBase, cfg.RetryMax = configfile.Duration(20*time.Millisecond), configfile.Duration(10*time.Millisecond), configfile.Duration(50*time.Millisecond)
	sender := senderFunc(func(ctx context.Context, r pool.Result) (pool.Ack, error) { return member.SendResult(ctx, r) })
	machine := jobs.New(cfg, jobs.Deps{Store: st, Chain: NewChain(co.h.ID(), sender, chainView, jobs.Records{Store: st}, testkit.Discard()),
		Content: content, Runtime: rt, WorkDir: filepath.Join(dir, "work")}, testkit.Discard())
	accepter := NewAccepter(machine, chainView, testkit.Discard())
	inventory := func() pool.Heartbeat {
		return pool.Heartbeat{Account: common.HexToAddress("0xa1"), Admission: "active", Running: accepter.Running()}
	}
	member, err = pool.NewMember(mem.h, mem.key, co.h.ID(), inventory, accepter.Accept, testkit.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	member.SetCancelHandler(accepter.Cancel)
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- machine.Run(mctx) }()
	t.Cleanup(func() { stop(); <-done })
	if err := member.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	dispatch := func(id string) pool.Ack {
		t.Helper()
		b := manifest(1)
		sum := sha256.Sum256(b)
		ack, err := c.Dispatch(ctx, mem.h.ID(), pool.Dispatch{JobID: id, ManifestCID: content.put(b), ManifestHash: hex.EncodeToString(sum[:]),
			Deadline: time.Now().Add(time.Hour).Unix()})
		if err != nil || !ack.Accepted {
			t.Fatalf("dispatch %s: %+v %v", id, ack, err)
		}
		return ack
	}
	waitState := func(id string, want jobs.State) jobs.Job {
		t.Helper()
		var j jobs.Job
		testkit.Eventually(t, 20*time.Second, func() bool { j, _ = machine.Get(id); return j.State == want },
			"job %s: %s, want %s", id, testkit.Lazy(func() string { return string(j.State) + " (" + j.Reason + ")" }), want)
		return j
	}

	dispatch("50")
	first := dispatch("51")
	waitState("50", jobs.Running)
	waitState("51", jobs.Running)
	second := dispatch("51")
	if second.Seq == first.Seq {
		t.Fatalf("the repeat has the first dispatch's seq %d", first.Seq)
	}

	ack, err := c.Cancel(ctx, mem.h.ID(), "50", "member stopped running the job")
	if err != nil || !ack.Accepted {
		t.Fatalf("cancel: %+v %v", ack, err)
	}
	j50 := waitState("50", jobs.Failed)
	if want := TakenBackPrefix + "member stopped running the job"; j50.Reason != want || !rt.stopped("50") {
		t.Fatalf("job 50: reason %q, stopped %v; want %q, stopped", j50.Reason, rt.stopped("50"), want)
	}
	if j50.Result == nil || !j50.Result.Cancelled {
		t.Fatalf("job 50's result %+v, want its stopped container's", j50.Result)
	}
	// Given back: the coordinator, which took it back already, refuses the failed result.
	testkit.Eventually(t, 20*time.Second, func() bool { j50, _ = machine.Get("50"); return j50.Refund != "" }, "job 50 never given back")
	if err := member.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if ms := c.Members(); len(ms) != 1 || slices.Contains(ms[0].Running, "50") || !slices.Contains(ms[0].Running, "51") {
		t.Fatalf("heartbeat lists %v, want 51 and not 50", ms[0].Running)
	}
	// Cancelling it again changes nothing.
	if ack, err := c.Cancel(ctx, mem.h.ID(), "50", "again"); err != nil || !ack.Accepted {
		t.Fatalf("second cancel: %+v %v", ack, err)
	}
	if j, _ := machine.Get("50"); j.State != jobs.Failed || j.Reason != j50.Reason {
		t.Fatalf("job 50 after a second cancel: %s %q", j.State, j.Reason)
	}

	close(rt.release)
	waitState("51", jobs.Submitted)
	if r := got.of("51"); len(r) != 1 || r[0].Status != pool.ResultDone || r[0].DispatchSeq != second.Seq {
		t.Fatalf("job 51's results %+v, want one done answering dispatch %d", r, second.Seq)
	}
}
