package poolmember

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/runtime"
)

var sponsor = common.HexToAddress("0x00000000000000000000000000000000000000b7")

// validDispatch is a dispatch as pool.Member hands it over: checked for signature,
// sender and replay, with every field set.
func validDispatch(id string) pool.Dispatch {
	return pool.Dispatch{Version: pool.Version, Coordinator: coordinatorID, Member: memberID, Seq: 4, Time: time.Now().UnixMilli(),
		JobID: id, ManifestCID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", ManifestHash: "0x" + strings.ToUpper(hash64),
		Deadline: time.Now().Add(time.Hour).Unix()}
}

func accepted(id string) bindings.JobMarketJob {
	return bindings.JobMarketJob{State: uint8(market.StateAccepted), Sponsor: sponsor, Reward: big.NewInt(5e17)}
}

// TestAcceptDispatch: a dispatch that holds up becomes a pool posting of the member's
// machine, with the chain's sponsor and reward for the member's policy, and counts as
// running from the ack until the machine has it; a repeat is taken without a second job.
func TestAcceptDispatch(t *testing.T) {
	mk, j := &fakeMarket{}, newFakeJobs()
	mk.set("12", accepted("12"))
	a := NewAccepter(j, mk, testkit.Discard())
	d := validDispatch("12")
	d.Cluster = &runtime.Cluster{ID: "pool-12", NodeRank: 1, NNodes: 2, NProcPerNode: 1}
	if ok, reason := a.Accept(t.Context(), d); !ok {
		t.Fatalf("refused: %s", reason)
	}
	if len(j.discovered) != 1 {
		t.Fatalf("discovered %d jobs", len(j.discovered))
	}
	p := j.discovered[0]
	want := jobs.Posting{ID: "12", Sponsor: sponsor.Hex(), ManifestCID: d.ManifestCID, ManifestHash: hash64, RewardWei: "500000000000000000",
		Deadline: time.Unix(d.Deadline, 0).UTC(), Source: jobs.SourcePool, Token: (common.Address{}).Hex(), Cluster: d.Cluster, PoolDispatch: 4}
	if p.ID != want.ID || p.Sponsor != want.Sponsor || p.ManifestHash != want.ManifestHash || p.RewardWei != want.RewardWei ||
		!p.Deadline.Equal(want.Deadline) || p.Source != want.Source || p.Cluster != want.Cluster || p.PoolDispatch != 4 || p.ManifestCID != want.ManifestCID {
		t.Fatalf("posting %+v, want %+v", p, want)
	}
	if got := a.Running(); len(got) != 1 || got[0] != "12" {
		t.Fatalf("running before the machine recorded it: %v", got)
	}
	j.put(jobs.Job{ID: "12", State: jobs.Running, Record: jobs.Record{Posting: p}})
	if ok, reason := a.Accept(t.Context(), d); !ok || len(j.discovered) != 1 {
		t.Fatalf("repeated dispatch: %v %q, %d jobs discovered", ok, reason, len(j.discovered))
	}
	if got := a.Running(); len(got) != 1 || got[0] != "12" {
		t.Fatalf("running: %v", got)
	}
	j.put(jobs.Job{ID: "12", State: jobs.Submitted, Record: jobs.Record{Posting: p}})
	j.put(jobs.Job{ID: "13", State: jobs.Running, Record: jobs.Record{Posting: jobs.Posting{ID: "13", Source: "chain"}}})
	if got := a.Running(); len(got) != 0 {
		t.Fatalf("running after the result went back, or a chain job listed: %v", got)
	}
}

// TestAcceptRefuses: every dispatch that does not hold up is refused with the reason,
// and the machine is handed nothing.
func TestAcceptRefuses(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*pool.Dispatch, *fakeMarket, *fakeJobs)
		wants string
	}{
		{"deadline passed", func(d *pool.Dispatch, _ *fakeMarket, _ *fakeJobs) { d.Deadline = time.Now().Add(-time.Second).Unix() }, "deadline"},
		{"not a chain id", func(d *pool.Dispatch, _ *fakeMarket, _ *fakeJobs) { d.JobID = "pool-12" }, "on-chain id"},
		{"sealed job", func(d *pool.Dispatch, _ *fakeMarket, _ *fakeJobs) { d.JobID = "v2-12" }, "JobMarket job's on-chain id"},
		{"leading zero", func(d *pool.Dispatch, _ *fakeMarket, _ *fakeJobs) { d.JobID = "012" }, "on-chain id"},
		{"bad manifest hash", func(d *pool.Dispatch, _ *fakeMarket, _ *fakeJobs) { d.ManifestHash = "abc" }, "manifest hash"},
		{"bad manifest cid", func(d *pool.Dispatch, _ *fakeMarket, _ *fakeJobs) { d.ManifestCID = "../../etc" }, "manifest cid"},
		{"rank past the cluster", func(d *pool.Dispatch, _ *fakeMarket, _ *fakeJobs) {
			d.Cluster = &runtime.Cluster{ID: "pool-12", NodeRank: 2, NNodes: 2, NProcPerNode: 1}
		}, "node_rank"},
		{"cluster id", func(d *pool.Dispatch, _ *fakeMarket, _ *fakeJobs) {
			d.Cluster = &runtime.Cluster{ID: "../x", NNodes: 2, NProcPerNode: 1}
		}, "cluster.id"},
		{"not accepted on chain", func(_ *pool.Dispatch, m *fakeMarket, _ *fakeJobs) {
			m.set("12", bindings.JobMarketJob{State: uint8(market.StateOpen), Reward: big.NewInt(1)})
		}, "is open on chain"},
		{"chain unreadable", func(_ *pool.Dispatch, m *fakeMarket, _ *fakeJobs) { m.err = errors.New("rpc down") }, "read it on chain: rpc down"},
		{"ended here already", func(_ *pool.Dispatch, _ *fakeMarket, j *fakeJobs) {
			j.put(jobs.Job{ID: "12", State: jobs.Declined, Record: jobs.Record{Posting: jobs.Posting{Source: jobs.SourcePool}, Reason: "policy: no"}})
		}, "ended it already (declined: policy: no)"},
		{"the rig's own chain job", func(_ *pool.Dispatch, _ *fakeMarket, j *fakeJobs) {
			j.put(jobs.Job{ID: "12", State: jobs.Running, Record: jobs.Record{Posting: jobs.Posting{Source: "chain"}}})
		}, "from chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testenv.Attack(t, "pool", "dispatch a member must refuse: "+tt.name)
			mk, j := &fakeMarket{}, newFakeJobs()
			mk.set("12", accepted("12"))
			d := validDispatch("12")
			tt.edit(&d, mk, j)
			a := NewAccepter(j, mk, testkit.Discard())
			ok, reason := a.Accept(t.Context(), d)
			if ok || !strings.Contains(reason, tt.wants) {
				t.Fatalf("accepted %v, reason %q, want a refusal naming %q", ok, reason, tt.wants)
			}
			if len(j.discovered) != 0 {
				t.Fatalf("machine handed %+v", j.discovered)
			}
			if got := a.Running(); len(got) != 0 && tt.name != "the rig's own chain job" && tt.name != "ended here already" {
				t.Fatalf("a refused dispatch is listed running: %v", got)
			}
		})
	}
}

