package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeMarket is a JobMarket in memory: jobs by id, the provider registrations, and a
// record of every transaction sent. past says whether a job's deadline has passed.
type fakeMarket struct {
	mu         sync.Mutex
	self       common.Address
	jobs       map[int64]bindings.JobMarketJob
	past       bool
	registered map[common.Address]common.Hash
	sent       []string
}

func newFake(self common.Address) *fakeMarket {
	return &fakeMarket{self: self, jobs: map[int64]bindings.JobMarketJob{}, registered: map[common.Address]common.Hash{}}
}

func (f *fakeMarket) tx(what string) *types.Receipt {
	f.sent = append(f.sent, what)
	return &types.Receipt{TxHash: common.BytesToHash([]byte(what))}
}

func (f *fakeMarket) Account() common.Address { return f.self }

func (f *fakeMarket) Job(_ context.Context, id *big.Int) (bindings.JobMarketJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id.Int64()]
	if !ok {
		return j, errors.New("no such job")
	}
	return j, nil
}

func (f *fakeMarket) set(id int64, st market.JobState, provider common.Address) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id] = bindings.JobMarketJob{State: uint8(st), Provider: provider, Deadline: big.NewInt(1), AcceptBy: big.NewInt(1)}
}

func (f *fakeMarket) AcceptJob(_ context.Context, id *big.Int, validators []common.Address, bond *big.Int) (*types.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tx("accept " + id.String() + " validators " + addrs(validators) + " eth bond " + bond.String()), nil
}

func (f *fakeMarket) AcceptJobWithTokenBond(_ context.Context, id *big.Int, validators []common.Address, token common.Address, amount *big.Int) (*types.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tx("accept " + id.String() + " validators " + addrs(validators) + " token bond " + amount.String() + " " + token.Hex()), nil
}

func (f *fakeMarket) SubmitResult(_ context.Context, id *big.Int, cid string, hash common.Hash) (*types.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tx("submit " + id.String() + " " + cid), nil
}

func (f *fakeMarket) PastDeadline(context.Context, bindings.JobMarketJob) (bool, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.past {
		return true, 0, nil
	}
	return false, time.Hour, nil
}

func (f *fakeMarket) Expire(_ context.Context, id *big.Int) (*types.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id.Int64()]
	j.State = uint8(market.StateExpired)
	f.jobs[id.Int64()] = j
	return f.tx("expire " + id.String()), nil
}

func (f *fakeMarket) Provider(_ context.Context, a common.Address) (bool, common.Hash, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.registered[a]
	return ok, h, nil
}

func (f *fakeMarket) RegisterProvider(_ context.Context, peerID, cid string, hash common.Hash) (*types.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registered[f.self] = hash
	return f.tx("register " + peerID + " " + cid), nil
}

func (f *fakeMarket) sentTxs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

func addrs(list []common.Address) string {
	var s []string
	for _, a := range list {
		s = append(s, a.Hex())
	}
	return strings.Join(s, ",")
}

var (
	self  = common.HexToAddress("0x00000000000000000000000000000000000000a1")
	other = common.HexToAddress("0x00000000000000000000000000000000000000b2")
	val   = common.HexToAddress("0x00000000000000000000000000000000000000c3")
	token = common.HexToAddress("0x00000000000000000000000000000000000000d4")
)

// storeJob keeps a job as the machine does, with posting p.
func storeJob(t *testing.T, p jobs.Posting) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	raw, _ := json.Marshal(jobs.Record{Posting: p})
	if err := st.Create(store.Job{ID: p.ID, State: string(jobs.Accepting), Data: raw}, "test"); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestAccept: a job is accepted with the terms it was posted with (its validators, its
// bond in ETH or in its token), once: a job this node holds already is not sent again,
// and an id that is no chain job's is a permanent error.
func TestAccept(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		name    string
		posting jobs.Posting
		state   market.JobState
		holder  common.Address
		want    string // the transaction sent; "" for none
		answer  string
	}{
		{"eth bond", jobs.Posting{ID: "7", Validators: []string{val.Hex()}, BondWei: "100", Token: (common.Address{}).Hex()},
			market.StateOpen, common.Address{}, "accept 7 validators " + val.Hex() + " eth bond 100", ""},
		{"token bond", jobs.Posting{ID: "7", Validators: []string{val.Hex()}, BondWei: "5", Token: token.Hex()},
			market.StateOpen, common.Address{}, "accept 7 validators " + val.Hex() + " token bond 5 " + token.Hex(), ""},
		{"unreadable bond", jobs.Posting{ID: "7", BondWei: "lots"}, market.StateOpen, common.Address{}, "accept 7 validators  eth bond 0", ""},
		{"already ours", jobs.Posting{ID: "7"}, market.StateSubmitted, self, "", "already accepted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newFake(self)
			m.set(7, c.state, c.holder)
			ch := NewChain(m, jobs.Records{Store: storeJob(t, c.posting)}, quiet())
			tx, err := ch.Accept(ctx, "7")
			if err != nil {
				t.Fatal(err)
			}
			sent := m.sentTxs()
			switch {
			case c.want == "" && len(sent) != 0:
				t.Errorf("sent %q for a job already accepted", sent)
			case c.want != "" && (len(sent) != 1 || sent[0] != c.want):
				t.Errorf("sent %q, want %q", sent, c.want)
			case c.answer != "" && tx != c.answer:
				t.Errorf("answer %q, want %q", tx, c.answer)
			}
		})
	}
	ch := NewChain(newFake(self), jobs.Records{Store: storeJob(t, jobs.Posting{ID: "7"})}, quiet())
	for _, id := range []string{"x", "", "1e3", "-"} {
		if _, err := ch.Accept(ctx, id); !errors.Is(err, jobs.ErrPermanent) {
			t.Errorf("accept %q: %v, want a permanent error", id, err)
		}
	}
}

