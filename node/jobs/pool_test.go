package jobs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gpunode/gpunode/internal/testkit"

	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/runtime"
)

// poolChain is a pool member's chain as the machine sees it: the fake market, plus the
// coordinator hearing of declined jobs. fail makes the next calls fail.
type poolChain struct {
	*fakeChain
	mu       sync.Mutex
	fail     int
	declined map[string][]string
}

func newPoolChain() *poolChain {
	return &poolChain{fakeChain: newFakeChain(), declined: map[string][]string{}}
}

func (c *poolChain) Declined(_ context.Context, id, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("pool coordinator unreachable")
	}
	c.declined[id] = append(c.declined[id], reason)
	return nil
}

func (c *poolChain) told(id string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.declined[id]...)
}

func twoNodes(m map[string]any) { m["resources"] = map[string]any{"gpus": 1, "nodes": 2} }

func poolPosting(rank, nnodes int) func(*Posting) {
	return func(p *Posting) {
		p.Source = SourcePool
		p.Sponsor = "0xsponsor"
		if nnodes > 0 {
			p.Cluster = &runtime.Cluster{ID: "pool-" + p.ID, NodeRank: rank, NNodes: nnodes, NProcPerNode: 1}
		}
	}
}

// TestMultiRigJobNeedsAPool: a rig alone declines a job for several rigs, and a pool's
// cluster place must match the manifest.
func TestMultiRigJobNeedsAPool(t *testing.T) {
	tests := []struct {
		name     string
		manifest []byte
		edit     func(*Posting)
		want     string
	}{
		{"chain posting for two rigs", manifestJSON(twoNodes), nil, "needs 2 rigs: only a pool takes multi-rig jobs"},
		{"pool dispatch without a cluster place", manifestJSON(twoNodes), poolPosting(0, 0), "needs 2 rigs: only a pool takes multi-rig jobs"},
		{"cluster of another size", manifestJSON(twoNodes), poolPosting(0, 3), "the pool's cluster has 3 rigs, the manifest's resources.nodes asks for 2"},
		{"cluster for a one-rig job", manifestJSON(nil), poolPosting(1, 2), "the pool's cluster has 2 rigs, the manifest's resources.nodes asks for 1"},
		{"cluster from a chain posting", manifestJSON(twoNodes), func(p *Posting) {
			p.Cluster = &runtime.Cluster{ID: "x", NNodes: 2, NProcPerNode: 1}
		}, "a cluster place from another source"},
		{"rank out of range", manifestJSON(twoNodes), poolPosting(2, 2), "cluster.node_rank 2: want 0-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, writeCheckpoint)
				r.start()
				r.postWith("8", tt.manifest, tt.edit)
				j := r.waitState("8", Declined)
				if !strings.Contains(j.Reason, tt.want) {
					t.Errorf("reason %q, want %q", j.Reason, tt.want)
				}
				if r.chain.accepts != 0 || len(r.rt.starts) != 0 || len(r.rt.checks) != 0 {
					t.Errorf("declined job accepted %d, started %v, dry-run %d times", r.chain.accepts, r.rt.starts, len(r.rt.checks))
				}
			})
		})
	}
}

// TestPoolClusterJob: a pool member's rank of a two-rig job runs with its cluster place
// in the container's spec (dry run and start); rank 0 publishes the checkpoint and
// submits its CID and tree hash, rank 1 publishes nothing and submits an empty result.
func TestPoolClusterJob(t *testing.T) {
	for _, rank := range []int{0, 1} {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			var mu sync.Mutex
			var started runtime.Spec
			r.rt.train = func(s runtime.Spec) int {
				mu.Lock()
				started = s
				mu.Unlock()
				return writeCheckpoint(s)
			}
			r.start()
			r.postWith("12", manifestJSON(twoNodes), poolPosting(rank, 2))
			j := r.waitState("12", Submitted)
			want := runtime.Cluster{ID: "pool-12", NodeRank: rank, NNodes: 2, NProcPerNode: 1}
			mu.Lock()
			defer mu.Unlock()
			if started.Cluster == nil || *started.Cluster != want {
				t.Errorf("rank %d: started with cluster %+v, want %+v", rank, started.Cluster, want)
			}
			if len(r.rt.checks) != 1 || r.rt.checks[0].Cluster == nil || *r.rt.checks[0].Cluster != want {
				t.Errorf("rank %d: dry run not of the cluster spec: %+v", rank, r.rt.checks)
			}
			got := r.chain.submitted["12"]
			if rank != 0 {
				if got != [2]string{} || r.content.publishes != 0 || j.OutputCID != "" {
					t.Errorf("rank 1 submitted %v after %d publishes (record cid %q), want nothing published", got, r.content.publishes, j.OutputCID)
				}
				return
			}
			hash, err := treehash.Sum(r.content.published[j.OutputCID])
			if err != nil || j.OutputCID == "" || got != [2]string{j.OutputCID, hash} {
				t.Errorf("rank 0 submitted %v, want cid %q hash %q (%v)", got, j.OutputCID, hash, err)
			}
		})
	}
}

