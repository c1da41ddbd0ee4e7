package pool_test

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/node/pool"
)

type account struct {
	key  *ecdsa.PrivateKey
	addr common.Address
}

func newAccount(t testing.TB) account {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return account{k, crypto.PubkeyToAddress(k.PublicKey)}
}

// chain is a simulated chain with a PoolPayouts deployed for the coordinator.
type chain struct {
	t           testing.TB
	sim         *simulated.Backend
	coordinator account
	relayer     account // sends claims for members: their balances move by their shares alone
	outsider    account
	members     []account
	payouts     common.Address
}

const claimWindow = 24 * time.Hour

func newChain(t testing.TB, nMembers int) *chain {
	c := &chain{t: t, coordinator: newAccount(t), relayer: newAccount(t), outsider: newAccount(t)}
	alloc := types.GenesisAlloc{}
	fund := new(big.Int).Mul(big.NewInt(1000), big.NewInt(params.Ether))
	for _, a := range []account{c.coordinator, c.relayer, c.outsider} {
		alloc[a.addr] = types.Account{Balance: fund}
	}
	for range nMembers {
		m := newAccount(t)
		c.members = append(c.members, m)
		alloc[m.addr] = types.Account{Balance: fund}
	}
	c.sim = simulated.NewBackend(alloc, devchain.WithMainnetRules())
	t.Cleanup(func() { c.sim.Close() })
	opts := bind.NewKeyedTransactor(c.coordinator.key, big.NewInt(1337))
	addr, tx, err := pool.DeployPayouts(opts, c.sim.Client(), c.coordinator.addr, claimWindow)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.mined(tx.Hash()); r.Status != types.ReceiptStatusSuccessful {
		t.Fatal("deploy failed")
	}
	c.payouts = addr
	return c
}

func (c *chain) mined(h common.Hash) *types.Receipt {
	c.t.Helper()
	for range 200 {
		c.sim.Commit()
		if r, err := c.sim.Client().TransactionReceipt(context.Background(), h); err == nil {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("transaction %s not mined", h)
	return nil
}

// send runs one transaction and mines it; a call that would revert returns the decoded
// revert without sending anything.
func (c *chain) send(from account, value *big.Int, data []byte) (*types.Receipt, error) {
	c.t.Helper()
	ctx := context.Background()
	cl := c.sim.Client()
	gas, err := cl.EstimateGas(ctx, ethereum.CallMsg{From: from.addr, To: &c.payouts, Value: value, Data: data})
	if err != nil {
		return nil, contracts.Revert(err)
	}
	nonce, err := cl.NonceAt(ctx, from.addr, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	head, err := cl.HeaderByNumber(ctx, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	tip := big.NewInt(params.GWei)
	feeCap := new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))
	if value == nil {
		value = new(big.Int)
	}
	tx := types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(1337), Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: gas * 2, To: &c.payouts, Value: value, Data: data})
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(big.NewInt(1337)), from.key)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cl.SendTransaction(ctx, signed); err != nil {
		return nil, contracts.Revert(err)
	}
	r := c.mined(signed.Hash())
	if r.Status != types.ReceiptStatusSuccessful {
		c.t.Fatalf("tx reverted on chain after a successful estimate")
	}
	return r, nil
}