func TestSubmitOnce(t *testing.T) {
	ctx := t.Context()
	m := newFake(self)
	ch := NewChain(m, jobs.Records{Store: storeJob(t, jobs.Posting{ID: "3"})}, quiet())
	m.set(3, market.StateAccepted, self)
	if _, err := ch.Submit(ctx, "3", "bafyout", "00"); err != nil {
		t.Fatal(err)
	}
	m.set(3, market.StateSubmitted, self)
	if tx, err := ch.Submit(ctx, "3", "bafyout", "00"); err != nil || tx != "already submitted" {
		t.Errorf("second submit: %q %v", tx, err)
	}
	if got := m.sentTxs(); len(got) != 1 || got[0] != "submit 3 bafyout" {
		t.Errorf("sent %q, want one submission", got)
	}
}

// TestOutcome: the contract's states as the machine reads them; a submitted job whose
// validators missed the attest deadline is expired by its provider.
func TestOutcome(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		state  market.JobState
		holder common.Address
		past   bool
		want   jobs.Outcome
		sent   int
	}{
		{market.StateOpen, common.Address{}, false, jobs.OutcomePending, 0},
		{market.StateAccepted, other, false, jobs.OutcomeTaken, 0},
		{market.StateAccepted, self, true, jobs.OutcomePending, 0},
		{market.StateSubmitted, self, false, jobs.OutcomePending, 0},
		{market.StateSubmitted, self, true, jobs.OutcomeExpired, 1},
		{market.StateCompleted, self, false, jobs.OutcomeCompleted, 0},
		{market.StateCompleted, other, false, jobs.OutcomeTaken, 0},
		{market.StateRejected, self, false, jobs.OutcomeRejected, 0},
		{market.StateCancelled, common.Address{}, false, jobs.OutcomeExpired, 0},
		{market.StateExpired, self, false, jobs.OutcomeExpired, 0},
	} {
		m := newFake(self)
		m.set(1, c.state, c.holder)
		m.past = c.past
		got, err := NewChain(m, nil, quiet()).Outcome(ctx, "1")
		if err != nil || got != c.want || len(m.sentTxs()) != c.sent {
			t.Errorf("%s held by %s, past %v: %q %v with %d txs, want %q with %d", c.state, c.holder.Hex()[:6], c.past, got, err, len(m.sentTxs()), c.want, c.sent)
		}
	}
}

// TestAbandon: a failed job is expired once its deadline passes; a job another provider
// holds is not this node's to give back.
func TestAbandon(t *testing.T) {
	ctx := t.Context()
	m := newFake(self)
	m.set(1, market.StateAccepted, self)
	m.past = true
	got, err := NewChain(m, nil, quiet()).Abandon(ctx, "1", "container failed")
	if err != nil || !strings.Contains(got, "expired on chain at its deadline") {
		t.Errorf("abandon past the deadline: %q %v", got, err)
	}
	if got, err := NewChain(m, nil, quiet()).Abandon(ctx, "1", "again"); err != nil || !strings.Contains(got, "the sponsor is refunded") || len(m.sentTxs()) != 1 {
		t.Errorf("abandon again: %q %v, %d txs", got, err, len(m.sentTxs()))
	}
	m.set(2, market.StateAccepted, other)
	if _, err := NewChain(m, nil, quiet()).Abandon(ctx, "2", "x"); !errors.Is(err, jobs.ErrPermanent) {
		t.Errorf("abandon another's job: %v", err)
	}
	m.set(3, market.StateCompleted, self)
	if got, err := NewChain(m, nil, quiet()).Abandon(ctx, "3", "x"); err != nil || !strings.Contains(got, "nothing to give back") {
		t.Errorf("abandon a completed job: %q %v", got, err)
	}
	// Before the deadline it waits, until ctx ends.
	m.set(4, market.StateAccepted, self)
	m.past = false
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := NewChain(m, nil, quiet()).Abandon(cctx, "4", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("abandon before the deadline: %v, want it to wait", err)
	}
}

