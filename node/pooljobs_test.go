package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p"
	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/policy"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/pooljobs"
	"github.com/gpunode/gpunode/node/validator"
	"github.com/gpunode/gpunode/runtime"
)

// poolBooks records the splits a coordinator books.
type poolBooks struct {
	mu     sync.Mutex
	jobs   []string
	reward []*big.Int
	work   [][]pool.Work
}

func (b *poolBooks) Book(_ context.Context, id string, reward *big.Int, w []pool.Work) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jobs, b.reward, b.work = append(b.jobs, id), append(b.reward, reward), append(b.work, w)
	return nil
}

// TestPoolCoordinatorTakesChainJob: on a pool coordinator, a job posted on the contract
// goes to the pool's flow, not to the node's own machine; the pool accepts it on chain
// with its account, dispatches it to a member over libp2p, takes the member's result,
// checks its output, submits it with the pool's account; the validators pass it, and the
// split is booked for the member.
func TestPoolCoordinatorTakesChainJob(t *testing.T) {
	t.Parallel() // its own dev chain and hosts; the longest of the package's tests
	dep := startDevchain(t)
	ctx := t.Context()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}

	newHost := func() (libp2pcrypto.PrivKey, host.Host) {
		key, _, err := libp2pcrypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return key, h
	}
	coKey, coHost := newHost()
	co, err := pool.NewCoordinator(coHost, coKey, 2*time.Second, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	jcfg := jobs.Default()
	jcfg.OutcomePoll = jobs.Default().RetryBase
	coordinator := newChainNode(t, dep, 1, content, nodeOpts{coordinator: co, jobs: jcfg})
	if coordinator.work.coord == nil {
		t.Fatal("a coordinator's job side has no pool flow")
	}
	if err := coordinator.work.registrar.Register(ctx); err != nil {
		t.Fatal(err)
	}
	books := &poolBooks{}
	coordinator.work.coord.SetBooker(books)

	// The member: a pool member on its own host that takes the dispatch and hands back a
	// published checkpoint.
	memKey, memHost := newHost()
	if err := memHost.Connect(ctx, peer.AddrInfo{ID: coHost.ID(), Addrs: coHost.Addrs()}); err != nil {
		t.Fatal(err)
	}
	memberAccount := common.HexToAddress("0x00000000000000000000000000000000000000a7")
	dispatched := make(chan pool.Dispatch, 1)
	var running []string
	var mu sync.Mutex
	member, err := pool.NewMember(memHost, memKey, coHost.ID(), func() pool.Heartbeat {
		mu.Lock()
		defer mu.Unlock()
		return pool.Heartbeat{Account: memberAccount, GPUs: 1, FreeGPUs: 1, Score: 42, Admission: "active", Running: running}
	}, func(_ context.Context, d pool.Dispatch) (bool, string) {
		mu.Lock()
		running = append(running, d.JobID)
		mu.Unlock()
		dispatched <- d
		return true, ""
	}, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	beatCtx, stopBeats := context.WithCancel(ctx)
	beats := make(chan struct{})
	go func() { member.Run(beatCtx, 100*time.Millisecond); close(beats) }()
	t.Cleanup(func() { stopBeats(); <-beats })
	testkit.Eventually(t, 10*time.Second, func() bool { m := co.Members(); return len(m) == 1 && m[0].Alive }, "member never reported")

	fee := big.NewInt(10_000)
	var validators []*chainNode
	for i := range 2 {
		validators = append(validators, newChainNode(t, dep, 2+i, content, nodeOpts{validate: true, runtime: &procRuntime{done: map[string]runtime.Result{}, run: func(s runtime.Spec) int {
			os.WriteFile(filepath.Join(s.OutputDir, validator.ResultFile), []byte(`{"version":1,"metrics":{"accuracy":0.95}}`), 0o644)
			return 0
		}}}))
	}
	manifestCID, sum := testManifest(content)
	sponsor := newChainNode(t, dep, 4, content)
	reward := big.NewInt(1_000_000)
	id, _, err := sponsor.market.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: reward, ValidatorFee: fee, Bond: new(big.Int), Threshold: 900000, Quorum: 2,
		Validators: []common.Address{validators[0].addr, validators[1].addr},
		AcceptBy:   big.NewInt(time.Now().Add(time.Hour).Unix()), RunWindow: 3600, AttestWindow: 3600,
		ManifestCID: manifestCID, ManifestHash: sum,
	})
	if err != nil {
		t.Fatal(err)
	}

	var d pool.Dispatch
	select {
	case d = <-dispatched:
	case <-time.After(60 * time.Second):
		t.Fatalf("no dispatch; pool job %+v", testkit.Lazy(func() string {
			j, err := coordinator.work.coord.Get(id.String())
			return j.ID + " " + string(j.State) + " " + j.Reason + errString(err)
		}))
	}
	if d.JobID != id.String() || d.ManifestCID != manifestCID {
		t.Fatalf("dispatch %+v", d)
	}
	view, err := coordinator.market.Job(ctx, id)
	if err != nil || market.JobState(view.State) != market.StateAccepted || view.Provider != coordinator.addr {
		t.Fatalf("on chain: %+v %v, want accepted by the pool's account", view, err)
	}
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, "model.json"), []byte(`{"w":[1]}`), 0o644)
	cid, err := content.Publish(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	treeHash, err := treehash.Sum(out)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := member.SendResult(ctx, pool.Result{JobID: d.JobID, DispatchSeq: d.Seq, Status: pool.ResultDone, CID: cid, Hash: treeHash, WallSeconds: 12, GPUs: 1})
	if err != nil || !ack.Accepted {
		t.Fatalf("result: %+v %v", ack, err)
	}
	testkit.Eventually(t, 60*time.Second, func() bool {
		j, err := coordinator.work.coord.Get(id.String())
		return err == nil && j.State == pooljobs.Paid
	}, "pool job not paid: %s", testkit.Lazy(func() string {
		j, err := coordinator.work.coord.Get(id.String())
		return string(j.State) + " " + j.Reason + errString(err)
	}))
	credit, err := coordinator.market.Credit(ctx, common.Address{}, coordinator.addr)
	if err != nil || credit.Cmp(reward) != 0 {
		t.Fatalf("pool credit %s %v, want the reward %s", credit, err, reward)
	}
	books.mu.Lock()
	defer books.mu.Unlock()
	if len(books.jobs) != 1 || books.jobs[0] != id.String() || books.reward[0].Cmp(reward) != 0 ||
		len(books.work[0]) != 1 || books.work[0][0].Member != memberAccount || books.work[0][0].Score != 42 {
		t.Fatalf("booked %v %v %+v", books.jobs, books.reward, books.work)
	}
	// The node's own machine never saw the job.
	if _, err := coordinator.work.machine.Get(id.String()); err == nil {
		t.Fatal("the coordinator's own machine took the pool's job")
	}
}

