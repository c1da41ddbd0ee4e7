package node

import (
	"context"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/sponsored"
	"github.com/gpunode/gpunode/runtime"
)

// coordinatorInbox is the pool's coordinator as the member's job side sees it: it takes
// every result.
type coordinatorInbox struct {
	mu  sync.Mutex
	got []pool.Result
}

func (c *coordinatorInbox) SendResult(_ context.Context, r pool.Result) (pool.Ack, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, r)
	return pool.Ack{Version: pool.Version, JobID: r.JobID, Accepted: true}, nil
}

func (c *coordinatorInbox) results() []pool.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]pool.Result(nil), c.got...)
}

func testPeer(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := libp2pcrypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPoolMemberJobSide: on a dev chain, a pool member's job side takes no chain posting
// and no offer itself; it refuses a dispatch of a job the pool has not accepted on chain,
// and runs one it has in its own machine, handing the checkpoint back to the coordinator
// (not the chain).
func TestPoolMemberJobSide(t *testing.T) {
	t.Parallel() // its own dev chain and hosts; the longest of the package's tests
	dep := startDevchain(t)
	ctx := t.Context()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}
	coordinator := testPeer(t)
	inbox := &coordinatorInbox{}
	trainer := &procRuntime{done: map[string]runtime.Result{}, run: func(s runtime.Spec) int {
		os.WriteFile(filepath.Join(s.OutputDir, "model.json"), []byte(`{"w":[4,5]}`), 0o644)
		return 0
	}}
	member := newChainNode(t, dep, 3, content, nodeOpts{runtime: trainer, poolResults: inbox, poolCoordinator: coordinator})
	poolAccount := newChainNode(t, dep, 1, content, nodeOpts{closed: true}) // the coordinator's wallet
	sponsor := newChainNode(t, dep, 4, content)
	if member.work.pool == nil {
		t.Fatal("a member's job side has no dispatch accepter")
	}

	manifestCID, sum := testManifest(content)
	validators := []common.Address{common.HexToAddress("0x00000000000000000000000000000000000000f1")}
	id, _, err := sponsor.market.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: big.NewInt(1_000_000), ValidatorFee: new(big.Int), Bond: new(big.Int), Threshold: 900000, Quorum: 1,
		Validators: validators, AcceptBy: big.NewInt(time.Now().Add(time.Hour).Unix()), RunWindow: 3600, AttestWindow: 3600,
		ManifestCID: manifestCID, ManifestHash: sum,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The member posts a job of its own afterwards: once it has booked that one, it has
	// handled the sponsor's posting before it, and must have left it alone.
	own, _, err := member.market.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: big.NewInt(1), ValidatorFee: new(big.Int), Bond: new(big.Int), Threshold: 900000, Quorum: 1,
		Validators: validators, AcceptBy: big.NewInt(time.Now().Add(time.Hour).Unix()), RunWindow: 3600, AttestWindow: 3600,
		ManifestCID: manifestCID, ManifestHash: sum,
	})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, func() bool { _, err := member.store.Get(sponsored.Key(own.String())); return err == nil },
		"the member never booked its own job %s", own)
	if j, err := member.work.machine.Get(id.String()); err == nil {
		t.Fatalf("the member took the chain posting itself: %s (%s)", j.State, j.Reason)
	}
	if d := member.gate.offer(ctx, coordinator, p2p.Offer{ManifestCID: manifestCID}); d.Accepted || !strings.Contains(d.Reason, "pool member") {
		t.Fatalf("offer to a member: %+v", d)
	}

	d := pool.Dispatch{Version: pool.Version, Coordinator: coordinator.String(), Member: testPeer(t).String(), Seq: 3, Time: time.Now().UnixMilli(),
		JobID: id.String(), ManifestCID: manifestCID, ManifestHash: common.Hash(sum).Hex(), Deadline: time.Now().Add(time.Hour).Unix()}
	if ok, reason := member.work.pool.Accept(ctx, d); ok || !strings.Contains(reason, "open on chain") {
		t.Fatalf("dispatch of a job nobody accepted: %v %q", ok, reason)
	}
	if err := poolAccount.work.registrar.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := poolAccount.market.AcceptJob(ctx, id, validators, new(big.Int)); err != nil {
		t.Fatal(err)
	}
	if ok, reason := member.work.pool.Accept(ctx, d); !ok {
		t.Fatalf("dispatch refused: %s", reason)
	}
	waitJobState(t, member.work.machine, id.String(), jobs.Submitted, 30*time.Second)
	j, _ := member.work.machine.Get(id.String())
	hash, _ := treehash.Sum(content.trees[j.OutputCID])
	got := inbox.results()
	if len(got) != 1 || got[0].Status != pool.ResultDone || got[0].CID != j.OutputCID || got[0].Hash != hash || got[0].DispatchSeq != 3 {
		t.Fatalf("coordinator got %+v, want the checkpoint %s %s", got, j.OutputCID, hash)
	}
	if j.Posting.Sponsor != sponsor.addr.Hex() || j.Posting.RewardWei != "1000000" || j.Posting.Source != jobs.SourcePool {
		t.Fatalf("the member's posting %+v lacks the chain's sponsor and reward", j.Posting)
	}
	if _, _, err := sponsor.market.Result(ctx, id); err == nil {
		t.Fatal("the member submitted on chain itself")
	}
}