// TestRegister: a provider registers with its report, not again while the report is
// unchanged, keeps the registered one when a new one cannot be published, and says why
// it cannot register at all.
func TestRegister(t *testing.T) {
	ctx := t.Context()
	m := newFake(self)
	var cid string
	var hash common.Hash
	var fail error
	r := NewRegistrar(m, "12D3KooWpeer", func(context.Context) (string, common.Hash, error) { return cid, hash, fail }, quiet())
	for i, c := range []struct {
		cid   string
		hash  common.Hash
		fail  error
		txs   int
		wantH common.Hash
	}{
		{"", common.Hash{}, nil, 1, common.Hash{}},
		{"bafyr1", common.Hash{1}, nil, 2, common.Hash{1}},
		{"bafyr1", common.Hash{1}, nil, 2, common.Hash{1}},
		{"", common.Hash{}, errors.New("ipfs down"), 2, common.Hash{1}},
	} {
		cid, hash, fail = c.cid, c.hash, c.fail
		err := r.Register(ctx)
		if (err != nil) != (c.fail != nil) {
			t.Fatalf("round %d: %v", i, err)
		}
		if n := len(m.sentTxs()); n != c.txs || m.registered[self] != c.wantH {
			t.Errorf("round %d: %d txs, registered %x; want %d, %x", i, n, m.registered[self], c.txs, c.wantH)
		}
		if c.fail == nil && r.Published() != c.cid {
			t.Errorf("round %d: published %q, want %q", i, r.Published(), c.cid)
		}
	}
	if err := NewRegistrar(newFake(common.Address{}), "p", nil, quiet()).Register(ctx); err == nil || !strings.Contains(err.Error(), "watch-only") {
		t.Errorf("watch-only: %v", err)
	}
	if err := NewRegistrar(newFake(self), "", nil, quiet()).Register(ctx); err == nil || !strings.Contains(err.Error(), "p2p network is off") {
		t.Errorf("no peer id: %v", err)
	}
}

// TestRegistrarRun: the first registration waits for the benchmark at start, and a new
// report is registered at once.
func TestRegistrarRun(t *testing.T) {
	m := newFake(self)
	var mu sync.Mutex
	cid := "bafyfirst"
	r := NewRegistrar(m, "p", func(context.Context) (string, common.Hash, error) {
		mu.Lock()
		defer mu.Unlock()
		return cid, common.BytesToHash([]byte(cid)), nil
	}, quiet())
	measured, reports := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx, measured, reports); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: sent %q", what, m.sentTxs())
			}
		}
	}
	if got := m.sentTxs(); len(got) != 0 {
		t.Fatalf("registered before the benchmark settled: %q", got)
	}
	close(measured)
	waitFor("first registration", func() bool { return r.Published() == "bafyfirst" })
	mu.Lock()
	cid = "bafysecond"
	mu.Unlock()
	reports <- struct{}{}
	waitFor("registration of the new report", func() bool { return r.Published() == "bafysecond" })
	if got := m.sentTxs(); len(got) != 2 {
		t.Errorf("sent %q, want two registrations", got)
	}
}

func TestPostingAndNames(t *testing.T) {
	ev := &bindings.JobMarketJobPosted{JobId: big.NewInt(9), Sponsor: other, ManifestCID: "bafym", Reward: big.NewInt(10),
		AcceptBy: big.NewInt(1700000000), Bond: big.NewInt(3), Token: token, Threshold: 900000, Quorum: 1, RunWindow: 60, AttestWindow: 30,
		Validators: []common.Address{val, self}}
	p := Posting(ev)
	if p.ID != "9" || p.Sponsor != other.Hex() || p.RewardWei != "10" || p.BondWei != "3" || p.Token != token.Hex() || p.Source != "chain" ||
		p.Quorum != 1 || p.RunWindowSeconds != 60 || len(p.Validators) != 2 || !p.Deadline.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("posting %+v", p)
	}
	if !Names(ev.Validators, self) || Names(ev.Validators, other) || Names([]common.Address{{}}, common.Address{}) {
		t.Error("Names: wrong membership (the zero address is never named)")
	}
}
