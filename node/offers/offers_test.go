package offers

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/store"
)

var (
	self    = common.HexToAddress("0xa1")
	sponsor = common.HexToAddress("0xb2")
)

// fakeMarket has job 1 posted with manifest bafym by sponsor, judged by validators;
// lookups counts the chain lookups.
type fakeMarket struct {
	validators []common.Address
	poster     common.Address
	lookups    atomic.Int32
}

func (m *fakeMarket) Account() common.Address { return self }
func (m *fakeMarket) Posted(_ context.Context, id *big.Int) (*bindings.JobMarketJobPosted, error) {
	m.lookups.Add(1)
	if id.Int64() != 1 {
		return nil, market.ErrNotPosted
	}
	return &bindings.JobMarketJobPosted{JobId: big.NewInt(1), Sponsor: m.poster, ManifestCID: "bafym", Reward: big.NewInt(10),
		AcceptBy: big.NewInt(1), Bond: new(big.Int), Validators: m.validators}, nil
}

// fakeJobs is a machine that moves a discovered job to state after a while.
type fakeJobs struct {
	mu     sync.Mutex
	state  jobs.State
	after  time.Duration
	posted []jobs.Posting
	at     time.Time
}

func (f *fakeJobs) Discover(_ context.Context, p jobs.Posting) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posted = append(f.posted, p)
	f.at = time.Now()
	return nil
}

func (f *fakeJobs) Get(id string) (jobs.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.posted) == 0 {
		return jobs.Job{}, store.ErrNotFound
	}
	st := jobs.Discovered
	if time.Since(f.at) >= f.after {
		st = f.state
	}
	return jobs.Job{ID: id, State: st, Record: jobs.Record{Posting: f.posted[0], Reason: "over the policy's price"}}, nil
}

func offer(jobID, manifest string) p2p.Offer {
	return p2p.Offer{Version: p2p.OfferVersion, ID: "o", JobID: jobID, ManifestCID: manifest}
}

// TestDecide: offers that name no posted job, another manifest, or a job the node may
// not take are declined with the reason; a posted job goes to the machine, and the answer
// is how far the machine got.
func TestDecide(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		name       string
		offer      p2p.Offer
		validators []common.Address
		poster     common.Address
		state      jobs.State
		accepted   bool
		words      string
	}{
		{"no job id", offer("", "bafym"), nil, sponsor, jobs.Accepting, false, "post the job on chain first"},
		{"bad job id", offer("one", "bafym"), nil, sponsor, jobs.Accepting, false, "want a decimal or 0x-hex"},
		{"zero job id", offer("0", "bafym"), nil, sponsor, jobs.Accepting, false, "want a decimal or 0x-hex"},
		{"unknown job", offer("2", "bafym"), nil, sponsor, jobs.Accepting, false, "not posted"},
		{"other manifest", offer("1", "bafyforged"), nil, sponsor, jobs.Accepting, false, "is not the one posted"},
		{"validator", offer("1", "bafym"), []common.Address{self}, sponsor, jobs.Accepting, false, "one of job 1's validators"},
		{"own job", offer("1", "bafym"), nil, self, jobs.Accepting, false, "this node's own"},
		{"taken", offer("0x1", "bafym"), nil, sponsor, jobs.Accepting, true, "taking job 1 (accepting)"},
		{"declined", offer("1", "bafym"), nil, sponsor, jobs.Declined, false, "over the policy's price"},
		{"paid", offer("1", "bafym"), nil, sponsor, jobs.Paid, false, "already done and paid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := &fakeJobs{state: c.state, after: 20 * time.Millisecond}
			d := New(&fakeMarket{validators: c.validators, poster: c.poster}, j)
			got := d.Decide(ctx, peer.ID("peer"), c.offer)
			if got.Accepted != c.accepted || !strings.Contains(got.Reason, c.words) {
				t.Errorf("%+v, want accepted %v saying %q", got, c.accepted, c.words)
			}
			if c.accepted && (len(j.posted) != 1 || j.posted[0].Source != "offer from "+peer.ID("peer").String() || j.posted[0].RewardWei != "10") {
				t.Errorf("handed to the machine: %+v", j.posted)
			}
		})
	}
}

