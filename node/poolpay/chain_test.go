package poolpay

import (
	"context"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
)

// env is an in-process dev chain (the simulated EVM behind an RPC endpoint) with its
// deployment file, and a funded dev account to pay from.
type env struct {
	t       *testing.T
	dep     devchain.Deployment
	depFile string
	bank    *market.Market
}

func newEnv(t *testing.T) *env {
	dep := devchain.StartTest(t, 20*time.Millisecond)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	if err := devchain.WriteDeployment(depFile, dep); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dep: dep, depFile: depFile}
	e.bank = e.market(dep.Accounts[0].PrivateKey)
	return e
}

// market is a Market acting as the account of hexKey.
func (e *env) market(hexKey string) *market.Market {
	e.t.Helper()
	dir := e.t.TempDir()
	w := market.NewWallet(filepath.Join(dir, "ks"), true)
	if _, err := w.ImportHex(hexKey, "pw"); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("pw"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cfg := market.Default()
	cfg.Deployment, cfg.Keystore, cfg.PasswordFile = e.depFile, w.Dir(), filepath.Join(dir, "pw")
	cfg.CursorFile, cfg.Confirmations, cfg.PollInterval = filepath.Join(dir, "c.json"), 1, 20*time.Millisecond
	m, err := market.New(cfg, testkit.Discard(), nil, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// fresh returns a Market for a new account funded with wei by the bank.
func (e *env) fresh(wei *big.Int) *market.Market {
	e.t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		e.t.Fatal(err)
	}
	m := e.market("0x" + hex.EncodeToString(crypto.FromECDSA(k)))
	if wei.Sign() > 0 {
		if _, err := e.bank.SendTo(e.t.Context(), "fund", m.Account(), wei, nil); err != nil {
			e.t.Fatal(err)
		}
	}
	return m
}

func (e *env) balance(a common.Address) *big.Int {
	e.t.Helper()
	b, err := e.bank.Balance(e.t.Context(), a)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func eth(milli int64) *big.Int {
	return new(big.Int).Mul(big.NewInt(milli), big.NewInt(params.Ether/1000))
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func addr(i int) common.Address { return common.BigToAddress(big.NewInt(int64(0x1000 + i))) }

func works(members ...common.Address) []pool.Work {
	var out []pool.Work
	for i, m := range members {
		out = append(out, pool.Work{Member: m, GPUSeconds: float64(100 * (i + 1)), Score: 10})
	}
	return out
}

// claim pays a payout through via (anyone may send a claim): the member's balance moves
// by exactly its amount.
func (e *env) claim(via *market.Market, ep pool.Epoch, p pool.Payout) {
	e.t.Helper()
	before := e.balance(p.Member)
	if _, err := via.SendTo(e.t.Context(), "claim", ep.Contract, nil, pool.PackClaim(ep, p)); err != nil {
		e.t.Fatal(err)
	}
	if got := new(big.Int).Sub(e.balance(p.Member), before); got.Cmp(p.Wei) != 0 {
		e.t.Fatalf("member %s's balance moved by %s, its payout is %s", p.Member, got, p.Wei)
	}
}

// TestContractDeployOnFirstStart: the coordinator deploys its PoolPayouts once and keeps
// the address in the data dir; a restart finds it; a configured contract of another
// coordinator, or an address without the contract, is refused.
func TestContractDeployOnFirstStart(t *testing.T) {
	e := newEnv(t)
	co := e.fresh(eth(1000))
	file := filepath.Join(t.TempDir(), "pool-payouts.json")
	a, err := Contract(t.Context(), co, "", file, time.Hour, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the deployed address is not kept: %v", err)
	}
	again, err := Contract(t.Context(), co, "", file, time.Hour, testkit.Discard())
	if err != nil || again != a {
		t.Fatalf("restart: %s %v, want the deployed %s", again, err, a)
	}
	if n, err := EpochCount(t.Context(), co, a); err != nil || n != 0 {
		t.Fatalf("epochs of a new contract: %d %v", n, err)
	}
	if got, err := Contract(t.Context(), co, a.Hex(), "", time.Hour, testkit.Discard()); err != nil || got != a {
		t.Fatalf("configured contract: %s %v", got, err)
	}
	other := e.fresh(eth(1000))
	if _, err := Contract(t.Context(), other, a.Hex(), "", time.Hour, testkit.Discard()); err == nil || !strings.Contains(err.Error(), "its coordinator is") {
		t.Fatalf("another coordinator's contract: %v", err)
	}
	if _, err := Contract(t.Context(), co, addr(99).Hex(), "", time.Hour, testkit.Discard()); err == nil || !strings.Contains(err.Error(), "not a PoolPayouts") {
		t.Fatalf("an address without the contract: %v", err)
	}
	if _, err := Contract(t.Context(), co, "0xnope", "", time.Hour, testkit.Discard()); err == nil {
		t.Fatal("a malformed address was taken")
	}
}

// TestBookPublishClaim: two jobs booked (one twice), published as one epoch whose total
// is their shares' sum; each member claims its payout and its balance moves by its share
// of both jobs; the next publication has nothing to publish, and a third job goes into
// epoch 1.
func TestBookPublishClaim(t *testing.T) {
	e := newEnv(t)
	co := e.fresh(eth(1000))
	ctx := t.Context()
	c, err := Contract(ctx, co, "", filepath.Join(t.TempDir(), "c.json"), time.Hour, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLedger(openStore(t, filepath.Join(t.TempDir(), "state.db")), 500, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	m1, m2, m3 := addr(1), addr(2), addr(3)
	if err := l.Book(ctx, "7", eth(300), works(m1, m2)); err != nil {
		t.Fatal(err)
	}
	if err := l.Book(ctx, "7", eth(900), works(m3)); err != nil {
		t.Fatalf("a second booking of a job: %v", err)
	}
	if err := l.Book(ctx, "8", eth(100), works(m2, m3)); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func() error{
		"no reward":  func() error { return l.Book(ctx, "9", big.NewInt(0), works(m1)) },
		"no work":    func() error { return l.Book(ctx, "9", eth(1), nil) },
		"no job id":  func() error { return l.Book(ctx, "", eth(1), works(m1)) },
		"bad member": func() error { return l.Book(ctx, "9", eth(1), []pool.Work{{GPUSeconds: 1, Score: 1}}) },
	} {
		err := bad()
		if !errors.Is(err, ErrBadBooking) {
			t.Errorf("%s: %v, want ErrBadBooking", name, err)
		}
		// The pool's job flow gives up on these rather than retrying.
		if !errors.Is(err, pool.ErrBadReward) && !errors.Is(err, pool.ErrBadWork) && !errors.Is(err, pool.ErrNoWork) {
			t.Errorf("%s: %v is not one of pool's permanent split errors", name, err)
		}
	}
	jobs, err := l.Jobs()
	if err != nil || len(jobs) != 2 || len(jobs[0].Split.Shares) != 2 || jobs[0].Split.Reward.Cmp(eth(300)) != 0 {
		t.Fatalf("jobs: %+v %v (the second booking of job 7 must change nothing)", jobs, err)
	}
	want := pool.Owed(jobs[0].Split, jobs[1].Split)

	p := NewPublisher(l, co, c, time.Hour, testkit.Discard())
	pub, err := p.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pub.Number != 0 || pub.State != EpochPublished || len(pub.Payouts) != 3 || len(pub.Jobs) != 2 {
		t.Fatalf("published %+v", pub.EpochRecord)
	}
	on, err := OnChainEpoch(ctx, co, c, 0)
	if err != nil || on.Root != pub.Root || on.Total.Cmp(pub.Total) != 0 {
		t.Fatalf("on chain: %+v %v, want root %s total %s", on, err, pub.Root, pub.Total)
	}
	if bal := e.balance(c); bal.Cmp(pub.Total) != 0 {
		t.Fatalf("the contract holds %s, the epoch's total is %s", bal, pub.Total)
	}
	for _, py := range pub.Payouts {
		if py.Wei.Cmp(want[py.Member]) != 0 {
			t.Errorf("member %s: payout %s, booked %s", py.Member, py.Wei, want[py.Member])
		}
		e.claim(e.bank, pub.Epoch, py)
		if ok, err := Claimed(ctx, co, c, 0, py.Member); err != nil || !ok {
			t.Errorf("claimed(%s): %v %v", py.Member, ok, err)
		}
	}
	if _, err := p.Publish(ctx); !errors.Is(err, ErrNothingToPublish) {
		t.Fatalf("publish with nothing booked: %v", err)
	}
	if err := l.Book(ctx, "10", eth(50), works(m1)); err != nil {
		t.Fatal(err)
	}
	pub1, err := p.Publish(ctx)
	if err != nil || pub1.Number != 1 || len(pub1.Jobs) != 1 || pub1.Jobs[0] != "10" {
		t.Fatalf("second epoch: %+v %v", pub1.EpochRecord, err)
	}
	epochs, err := l.Epochs(c)
	if err != nil || len(epochs) != 2 {
		t.Fatalf("epochs: %d %v", len(epochs), err)
	}
}

// crashing is a chain whose publish transaction is sent (or not) and then reported
// failed: the process died around the send.
type crashing struct {
	*market.Market
	sendFirst bool // the transaction went out before the crash
	sends     atomic.Int32
}

func (c *crashing) SendTo(ctx context.Context, what string, to common.Address, value *big.Int, data []byte) (*types.Receipt, error) {
	if !strings.HasPrefix(what, "publish") {
		return c.Market.SendTo(ctx, what, to, value, data)
	}
	c.sends.Add(1)
	if c.sendFirst {
		if _, err := c.Market.SendTo(ctx, what, to, value, data); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("killed")
}

// TestPublishRestartSafe: a coordinator killed after sending the publish (before it
// recorded it) finds the epoch on chain after its restart and does not publish it again;
// one killed before sending publishes it once after the restart.
func TestPublishRestartSafe(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	for _, sent := range []bool{true, false} {
		name := map[bool]string{true: "killed after the send", false: "killed before the send"}[sent]
		t.Run(name, func(t *testing.T) {
			co := e.fresh(eth(1000))
			c, err := Contract(ctx, co, "", filepath.Join(t.TempDir(), "c.json"), time.Hour, testkit.Discard())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "state.db")
			st := openStore(t, path)
			l, _ := NewLedger(st, 0, testkit.Discard())
			if err := l.Book(ctx, "1", eth(10), works(addr(1), addr(2))); err != nil {
				t.Fatal(err)
			}
			crash := &crashing{Market: co, sendFirst: sent}
			if _, err := NewPublisher(l, crash, c, time.Hour, testkit.Discard()).Publish(ctx); err == nil {
				t.Fatal("the crashing publish succeeded")
			}
			st.Close()

			// The restart: the same data, a working chain side.
			l2, _ := NewLedger(openStore(t, path), 0, testkit.Discard())
			if due, err := NewPublisher(l2, co, c, time.Hour, testkit.Discard()).Due(); err != nil || time.Until(due) > 0 {
				t.Fatalf("a pending epoch is due at once after a restart, got %s %v", due, err)
			}
			counting := &crashing{Market: co, sendFirst: true}
			ok := &okChain{crashing: counting}
			pub, err := NewPublisher(l2, ok, c, time.Hour, testkit.Discard()).Publish(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n, err := EpochCount(ctx, co, c)
			if err != nil || n != 1 || pub.Number != 0 || pub.State != EpochPublished {
				t.Fatalf("epochs on chain %d (%v), published %+v: want exactly one", n, err, pub.EpochRecord)
			}
			wantSends := map[bool]int32{true: 0, false: 1}[sent]
			if got := ok.sends.Load(); got != wantSends {
				t.Fatalf("publish sent %d times after the restart, want %d", got, wantSends)
			}
			for _, py := range pub.Payouts {
				e.claim(e.bank, pub.Epoch, py)
			}
		})
	}
}

// okChain counts publishes and sends them.
type okChain struct{ *crashing }

func (c *okChain) SendTo(ctx context.Context, what string, to common.Address, value *big.Int, data []byte) (*types.Receipt, error) {
	if strings.HasPrefix(what, "publish") {
		c.sends.Add(1)
	}
	return c.Market.SendTo(ctx, what, to, value, data)
}

// TestPublishRenumbered: an epoch the ledger prepared whose number another publication
// took (the same account published outside the ledger) is built again as the next epoch,
// and its members can claim it.
func TestPublishRenumbered(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	co := e.fresh(eth(1000))
	c, err := Contract(ctx, co, "", filepath.Join(t.TempDir(), "c.json"), time.Hour, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLedger(openStore(t, filepath.Join(t.TempDir(), "state.db")), 0, testkit.Discard())
	if err := l.Book(ctx, "1", eth(10), works(addr(1), addr(2), addr(3))); err != nil {
		t.Fatal(err)
	}
	// Prepared as epoch 0, not sent.
	if _, err := NewPublisher(l, &crashing{Market: co}, c, time.Hour, testkit.Discard()).Publish(ctx); err == nil {
		t.Fatal("the crashing publish succeeded")
	}
	stray, err := pool.NewEpoch(c, 0, map[common.Address]*big.Int{addr(50): big.NewInt(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := co.SendTo(ctx, "stray publish", c, stray.Total, pool.PackPublish(stray)); err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(l, co, c, time.Hour, testkit.Discard()).Publish(ctx)
	if err != nil || pub.Number != 1 {
		t.Fatalf("renumbered: %+v %v, want epoch 1", pub.EpochRecord, err)
	}
	if _, ok, _ := l.Epoch(c, 0); ok {
		t.Fatal("the stale epoch 0 stays in the ledger")
	}
	jobs, _ := l.Jobs()
	if len(jobs) != 1 || jobs[0].Epoch == nil || *jobs[0].Epoch != 1 {
		t.Fatalf("job's epoch: %+v", jobs)
	}
	for _, py := range pub.Payouts {
		e.claim(e.bank, pub.Epoch, py)
	}
}

// TestPublishWithdrawsCredit: a coordinator whose account holds less than the epoch's
// total withdraws its JobMarket credit (where the pool's rewards land) and publishes; one
// that cannot fund it even so gets ErrUnderfunded and publishes nothing.
func TestPublishWithdrawsCredit(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	co := e.fresh(eth(100))
	c, err := Contract(ctx, co, "", filepath.Join(t.TempDir(), "c.json"), time.Hour, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	// The account's credit on the JobMarket: a job it posts and cancels is credited back.
	h, err := co.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := co.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: eth(60), ValidatorFee: big.NewInt(0), Bond: big.NewInt(0), Threshold: 1, Quorum: 1,
		Validators: []common.Address{e.dep.Accounts[2].Address}, AcceptBy: big.NewInt(h.Unix() + 3600),
		RunWindow: 600, AttestWindow: 600, ManifestCID: "bafymanifest",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := co.CancelJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	credit, err := co.Credit(ctx, common.Address{}, co.Account())
	if err != nil || credit.Cmp(eth(60)) < 0 {
		t.Fatalf("credit %s %v", credit, err)
	}
	bal := e.balance(co.Account())
	l, _ := NewLedger(openStore(t, filepath.Join(t.TempDir(), "state.db")), 0, testkit.Discard())
	// More than the account holds, less than it holds with its credit.
	total := new(big.Int).Add(bal, eth(20))
	if err := l.Book(ctx, "1", total, works(addr(1), addr(2))); err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(l, co, c, time.Hour, testkit.Discard()).Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := l.Jobs()
	shares := new(big.Int) // the reward less what rounding left to the pool
	for _, v := range pool.Owed(jobs[0].Split) {
		shares.Add(shares, v)
	}
	if pub.Withdrawn == nil || pub.Withdrawn.Cmp(credit) != 0 || pub.Total.Cmp(shares) != 0 {
		t.Fatalf("published %s, withdrew %v; want %s after withdrawing the credit %s", pub.Total, pub.Withdrawn, shares, credit)
	}
	if left, _ := co.Credit(ctx, common.Address{}, co.Account()); left.Sign() != 0 {
		t.Fatalf("credit left: %s", left)
	}

	// Now nothing is left to withdraw: an epoch above the balance is refused.
	if err := l.Book(ctx, "2", eth(1000), works(addr(1))); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(l, co, c, time.Hour, testkit.Discard())
	if _, err := p.Publish(ctx); !errors.Is(err, ErrUnderfunded) {
		t.Fatalf("underfunded publish: %v", err)
	}
	if n, _ := EpochCount(ctx, co, c); n != 1 {
		t.Fatalf("epochs on chain: %d, want 1", n)
	}
	// It stays pending, due at once, and goes out once the account is funded.
	if due, err := p.Due(); err != nil || time.Until(due) > 0 {
		t.Fatalf("due %s %v", due, err)
	}
	if _, err := e.bank.SendTo(ctx, "fund", co.Account(), eth(2000), nil); err != nil {
		t.Fatal(err)
	}
	if pub, err := p.Publish(ctx); err != nil || pub.Number != 1 || pub.Total.Cmp(eth(1000)) != 0 {
		t.Fatalf("after funding: %+v %v", pub.EpochRecord, err)
	}
}

// TestPublisherRun: the publisher publishes booked shares by itself once they have waited
// an interval, and nothing while nothing is booked.
func TestPublisherRun(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	co := e.fresh(eth(1000))
	c, err := Contract(ctx, co, "", filepath.Join(t.TempDir(), "c.json"), time.Hour, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLedger(openStore(t, filepath.Join(t.TempDir(), "state.db")), 0, testkit.Discard())
	const interval = 300 * time.Millisecond
	p := NewPublisher(l, co, c, interval, testkit.Discard())
	if due, err := p.Due(); err != nil || !due.IsZero() {
		t.Fatalf("due with nothing booked: %s %v", due, err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	booked := time.Now()
	if err := l.Book(ctx, "1", eth(10), works(addr(1))); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		n, err := EpochCount(ctx, co, c)
		return err == nil && n == 1
	}, "the booked share was never published")
	rec, ok, err := l.Epoch(c, 0)
	if !ok || err != nil || rec.State != EpochPublished {
		t.Fatalf("epoch 0 in the ledger: %+v %v", rec, err)
	}
	if waited := rec.PreparedAt.Sub(booked); waited < interval {
		t.Fatalf("published %s after the booking, before the interval %s", waited, interval)
	}
	if due, err := p.Due(); err != nil || !due.IsZero() {
		t.Fatalf("due after publishing everything: %s %v", due, err)
	}
}
