package market

import (
	"context"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/params"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
)

// lowTip is a real client whose tip suggestion is too low for the chain's miner, the way
// a stale gas oracle leaves a transaction stuck.
type lowTip struct {
	simulated.Client
	tip *big.Int
}

func (l lowTip) SuggestGasTipCap(context.Context) (*big.Int, error) { return l.tip, nil }

// miner commits a block every period until stopped (bounded: at most n blocks).
func miner(sim *simulated.Backend, period time.Duration, n int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range n {
			select {
			case <-done:
				return
			case <-time.After(period):
				sim.Commit()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func txTestConfig() TxConfig {
	c := DefaultTxConfig()
	c.Confirmations = 2
	c.PollInterval = 5 * time.Millisecond
	c.BumpAfter = 30 * time.Millisecond
	c.BumpPercent = 50
	c.Timeout = time.Minute
	return c
}

// TestFeeBump: the miner wants a 5 gwei tip, the oracle says 1 gwei; the manager replaces
// the transaction with higher fees until it is mined, on the same nonce.
func TestFeeBump(t *testing.T) {
	key, _ := crypto.GenerateKey()
	from := crypto.PubkeyToAddress(key.PublicKey)
	gwei := big.NewInt(params.GWei)
	minTip := new(big.Int).Mul(big.NewInt(5), gwei)
	sim := simulated.NewBackend(types.GenesisAlloc{from: {Balance: new(big.Int).Mul(big.NewInt(10), big.NewInt(params.Ether))}},
		devchain.WithMainnetRules(), simulated.WithMinerMinTip(minTip))
	defer sim.Close()
	m := NewMetrics(nil)
	tm := NewTxManager(txTestConfig(), lowTip{sim.Client(), gwei}, key, discard(), m)
	stop := miner(sim, 10*time.Millisecond, 3000)
	defer stop()
	to := common.HexToAddress("0x2222")
	r, err := tm.Send(t.Context(), to, big.NewInt(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	tx, _, err := sim.Client().TransactionByHash(t.Context(), r.TxHash)
	if err != nil {
		t.Fatal(err)
	}
	if tx.GasTipCap().Cmp(minTip) < 0 {
		t.Errorf("mined with tip %s below the miner's %s", tx.GasTipCap(), minTip)
	}
	if tx.Nonce() != 0 {
		t.Errorf("nonce %d, want 0", tx.Nonce())
	}
	if n := testutil.ToFloat64(m.bumps); n < 3 {
		t.Errorf("%v bumps, want at least 3 (1 → 1.5 → 2.25 → 3.4 → 5.1 gwei)", n)
	}
	head, _ := sim.Client().BlockNumber(t.Context())
	if head+1 < r.BlockNumber.Uint64()+2 {
		t.Errorf("returned at head %d for a receipt in block %d: not confirmed", head, r.BlockNumber)
	}
}

// TestConcurrentSends: sends from many goroutines get distinct nonces and all land; a
// call that would revert returns the contract's error and spends no nonce.
func TestConcurrentSends(t *testing.T) {
	c := newTestChain(t)
	tm := NewTxManager(txTestConfig(), c.client, c.key, discard(), nil)
	stop := miner(c.sim, 10*time.Millisecond, 3000)
	defer stop()
	m := bindings.NewJobMarket()
	_, err := tm.Send(t.Context(), c.market, nil, m.PackWithdraw(common.Address{}))
	if !contracts.IsRevert(err, "NothingToWithdraw") {
		t.Fatalf("got %v, want NothingToWithdraw", err)
	}
	var wg sync.WaitGroup
	nonces := make(chan uint64, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := tm.Send(context.Background(), common.BigToAddress(big.NewInt(int64(0x3000+i))), big.NewInt(1), nil)
			if err != nil {
				t.Error(err)
				return
			}
			tx, _, _ := c.client.TransactionByHash(context.Background(), r.TxHash)
			nonces <- tx.Nonce()
		}()
	}
	wg.Wait()
	close(nonces)
	seen := map[uint64]bool{}
	for n := range nonces {
		if seen[n] {
			t.Errorf("nonce %d used twice", n)
		}
		seen[n] = true
	}
	// The deploy used nonce 0: the sends use 1..5.
	for n := uint64(1); n <= 5; n++ {
		if !seen[n] {
			t.Errorf("nonce %d unused: %v", n, seen)
		}
	}
}