// TestDecideInTime: an offer whose time ends while the machine still evaluates is
// answered as queued.
func TestDecideInTime(t *testing.T) {
	d := New(&fakeMarket{poster: sponsor}, &fakeJobs{state: jobs.Accepting, after: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if got := d.Decide(ctx, "peer", offer("1", "bafym")); !got.Accepted || !strings.Contains(got.Reason, "still evaluating") {
		t.Errorf("%+v", got)
	}
}

// TestDecideLookupsCached: a job offered many times costs one chain lookup, posted or
// not.
func TestDecideLookupsCached(t *testing.T) {
	m := &fakeMarket{poster: sponsor}
	d := New(m, &fakeJobs{state: jobs.Declined})
	for range 10 {
		d.Decide(t.Context(), "peer", offer("1", "bafyforged"))
		d.Decide(t.Context(), "peer", offer("77", "bafym"))
	}
	if n := m.lookups.Load(); n != 2 {
		t.Errorf("%d lookups for two jobs offered ten times each, want 2", n)
	}
}

// TestPostedCache: a job not posted is forgotten after the negative TTL; a lookup error
// is not kept; the least recently used entry makes room.
func TestPostedCache(t *testing.T) {
	c := newPostedCache(2, time.Minute)
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	var calls int
	var fail error
	lookup := func(_ context.Context, id *big.Int) (*bindings.JobMarketJobPosted, error) {
		calls++
		if fail != nil {
			return nil, fail
		}
		if id.Int64() > 100 {
			return nil, market.ErrNotPosted
		}
		return &bindings.JobMarketJobPosted{JobId: id}, nil
	}
	ctx := t.Context()
	get := func(id int64) error { _, err := c.get(ctx, big.NewInt(id), lookup); return err }
	fail = errors.New("rpc down")
	if err := get(1); err == nil {
		t.Fatal("lookup error lost")
	}
	fail = nil
	get(1)
	get(1)
	if calls != 2 {
		t.Errorf("%d lookups: an error was kept, or a hit looked up again", calls)
	}
	if err := get(101); !errors.Is(err, market.ErrNotPosted) {
		t.Fatal(err)
	}
	get(101)
	now = now.Add(2 * time.Minute)
	get(101)
	if calls != 4 {
		t.Errorf("%d lookups, want the unposted job looked up again after its TTL only", calls)
	}
	now = now.Add(time.Second)
	get(1) // 1 is now more recent than 101
	get(2) // evicts 101
	before := calls
	get(1)
	get(101)
	if calls != before+1 {
		t.Errorf("%d lookups after eviction, want 1 (job 101 only)", calls-before)
	}
}

// FuzzParseJobID: a job id from a peer parses to a positive number that prints back to
// the same value, or is refused.
func FuzzParseJobID(f *testing.F) {
	for _, s := range []string{"1", "0x1", "0X1f", "0", "-1", "", "0x", "1e9", "99999999999999999999999999999", " 1", "0x-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := parseJobID(s)
		if !ok {
			return
		}
		if id.Sign() <= 0 {
			t.Fatalf("%q parsed to %s", s, id)
		}
		back, ok := parseJobID(id.String())
		if !ok || back.Cmp(id) != 0 {
			t.Fatalf("%q → %s does not parse back", s, id)
		}
	})
}

// TestMake: an offer carries the terms and the job, a fresh id each time, and stands for
// TTL; the desk of a rig takes it as a well-formed offer of that job.
func TestMake(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a := Make("1", "bafym", Terms{GPUs: 2, PricePerGPUHour: "5", MaxDuration: time.Hour}, now)
	b := Make("1", "bafym", Terms{}, now)
	if a.ID == b.ID || len(a.ID) != 16 {
		t.Errorf("ids %q %q: want fresh 8-byte ids", a.ID, b.ID)
	}
	if a.Version != p2p.OfferVersion || a.JobID != "1" || a.ManifestCID != "bafym" || a.GPUs != 2 || a.PricePerGPUHour != "5" ||
		a.MaxDurationSeconds != 3600 || a.ExpiresAt != now.Add(TTL).Unix() {
		t.Errorf("offer %+v", a)
	}
	d := New(&fakeMarket{poster: sponsor}, &fakeJobs{state: jobs.Accepting})
	if got := d.Decide(t.Context(), "peer", a); !got.Accepted {
		t.Errorf("the desk declined a made offer: %+v", got)
	}
}