// TestRunningBounded: a heartbeat lists at most 64 jobs, and an acked job the machine
// never recorded stops being listed after a while.
func TestRunningBounded(t *testing.T) {
	j := newFakeJobs()
	a := NewAccepter(j, nil, testkit.Discard())
	now := time.Now()
	a.now = func() time.Time { return now }
	for i := 1; i <= 70; i++ {
		id := big.NewInt(int64(i)).String()
		j.put(jobs.Job{ID: id, State: jobs.Preparing, Record: jobs.Record{Posting: jobs.Posting{ID: id, Source: jobs.SourcePool}}})
	}
	if got := a.Running(); len(got) != 64 {
		t.Fatalf("%d running listed, want 64", len(got))
	}
	j2 := newFakeJobs()
	j2.failList = true
	b := NewAccepter(j2, nil, testkit.Discard())
	b.now = func() time.Time { return now }
	if ok, reason := b.Accept(t.Context(), validDispatch("3")); !ok {
		t.Fatal(reason)
	}
	if got := b.Running(); len(got) != 1 {
		t.Fatalf("running %v, want the acked job", got)
	}
	b.now = func() time.Time { return now.Add(pendingFor + time.Second) }
	if got := b.Running(); len(got) != 0 {
		t.Fatalf("running %v long after an ack the machine never recorded", got)
	}
}

// FuzzAccept: whatever a dispatch holds (past pool.Member's signature and replay checks),
// the accepter either refuses it or hands the machine a pool posting with an on-chain job
// id, a deadline ahead, a lowercase hex manifest hash and a valid cluster place.
func FuzzAccept(f *testing.F) {
	f.Add("12", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", hash64, int64(3600), "", 0, 0, 0)
	f.Add("12", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "0x"+hash64, int64(60), "pool-12", 1, 2, 1)
	f.Add("v2-3", "Qm", "zz", int64(-5), "../x", -1, 65, 0)
	f.Add("007", "bafk", hash64, int64(1), "pool-7", 0, 1, 64)
	f.Fuzz(func(t *testing.T, id, cid, hash string, in int64, clusterID string, rank, nnodes, nproc int) {
		mk, j := &fakeMarket{}, newFakeJobs()
		mk.set(id, accepted(id))
		a := NewAccepter(j, mk, testkit.Discard())
		d := validDispatch(id)
		d.ManifestCID, d.ManifestHash = cid, hash
		d.Deadline = time.Now().Unix() + in
		if clusterID != "" {
			d.Cluster = &runtime.Cluster{ID: clusterID, NodeRank: rank, NNodes: nnodes, NProcPerNode: nproc}
		}
		ok, reason := a.Accept(t.Context(), d)
		if !ok {
			if reason == "" || len(j.discovered) != 0 {
				t.Fatalf("refused without a reason (%q) or handed over %+v", reason, j.discovered)
			}
			return
		}
		if len(j.discovered) != 1 {
			t.Fatalf("accepted, and the machine got %d jobs", len(j.discovered))
		}
		p := j.discovered[0]
		switch {
		case !jobs.IsJobID(p.ID) || strings.HasPrefix(p.ID, "v2-"):
			t.Fatalf("accepted job id %q", p.ID)
		case !p.Deadline.After(time.Now().Add(-time.Second)):
			t.Fatalf("accepted a deadline in the past: %s", p.Deadline)
		case len(p.ManifestHash) != 64 || strings.ToLower(p.ManifestHash) != p.ManifestHash:
			t.Fatalf("manifest hash %q", p.ManifestHash)
		case p.Source != jobs.SourcePool:
			t.Fatalf("source %q", p.Source)
		}
		if p.Cluster != nil {
			if errs := p.Cluster.WithDefaults().Validate(); len(errs) > 0 {
				t.Fatalf("accepted cluster %+v: %v", p.Cluster, errs)
			}
		}
	})
}