// TestPoolCoordinatorTakesDatasetJobForMember: the coordinator shares no dataset (its
// own rig's policy declines a job that mounts one), yet the pool takes a job mounting a
// member's private dataset and dispatches it to the member that reports it, not to a
// better-scored member without it. The member's own policy is the authority on whether
// the sponsor may use it, when the dispatch arrives.
func TestPoolCoordinatorTakesDatasetJobForMember(t *testing.T) {
	t.Parallel() // its own dev chain and hosts; the longest of the package's tests
	dep := startDevchain(t)
	ctx := t.Context()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}
	newHost := func() (libp2pcrypto.PrivKey, host.Host) {
		key, _, err := libp2pcrypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return key, h
	}
	coKey, coHost := newHost()
	co, err := pool.NewCoordinator(coHost, coKey, 2*time.Second, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The coordinator's policy: the default, which shares no local dataset.
	h, err := policy.New(policy.Config{History: 10}, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	coordinator := newChainNode(t, dep, 1, content, nodeOpts{coordinator: co, admitter: NewAdmitter(h)})
	if err := coordinator.work.registrar.Register(ctx); err != nil {
		t.Fatal(err)
	}

	// Two members: one with the better score and no dataset, one with the dataset.
	dispatched := make(chan string, 4)
	startMember := func(name string, score float64, datasets []string) host.Host {
		key, mh := newHost()
		if err := mh.Connect(ctx, peer.AddrInfo{ID: coHost.ID(), Addrs: coHost.Addrs()}); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var running []string
		m, err := pool.NewMember(mh, key, coHost.ID(), func() pool.Heartbeat {
			mu.Lock()
			defer mu.Unlock()
			return pool.Heartbeat{Account: common.HexToAddress("0x00000000000000000000000000000000000000a8"), GPUs: 1, FreeGPUs: 1, Score: score,
				Admission: "active", Datasets: datasets, Running: running}
		}, func(_ context.Context, d pool.Dispatch) (bool, string) {
			mu.Lock()
			running = append(running, d.JobID)
			mu.Unlock()
			dispatched <- name
			return true, ""
		}, quietLog(), nil)
		if err != nil {
			t.Fatal(err)
		}
		beatCtx, stop := context.WithCancel(ctx)
		beats := make(chan struct{})
		go func() { m.Run(beatCtx, 100*time.Millisecond); close(beats) }()
		t.Cleanup(func() { stop(); <-beats })
		return mh
	}
	startMember("fast", 90, nil)
	holder := startMember("holder", 40, []string{"medical-ct"})
	testkit.Eventually(t, 10*time.Second, func() bool {
		alive := 0
		for _, m := range co.Members() {
			if m.Alive {
				alive++
			}
		}
		return alive == 2
	}, "members never reported")

	image := "reg.local/t@sha256:" + fmt.Sprintf("%064d", 1)
	raw := []byte(`{"version":1,"image":"` + image + `","command":["/train"],"resources":{"gpus":1},
		"inputs":[{"dataset":"medical-ct","path":"/data"}],
		"output":{"path":"/out","max_bytes":1048576},"max_duration":"30m","network":{"mode":"none"},
		"evaluation":{"image":"` + image + `","command":["/eval"],"metric":"accuracy","threshold":0.9}}`)
	man, err := job.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	sponsor := newChainNode(t, dep, 4, content)
	// The coordinator's own rig's policy would decline it.
	if ok, reasons := NewAdmitter(h).Admit(jobs.Posting{Sponsor: sponsor.addr.Hex(), RewardWei: "1000000"}, man); ok || !strings.Contains(strings.Join(reasons, ";"), "medical-ct") {
		t.Fatalf("the coordinator's own policy admitted the dataset job (%v); the test shows nothing", reasons)
	}
	id, _, err := sponsor.market.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: big.NewInt(1_000_000), ValidatorFee: big.NewInt(10_000), Bond: new(big.Int), Threshold: 900000, Quorum: 2,
		Validators: []common.Address{dep.Accounts[2].Address, dep.Accounts[3].Address},
		AcceptBy:   big.NewInt(time.Now().Add(time.Hour).Unix()), RunWindow: 3600, AttestWindow: 3600,
		ManifestCID: content.put(raw), ManifestHash: sha256.Sum256(raw),
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case who := <-dispatched:
		if who != "holder" {
			t.Fatalf("the job went to the %s member, want the one with the dataset", who)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no dispatch; pool job %s", testkit.Lazy(func() string {
			j, err := coordinator.work.coord.Get(id.String())
			return j.ID + " " + string(j.State) + " " + j.Reason + errString(err)
		}))
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		j, err := coordinator.work.coord.Get(id.String())
		return err == nil && j.State == pooljobs.Running && len(j.Assignments) == 1 && j.Assignments[0].Member == holder.ID().String()
	}, "pool job not running on the member with the dataset: %s", testkit.Lazy(func() string {
		j, err := coordinator.work.coord.Get(id.String())
		return fmt.Sprintf("%s %s %+v%s", j.State, j.Reason, j.Assignments, errString(err))
	}))
	view, err := coordinator.market.Job(ctx, id)
	if err != nil || market.JobState(view.State) != market.StateAccepted || view.Provider != coordinator.addr {
		t.Fatalf("on chain: %+v %v, want accepted by the pool's account", view, err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " " + err.Error()
}

// TestPoolAdmitterSeesMembersVerifiedScore: a job asking for a challenge-verified
// throughput is admitted by the coordinator's policy when a live, active member holds
// it — the coordinator's own rig holds none — and declined when none does.
func TestPoolAdmitterSeesMembersVerifiedScore(t *testing.T) {
	h, err := policy.New(policy.Config{History: 10}, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}
	cid, _ := testManifest(content)
	m, err := job.Decode(bytes.NewReader(content.blobs[cid]))
	if err != nil {
		t.Fatal(err)
	}
	m.Resources.MinVerifiedScore = 50
	p := jobs.Posting{ID: "1", Sponsor: "0x1111111111111111111111111111111111111111", RewardWei: "2000"}
	if ok, _ := NewAdmitter(h).Admit(p, m); ok {
		t.Fatal("the coordinator's own rig, verified at 0, admitted a job needing 50")
	}
	var members []pool.MemberInfo
	a := poolAdmitter{Admitter: NewAdmitter(h), members: func() []pool.MemberInfo { return members }}
	for _, c := range []struct {
		name string
		mi   pool.MemberInfo
		want bool
	}{
		{"a live member verified at 60", pool.MemberInfo{Heartbeat: pool.Heartbeat{Verified: 60, Admission: "active"}, Alive: true}, true},
		{"a gone member verified at 60", pool.MemberInfo{Heartbeat: pool.Heartbeat{Verified: 60, Admission: "active"}}, false},
		{"a drained member verified at 60", pool.MemberInfo{Heartbeat: pool.Heartbeat{Verified: 60, Admission: "drained"}, Alive: true}, false},
		{"a live member verified at 40", pool.MemberInfo{Heartbeat: pool.Heartbeat{Verified: 40, Admission: "active"}, Alive: true}, false},
	} {
		members = []pool.MemberInfo{c.mi}
		if ok, reasons := a.Admit(p, m); ok != c.want {
			t.Errorf("%s: admitted %v (%v), want %v", c.name, ok, reasons, c.want)
		}
	}
}
