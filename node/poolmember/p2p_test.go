package poolmember

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime"
)

// memContent is IPFS in memory: manifests by CID, published directories by tree hash.
type memContent struct {
	mu        sync.Mutex
	blobs     map[string][]byte
	published map[string]string
}

func (c *memContent) put(b []byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := sha256.Sum256(b)
	cid := "bafk" + hex.EncodeToString(sum[:])[:40]
	c.blobs[cid] = b
	return cid
}

func (c *memContent) Get(_ context.Context, cid string, max int64) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[cid]
	if !ok || int64(len(b)) > max {
		return nil, errors.New(cid + ": not found")
	}
	return b, nil
}

func (c *memContent) Fetch(context.Context, string) (string, error) {
	return "", errors.New("no inputs in these jobs")
}

func (c *memContent) Publish(_ context.Context, dir string) (string, error) {
	h, err := treehash.Sum(dir)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cid := "bafy" + h[:40]
	c.published[cid] = dir
	return cid, nil
}

// heldRuntime runs a job as a goroutine that writes a checkpoint once released.
type heldRuntime struct {
	mu      sync.Mutex
	results map[string]chan runtime.Result
	release chan struct{}
	specs   map[string]runtime.Spec
	// stops end a job cancelled (Stop) before it was released.
	stops map[string]chan struct{}
}

func (r *heldRuntime) Start(_ context.Context, spec runtime.Spec) (runtime.Handle, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.results[spec.JobID]; ok {
		return runtime.Handle{}, runtime.ErrJobExists
	}
	ch := make(chan runtime.Result, 1)
	r.results[spec.JobID], r.specs[spec.JobID] = ch, spec
	if r.stops == nil {
		r.stops = map[string]chan struct{}{}
	}
	stop := make(chan struct{})
	r.stops[spec.JobID] = stop
	go func() {
		start := time.Now()
		select {
		case <-r.release:
		case <-stop:
			ch <- runtime.Result{JobID: spec.JobID, ExitCode: 137, Cancelled: true, StartedAt: start, FinishedAt: time.Now(), WallTime: time.Since(start), OutputDir: spec.OutputDir}
			return
		}
		os.WriteFile(filepath.Join(spec.OutputDir, "model.bin"), []byte("weights of "+spec.JobID), 0o644)
		ch <- runtime.Result{JobID: spec.JobID, StartedAt: start, FinishedAt: time.Now(), WallTime: time.Since(start), OutputDir: spec.OutputDir}
	}()
	return runtime.Handle{JobID: spec.JobID, StartedAt: time.Now()}, nil
}

func (r *heldRuntime) Wait(ctx context.Context, id string) (runtime.Result, error) {
	r.mu.Lock()
	ch, ok := r.results[id]
	r.mu.Unlock()
	if !ok {
		return runtime.Result{}, runtime.ErrUnknownJob
	}
	select {
	case res := <-ch:
		ch <- res
		return res, nil
	case <-ctx.Done():
		return runtime.Result{}, ctx.Err()
	}
}

func (r *heldRuntime) Stop(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	stop, ok := r.stops[id]
	if !ok {
		return runtime.ErrUnknownJob
	}
	select {
	case <-stop:
	default:
		close(stop)
	}
	return nil
}

// stopped tells whether job id's container was stopped.
func (r *heldRuntime) stopped(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.stops[id]:
		return r.stops[id] != nil
	default:
		return false
	}
}

func (r *heldRuntime) Recover(context.Context) ([]runtime.Handle, error) { return nil, nil }

type p2pNode struct {
	h   host.Host
	key crypto.PrivKey
}

func newP2PNode(t *testing.T) p2pNode {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return p2pNode{h, key}
}

// received is what the coordinator's result handler saw and answers.
type received struct {
	mu      sync.Mutex
	results []pool.Result
	from    []peer.ID
	refuse  map[string]string // job → refusal
}

func (r *received) handle(_ context.Context, from peer.ID, res pool.Result) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
	r.from = append(r.from, from)
	if why, ok := r.refuse[res.JobID]; ok {
		return false, why
	}
	return true, ""
}

func (r *received) of(id string) []pool.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []pool.Result
	for _, x := range r.results {
		if x.JobID == id {
			out = append(out, x)
		}
	}
	return out
}

func manifest(nodes int) []byte {
	image := "registry.local/trainer@sha256:" + strings.Repeat("0a", 32)
	m := map[string]any{
		"version": 2, "image": image, "command": []string{"/train"},
		"resources":    map[string]any{"gpus": 0, "nodes": nodes},
		"output":       map[string]any{"path": "/out", "max_bytes": 1 << 20},
		"max_duration": "1h", "network": map[string]any{"mode": "none"},
		"evaluation": map[string]any{"image": image, "command": []string{"/eval"}, "metric": "accuracy", "threshold": 0.9, "direction": "higher"},
	}
	b, _ := json.Marshal(m)
	return b
}