func (c *chain) mustSend(from account, value *big.Int, data []byte) *types.Receipt {
	c.t.Helper()
	r, err := c.send(from, value, data)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func (c *chain) mustRevert(name string, from account, value *big.Int, data []byte) {
	c.t.Helper()
	_, err := c.send(from, value, data)
	if !contracts.IsRevert(err, name) {
		c.t.Fatalf("got %v, want revert %s", err, name)
	}
}

func (c *chain) balance(a common.Address) *big.Int {
	c.t.Helper()
	b, err := c.sim.Client().BalanceAt(context.Background(), a, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

func (c *chain) warp(d time.Duration) {
	c.t.Helper()
	var err error
	for range 100 {
		if err = c.sim.AdjustTime(d); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.sim.Commit()
}

func gasCost(r *types.Receipt) *big.Int {
	return new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice)
}

// split divides a 3 ETH reward among the members by the pool's rule, with a 5 % fee, and
// publishes it as the next epoch.
func (c *chain) split(number uint64) (pool.Split, pool.Epoch) {
	c.t.Helper()
	var works []pool.Work
	for i, m := range c.members {
		works = append(works, pool.Work{Member: m.addr, GPUSeconds: float64(600 * (i + 1)), Score: 12.5 + float64(i)})
	}
	s, err := pool.Divide(new(big.Int).Mul(big.NewInt(3), big.NewInt(params.Ether)), 500, works)
	if err != nil {
		c.t.Fatal(err)
	}
	e, err := pool.NewEpoch(c.payouts, number, pool.Owed(s))
	if err != nil {
		c.t.Fatal(err)
	}
	return s, e
}

// TestPayoutsEndToEnd: the coordinator books a job's split, publishes it, and each member
// withdraws its share: its balance moves by exactly its share. Forged, repeated, late and
// unauthorised calls are refused; what is left goes back to the coordinator after the
// claim window.
func TestPayoutsEndToEnd(t *testing.T) {
	c := newChain(t, 3)
	s, e := c.split(0)
	c.mustRevert("NotCoordinator", c.outsider, e.Total, pool.PackPublish(e))
	c.mustRevert("BadValue", c.coordinator, new(big.Int).Sub(e.Total, big.NewInt(1)), pool.PackPublish(e))
	c.mustRevert("BadEpoch", c.relayer, nil, pool.PackClaim(e, e.Payouts[0]))
	c.mustSend(c.coordinator, e.Total, pool.PackPublish(e))

	// Member 0's share, claimed by a relayer: the member's balance moves by the share.
	p0, _ := e.Payout(c.members[0].addr)
	before := c.balance(p0.Member)
	c.mustSend(c.relayer, nil, pool.PackClaim(e, p0))
	if got := new(big.Int).Sub(c.balance(p0.Member), before); got.Cmp(p0.Wei) != 0 || got.Cmp(owedTo(s, p0.Member)) != 0 {
		t.Fatalf("member 0's balance moved by %s, share %s", got, p0.Wei)
	}
	c.mustRevert("AlreadyClaimed", c.relayer, nil, pool.PackClaim(e, p0))

	// Member 1 claims itself: its balance moves by the share less the gas it paid.
	p1, _ := e.Payout(c.members[1].addr)
	before = c.balance(p1.Member)
	r := c.mustSend(c.members[1], nil, pool.PackClaim(e, p1))
	want := new(big.Int).Sub(p1.Wei, gasCost(r))
	if got := new(big.Int).Sub(c.balance(p1.Member), before); got.Cmp(want) != 0 {
		t.Fatalf("member 1's balance moved by %s, want share %s less gas", got, p1.Wei)
	}

	// Forgeries: a raised amount, another's proof, a proof for another epoch.
	p2, _ := e.Payout(c.members[2].addr)
	raised := p2
	raised.Wei = new(big.Int).Add(p2.Wei, big.NewInt(1))
	c.mustRevert("BadProof", c.members[2], nil, pool.PackClaim(e, raised))
	stolen := p2
	stolen.Member = c.outsider.addr
	c.mustRevert("BadProof", c.outsider, nil, pool.PackClaim(e, stolen))
	_, e1 := c.split(1)
	c.mustSend(c.coordinator, e1.Total, pool.PackPublish(e1))
	c.mustRevert("BadProof", c.relayer, nil, pool.PackClaim(e1, p2)) // epoch 0's proof in epoch 1

	// Member 2 never claims epoch 0: after the window the coordinator takes it back.
	c.mustRevert("ClaimWindowOpen", c.coordinator, nil, pool.PackSweep(0))
	c.mustRevert("NotCoordinator", c.outsider, nil, pool.PackSweep(0))
	c.warp(claimWindow + time.Minute)
	c.mustRevert("ClaimWindowOver", c.relayer, nil, pool.PackClaim(e, p2))
	before = c.balance(c.coordinator.addr)
	r = c.mustSend(c.coordinator, nil, pool.PackSweep(0))
	want = new(big.Int).Sub(p2.Wei, gasCost(r))
	if got := new(big.Int).Sub(c.balance(c.coordinator.addr), before); got.Cmp(want) != 0 {
		t.Fatalf("sweep returned %s to the coordinator, want member 2's unclaimed %s less gas", got, p2.Wei)
	}
	c.mustRevert("AlreadySwept", c.coordinator, nil, pool.PackSweep(0))
	if bal := c.balance(c.payouts); bal.Cmp(e1.Total) != 0 {
		t.Fatalf("contract holds %s, want only epoch 1's %s", bal, e1.Total)
	}
}

func owedTo(s pool.Split, m common.Address) *big.Int { return pool.Owed(s)[m] }

// Gas of the payout path: deploy, publish, a claim at tree depths 2 and 7, a sweep.
const (
	gasBudgetPublish = 120_000 // three new storage slots: once per epoch, not per member
	gasBudgetClaim   = 90_000
	// gasReferenceClaim is Uniswap's MerkleDistributor claim (a bitmap, ERC-20 transfer),
	// about 70,000 gas as commonly measured: printed beside ours for scale.
	gasReferenceClaim = 70_000
)

type gasRow struct {
	call string
	gas  uint64
}

func payoutGas(t testing.TB) []gasRow {
	var rows []gasRow
	for _, n := range []int{3, 100} {
		c := newChain(t, n)
		_, e := c.split(0)
		rows = append(rows, gasRow{fmt.Sprintf("publish (%d members)", n), c.mustSend(c.coordinator, e.Total, pool.PackPublish(e)).GasUsed})
		p := e.Payouts[0] // a full-depth proof
		rows = append(rows, gasRow{fmt.Sprintf("claim (proof of %d)", len(p.Proof)), c.mustSend(c.relayer, nil, pool.PackClaim(e, p)).GasUsed})
		if n == 3 {
			c.warp(claimWindow + time.Minute)
			rows = append(rows, gasRow{"sweep", c.mustSend(c.coordinator, nil, pool.PackSweep(0)).GasUsed})
		}
	}
	return rows
}

func TestPayoutGas(t *testing.T) {
	rows := payoutGas(t)
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PoolPayouts call\tgas\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t\n", r.call, r.gas)
		switch {
		case strings.HasPrefix(r.call, "publish") && r.gas > gasBudgetPublish:
			t.Errorf("%s uses %d gas, budget %d", r.call, r.gas, gasBudgetPublish)
		case strings.HasPrefix(r.call, "claim") && r.gas > gasBudgetClaim:
			t.Errorf("%s uses %d gas, budget %d", r.call, r.gas, gasBudgetClaim)
		}
	}
	fmt.Fprintf(tw, "claim budget\t%d\t\n", gasBudgetClaim)
	fmt.Fprintf(tw, "MerkleDistributor claim (reference)\t%d\t\n", gasReferenceClaim)
	tw.Flush()
	t.Log("\n" + b.String())
}

// BenchmarkPayoutGas reports the gas of the payout path beside the reference claim.
func BenchmarkPayoutGas(b *testing.B) {
	var rows []gasRow
	for range b.N {
		rows = payoutGas(b)
	}
	for _, r := range rows {
		unit := strings.NewReplacer(" ", "_", "(", "", ")", "").Replace(r.call)
		b.ReportMetric(float64(r.gas), "gas/"+unit)
	}
	b.ReportMetric(gasReferenceClaim, "gas/reference_claim")
}