// TestPoolJobSkipsOnlyChainTerms: a pool's job is not held to chain terms the member
// never sees (the coordinator checked them), while a chain posting with the same terms is
// declined; the manifest and the member's policy still decide a pool job.
func TestPoolJobSkipsOnlyChainTerms(t *testing.T) {
	badTerms := func(p *Posting) {
		p.RunWindowSeconds, p.Threshold, p.Quorum, p.Validators = 7200, 1, 1, []string{"0xv"}
	}
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.start()
		r.postWith("20", manifestJSON(nil), badTerms)
		if j := r.waitState("20", Declined); !strings.Contains(j.Reason, "threshold mismatch") {
			t.Errorf("chain posting: reason %q, want a threshold mismatch", j.Reason)
		}
		r.postWith("21", manifestJSON(nil), func(p *Posting) { badTerms(p); poolPosting(0, 0)(p) })
		r.waitState("21", Submitted)
	})
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.deps.Admitter = denyAll{"sponsor 0xsponsor is denied"}
		r.start()
		r.postWith("22", manifestJSON(nil), poolPosting(0, 0))
		if j := r.waitState("22", Declined); !strings.Contains(j.Reason, "policy: sponsor 0xsponsor is denied") {
			t.Errorf("pool job under a denying policy: reason %q", j.Reason)
		}
		r.postWith("23", manifestJSON(func(m map[string]any) { m["image"] = "trainer:latest" }), poolPosting(0, 0))
		if j := r.waitState("23", Declined); !strings.Contains(j.Reason, "pinned by digest") {
			t.Errorf("pool job with a bad manifest: reason %q", j.Reason)
		}
	})
}

// TestPoolDeclineNotified: the coordinator hears once that a pool job was declined, with
// the reason, after transient failures to reach it; chain jobs are not reported.
func TestPoolDeclineNotified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		pc := newPoolChain()
		pc.fail = 2
		r.deps.Chain = pc
		r.deps.Admitter = denyAll{"sponsor 0xsponsor is denied"}
		r.start()
		r.postWith("30", manifestJSON(nil), poolPosting(0, 0))
		r.post("31", manifestJSON(nil))
		r.waitState("30", Declined)
		r.waitState("31", Declined)
		testkit.Eventually(t, 10*time.Second, func() bool { j, _ := r.m.Get("30"); return j.DeclineTold }, "the record never says the pool was told")
		if got := pc.told("30"); len(got) != 1 || !strings.Contains(got[0], "policy: sponsor 0xsponsor is denied") {
			t.Errorf("coordinator told %q, want one notice with the reason", got)
		}
		if got := pc.told("31"); len(got) != 0 {
			t.Errorf("a chain job's decline was reported to the pool: %q", got)
		}
		if j, _ := r.m.Get("30"); !j.DeclineTold {
			t.Error("record does not say the pool was told")
		}
		r.restart()
		synctest.Wait()
		if got := pc.told("30"); len(got) != 1 {
			t.Errorf("after a restart the coordinator was told %d times, want once", len(got))
		}
	})
}

// TestPoolDeclineNotifiedAfterRestart: a node that stopped before it could tell the
// coordinator tells it after its restart.
func TestPoolDeclineNotifiedAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		pc := newPoolChain()
		pc.fail = 1 << 30
		r.deps.Chain = pc
		r.start()
		r.postWith("40", manifestJSON(twoNodes), poolPosting(0, 0))
		r.waitState("40", Declined)
		synctest.Wait()
		r.stop()
		if got := pc.told("40"); len(got) != 0 {
			t.Fatalf("told %q while the coordinator was unreachable", got)
		}
		pc.mu.Lock()
		pc.fail = 0
		pc.mu.Unlock()
		r.openStore()
		r.start()
		testkit.Eventually(t, 10*time.Second, func() bool { return len(pc.told("40")) == 1 }, "the coordinator never heard job 40 was declined")
		if got := pc.told("40"); !strings.Contains(got[0], "only a pool takes multi-rig jobs") {
			t.Errorf("told %q", got)
		}
	})
}

// TestPoolJobStopsAtItsDeadline: a pool job's container may not run past the deadline the
// coordinator gave it, nor past max_duration; a chain job's posting deadline (the accept
// deadline) does not shorten its run.
func TestPoolJobStopsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.deps.GPUs = []string{"GPU-a", "GPU-b", "GPU-c"} // the three jobs may run at once
		r.start()
		soon := time.Now().Add(10 * time.Minute)
		r.postWith("50", manifestJSON(nil), func(p *Posting) { poolPosting(0, 0)(p); p.Deadline = soon })
		r.postWith("51", manifestJSON(nil), func(p *Posting) { poolPosting(0, 0)(p); p.Deadline = time.Now().Add(5 * time.Hour) })
		r.postWith("52", manifestJSON(nil), func(p *Posting) { p.Deadline = soon })
		for _, id := range []string{"50", "51", "52"} {
			r.waitState(id, Submitted)
		}
		got := map[string]time.Duration{}
		for _, s := range r.rt.checks {
			got[s.JobID] = s.RunTimeout
		}
		if got["50"] > 10*time.Minute || got["50"] < 9*time.Minute || got["51"] != time.Hour || got["52"] != time.Hour {
			t.Errorf("run timeouts %v, want job 50 cut to its pool deadline (10m), 51 and 52 max_duration (1h)", got)
		}
	})
}
