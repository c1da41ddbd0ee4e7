package earnings

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var (
	self  = common.HexToAddress("0xa1")
	token = common.HexToAddress("0xd4")
)

// fakeMarket holds jobs and the node's credit by currency; Withdraw pays the credit out.
type fakeMarket struct {
	mu        sync.Mutex
	jobs      map[int64]bindings.JobMarketJob
	credit    map[common.Address]*big.Int
	withdrawn []string
}

func (m *fakeMarket) Account() common.Address { return self }
func (m *fakeMarket) Job(_ context.Context, id *big.Int) (bindings.JobMarketJob, error) {
	j, ok := m.jobs[id.Int64()]
	if !ok {
		return j, errors.New("rpc: no such job")
	}
	return j, nil
}
func (m *fakeMarket) Credit(_ context.Context, tok, _ common.Address) (*big.Int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.credit[tok]; c != nil {
		return new(big.Int).Set(c), nil
	}
	return new(big.Int), nil
}
func (m *fakeMarket) Withdraw(_ context.Context, tok common.Address) (*types.Receipt, *big.Int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	amount := m.credit[tok]
	m.credit[tok] = new(big.Int)
	m.withdrawn = append(m.withdrawn, amount.String())
	return &types.Receipt{}, amount, nil
}
func (m *fakeMarket) withdrawals() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.withdrawn...)
}

func event(n int) market.Event {
	return market.Event{Log: types.Log{BlockHash: common.BigToHash(big.NewInt(int64(n))), TxHash: common.BigToHash(big.NewInt(int64(1000 + n)))}}
}

func newLedger(t *testing.T, m *fakeMarket, at *big.Int) *Ledger {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(m, st, at, quiet())
}

// TestLedger: rewards, fees and withdrawals are booked once per event in the job's
// currency, summed apart by currency for status and metrics.
func TestLedger(t *testing.T) {
	ctx := t.Context()
	m := &fakeMarket{
		jobs: map[int64]bindings.JobMarketJob{
			1: {Reward: big.NewInt(700), ValidatorFee: big.NewInt(3)},
			2: {Reward: big.NewInt(50), ValidatorFee: big.NewInt(9), Token: token},
		},
		credit: map[common.Address]*big.Int{{}: big.NewInt(700), token: big.NewInt(9)},
	}
	l := newLedger(t, m, nil)
	for i, book := range []func() error{
		func() error { return l.Reward(ctx, event(1), big.NewInt(1)) },
		func() error { return l.Reward(ctx, event(1), big.NewInt(1)) }, // the same event again
		func() error { return l.Fee(ctx, event(2), big.NewInt(2)) },
		func() error { return l.Withdrawal(ctx, event(3), common.Address{}, big.NewInt(100)) },
	} {
		if err := book(); err != nil {
			t.Fatalf("booking %d: %v", i, err)
		}
	}
	if err := l.Reward(ctx, event(4), big.NewInt(77)); err == nil {
		t.Error("a job the chain does not answer for was booked")
	}
	e := l.Status(ctx)
	if e.RewardsWei != "700" || e.FeesWei != "0" || e.WithdrawnWei != "100" || e.CreditWei != "700" || e.Error != "" {
		t.Errorf("ETH earnings %+v", e)
	}
	if len(e.Tokens) != 1 || e.Tokens[0].Token != token.Hex() || e.Tokens[0].Fees != "9" || e.Tokens[0].Rewards != "0" || e.Tokens[0].Credit != "9" {
		t.Errorf("token earnings %+v", e.Tokens)
	}
	entries, err := l.Entries()
	if err != nil || len(entries) != 3 {
		t.Fatalf("entries %+v %v", entries, err)
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].At.Before(entries[i-1].At) {
			t.Errorf("entries not oldest first: %+v", entries)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l.Collector())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP gpunode_earned_wei_total Credited to the node by the JobMarket, in the smallest unit of token ("ETH": wei; else the ERC-20 contract's address): rewards as provider, fees as validator.
# TYPE gpunode_earned_wei_total counter
gpunode_earned_wei_total{kind="fee",token="ETH"} 0
gpunode_earned_wei_total{kind="fee",token="`+token.Hex()+`"} 9
gpunode_earned_wei_total{kind="reward",token="ETH"} 700
gpunode_earned_wei_total{kind="reward",token="`+token.Hex()+`"} 0
# HELP gpunode_withdrawn_wei_total Withdrawn by the node from the JobMarket, in the smallest unit of token ("ETH": wei; else the ERC-20 contract's address).
# TYPE gpunode_withdrawn_wei_total counter
gpunode_withdrawn_wei_total{token="ETH"} 100
gpunode_withdrawn_wei_total{token="`+token.Hex()+`"} 0
`)); err != nil {
		t.Error(err)
	}
}

// TestAutoWithdraw: an ETH credit that reaches the configured amount is withdrawn; one
// below it, or a credit in a token, is not.
func TestAutoWithdraw(t *testing.T) {
	ctx := t.Context()
	m := &fakeMarket{
		jobs:   map[int64]bindings.JobMarketJob{1: {Reward: big.NewInt(40)}, 2: {Reward: big.NewInt(80)}, 3: {Reward: big.NewInt(500), Token: token}},
		credit: map[common.Address]*big.Int{{}: big.NewInt(40), token: big.NewInt(500)},
	}
	l := newLedger(t, m, big.NewInt(100))
	if err := l.Reward(ctx, event(3), big.NewInt(3)); err != nil {
		t.Fatal(err)
	}
	if err := l.Reward(ctx, event(1), big.NewInt(1)); err != nil {
		t.Fatal(err)
	}
	l.Wait()
	if got := m.withdrawals(); len(got) != 0 {
		t.Fatalf("withdrew %v below the configured amount", got)
	}
	m.mu.Lock()
	m.credit[common.Address{}] = big.NewInt(120)
	m.mu.Unlock()
	if err := l.Reward(ctx, event(2), big.NewInt(2)); err != nil {
		t.Fatal(err)
	}
	l.Wait()
	if got := m.withdrawals(); len(got) != 1 || got[0] != "120" {
		t.Errorf("withdrawals %v, want the whole ETH credit 120", got)
	}
	e, _ := l.Earnings()
	if e.AutoWithdrawWei != "100" {
		t.Errorf("auto-withdraw %q in earnings", e.AutoWithdrawWei)
	}
}