// TestPoolJobsOverLibp2p: a coordinator and a member on real libp2p hosts. A job the
// coordinator dispatches runs in the member's own job machine; its heartbeats list it
// while it runs; its checkpoint's CID and tree hash come back in a signed result from
// the member, answering the dispatch. A two-rig job's rank 1 hands back a done result
// with no checkpoint. A job the member's machine declines after the ack comes back
// declined with the reason, and a job the coordinator took away is refused and given
// back as failed.
func TestPoolJobsOverLibp2p(t *testing.T) {
	ctx := t.Context()
	co, mem := newP2PNode(t), newP2PNode(t)
	if err := mem.h.Connect(ctx, peer.AddrInfo{ID: co.h.ID(), Addrs: co.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	c, err := pool.NewCoordinator(co.h, co.key, time.Minute, testkit.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := &received{refuse: map[string]string{"7": "job 7 was reassigned to another member"}}
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
	for _, id := range []string{"5", "6", "7", "8"} {
		chainView.set(id, bindings.JobMarketJob{State: uint8(market.StateAccepted), Sponsor: common.HexToAddress("0xb7"), Reward: newBig(1e18)})
	}

	// The member: the machine's chain is the pool adapter, over the pool member's link.
	var member *pool.Member
	var accepter *Accepter
	cfg := jobs.Default()
	cfg.OutcomePoll, cfg.RetryBase, cfg.RetryMax = configfile.Duration(20*time.Millisecond), configfile.Duration(10*time.Millisecond), configfile.Duration(50*time.Millisecond)
	sender := senderFunc(func(ctx context.Context, r pool.Result) (pool.Ack, error) { return member.SendResult(ctx, r) })
	machine := jobs.New(cfg, jobs.Deps{Store: st, Chain: NewChain(co.h.ID(), sender, chainView, jobs.Records{Store: st}, testkit.Discard()),
		Content: content, Runtime: rt, WorkDir: filepath.Join(dir, "work")}, testkit.Discard())
	accepter = NewAccepter(machine, chainView, testkit.Discard())
	inventory := func() pool.Heartbeat {
		return pool.Heartbeat{Account: common.HexToAddress("0xa1"), Admission: "active", Running: accepter.Running()}
	}
	member, err = pool.NewMember(mem.h, mem.key, co.h.ID(), inventory, accepter.Accept, testkit.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- machine.Run(mctx) }()
	t.Cleanup(func() { stop(); <-done })
	if err := member.Beat(ctx); err != nil {
		t.Fatal(err)
	}

	dispatch := func(id string, nodes int, cl *runtime.Cluster) pool.Ack {
		t.Helper()
		b := manifest(nodes)
		sum := sha256.Sum256(b)
		ack, err := c.Dispatch(ctx, mem.h.ID(), pool.Dispatch{JobID: id, ManifestCID: content.put(b), ManifestHash: hex.EncodeToString(sum[:]),
			Deadline: time.Now().Add(time.Hour).Unix(), Cluster: cl})
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

	ack5 := dispatch("5", 1, nil)
	ack8 := dispatch("8", 2, &runtime.Cluster{ID: "pool-8", NodeRank: 1, NNodes: 2, NProcPerNode: 1})
	ack7 := dispatch("7", 1, nil)
	waitState("5", jobs.Running)
	waitState("8", jobs.Running)
	waitState("7", jobs.Running)
	if err := member.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if ms := c.Members(); len(ms) != 1 || strings.Join(ms[0].Running, ",") != "5,7,8" {
		t.Fatalf("coordinator sees %+v, want jobs 5, 7 and 8 running", ms)
	}
	if cl := rt.specs["8"].Cluster; cl == nil || cl.NodeRank != 1 || cl.ID != "pool-8" {
		t.Fatalf("rank 1's container spec has cluster %+v", cl)
	}
	close(rt.release)

	j5 := waitState("5", jobs.Submitted)
	r5 := got.of("5")
	hash, _ := treehash.Sum(content.published[j5.OutputCID])
	if len(r5) != 1 || r5[0].Status != pool.ResultDone || r5[0].CID != j5.OutputCID || r5[0].Hash != hash || hash == "" ||
		r5[0].DispatchSeq != ack5.Seq || r5[0].Member != mem.h.ID().String() {
		t.Fatalf("job 5's results %+v, want one done with cid %s hash %s answering dispatch %d", r5, j5.OutputCID, hash, ack5.Seq)
	}
	waitState("8", jobs.Submitted)
	if r8 := got.of("8"); len(r8) != 1 || r8[0].Status != pool.ResultDone || r8[0].Rank != 1 || r8[0].CID != "" || r8[0].DispatchSeq != ack8.Seq {
		t.Fatalf("rank 1's results %+v, want one done without a checkpoint", r8)
	}
	j7 := waitState("7", jobs.Failed)
	testkit.Eventually(t, 20*time.Second, func() bool { j7, _ = machine.Get("7"); return j7.Refund != "" }, "job 7 never given back")
	r7 := got.of("7")
	if !strings.Contains(j7.Reason, "reassigned") || len(r7) != 2 || r7[1].Status != pool.ResultFailed || r7[0].DispatchSeq != ack7.Seq ||
		!strings.Contains(j7.Refund, "taken it back already") {
		t.Fatalf("job 7: %s (%s), refund %q; results %+v", j7.State, j7.Reason, j7.Refund, r7)
	}
	if err := member.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if ms := c.Members(); len(ms[0].Running) != 0 {
		t.Fatalf("still listed running after the results: %v", ms[0].Running)
	}

	// Declined by the member's machine after the ack: a two-rig manifest without a place.
	dispatch("6", 2, nil)
	waitState("6", jobs.Declined)
	testkit.Eventually(t, 20*time.Second, func() bool { return len(got.of("6")) == 1 }, "the coordinator never heard job 6 was declined")
	if r6 := got.of("6")[0]; r6.Status != pool.ResultDeclined || !strings.Contains(r6.Reason, "only a pool takes multi-rig jobs") {
		t.Fatalf("job 6's result %+v", r6)
	}

	// The chain decides: the member follows the pool's job to its end.
	chainView.set("5", bindings.JobMarketJob{State: uint8(market.StateCompleted), Reward: newBig(1e18)})
	waitState("5", jobs.Paid)
}

type senderFunc func(ctx context.Context, r pool.Result) (pool.Ack, error)

func (f senderFunc) SendResult(ctx context.Context, r pool.Result) (pool.Ack, error) {
	return f(ctx, r)
}
