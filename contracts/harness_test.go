package contracts_test

import (
	"context"
	"crypto/ecdsa"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/bindings/mocks"
	"github.com/gpunode/gpunode/contracts/devchain"
)

var (
	ether    = big.NewInt(params.Ether)
	market   = bindings.NewJobMarket()
	tokenABI = mocks.NewMockToken()
)

// account is a funded key on the simulated chain.
type account struct {
	key  *ecdsa.PrivateKey
	addr common.Address
}

// chain is a simulated EVM with a deployed JobMarket and named accounts.
type chain struct {
	t        testing.TB
	sim      *simulated.Backend
	client   simulated.Client
	market   common.Address
	sponsor  account
	provider account
	other    account // a second registered provider
	outsider account // registered nowhere
	vals     []account
	valAddrs []common.Address
	deployer account
}

func newAccount(t testing.TB) account {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return account{key: k, addr: crypto.PubkeyToAddress(k.PublicKey)}
}

func newChain(t testing.TB) *chain {
	t.Helper()
	c := &chain{t: t}
	c.deployer, c.sponsor, c.provider, c.other, c.outsider = newAccount(t), newAccount(t), newAccount(t), newAccount(t), newAccount(t)
	for range 3 {
		v := newAccount(t)
		c.vals = append(c.vals, v)
		c.valAddrs = append(c.valAddrs, v.addr)
	}
	alloc := types.GenesisAlloc{}
	fund := new(big.Int).Mul(big.NewInt(1000), ether)
	for _, a := range append([]account{c.deployer, c.sponsor, c.provider, c.other, c.outsider}, c.vals...) {
		alloc[a.addr] = types.Account{Balance: fund}
	}
	c.sim = simulated.NewBackend(alloc, devchain.WithMainnetRules())
	t.Cleanup(func() { c.sim.Close() })
	c.client = c.sim.Client()
	c.market = c.deploy(c.deployer, common.FromHex(bindings.JobMarketMetaData.Bin))
	c.mustSend(c.provider, c.market, nil, market.PackRegisterProvider("12D3KooWProvider", "bafyreport", crypto.Keccak256Hash([]byte("report"))))
	c.mustSend(c.other, c.market, nil, market.PackRegisterProvider("12D3KooWOther", "bafyreport2", crypto.Keccak256Hash([]byte("report2"))))
	return c
}

func (c *chain) opts(a account) *bind.TransactOpts {
	o := bind.NewKeyedTransactor(a.key, big.NewInt(1337))
	o.Context = context.Background()
	return o
}

// deploy creates a contract from bytecode (with packed constructor arguments appended).
func (c *chain) deploy(from account, code []byte) common.Address {
	c.t.Helper()
	opts := c.opts(from)
	n, err := c.client.NonceAt(context.Background(), from.addr, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	opts.Nonce = new(big.Int).SetUint64(n)
	addr, tx, err := bind.DeployContract(opts, code, c.client, nil)
	if err != nil {
		c.t.Fatalf("deploy: %v", err)
	}
	if r := c.mined(tx.Hash()); r.Status != types.ReceiptStatusSuccessful {
		c.t.Fatalf("deploy failed: %+v", r)
	}
	return addr
}

// mined commits blocks until the transaction has a receipt: the pool can take a moment
// to offer a transaction just sent, so one Commit may leave it out.
func (c *chain) mined(h common.Hash) *types.Receipt {
	c.t.Helper()
	for range 200 {
		c.sim.Commit()
		if r, err := c.client.TransactionReceipt(context.Background(), h); err == nil {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("transaction %s not mined", h)
	return nil
}

// send runs one transaction and mines it. A call that would revert returns the decoded
// revert error without sending anything.
func (c *chain) send(from account, to common.Address, value *big.Int, data []byte) (*types.Receipt, error) {
	c.t.Helper()
	ctx := context.Background()
	msg := ethereum.CallMsg{From: from.addr, To: &to, Value: value, Data: data}
	gas, err := c.client.EstimateGas(ctx, msg)
	if err != nil {
		return nil, contracts.Revert(err)
	}
	// Every send is mined before the next, so the chain's count is the next nonce (the
	// pool's pending count can lag a block just mined).
	nonce, err := c.client.NonceAt(ctx, from.addr, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	head, err := c.client.HeaderByNumber(ctx, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	tip := big.NewInt(params.GWei)
	feeCap := new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))
	if value == nil {
		value = new(big.Int)
	}
	tx := types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(1337), Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: gas * 2, To: &to, Value: value, Data: data})
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(big.NewInt(1337)), from.key)
	if err != nil {
		c.t.Fatal(err)
	}
	// The pool checks balances against the head it last saw, which can lag the block just
	// mined (an account funded in it still looks empty): retry that for a bounded while.
	for i := 0; ; i++ {
		err = c.client.SendTransaction(ctx, signed)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "insufficient funds for gas") || i == 200 {
			return nil, contracts.Revert(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := c.mined(signed.Hash())
	if r.Status != types.ReceiptStatusSuccessful {
		c.t.Fatalf("tx %s reverted on chain after a successful estimate", signed.Hash())
	}
	return r, nil
}

func (c *chain) mustSend(from account, to common.Address, value *big.Int, data []byte) *types.Receipt {
	c.t.Helper()
	r, err := c.send(from, to, value, data)
	if err != nil {
		c.t.Fatalf("send to %s: %v", to, err)
	}
	return r
}

// mustRevert checks that the call reverts with the named error.
func (c *chain) mustRevert(name string, from account, to common.Address, value *big.Int, data []byte) {
	c.t.Helper()
	_, err := c.send(from, to, value, data)
	if err == nil {
		c.t.Fatalf("call succeeded, want revert %s", name)
	}
	if !contracts.IsRevert(err, name) {
		c.t.Fatalf("got error %v, want revert %s", err, name)
	}
}

func (c *chain) call(to common.Address, data []byte) []byte {
	c.t.Helper()
	out, err := c.client.CallContract(context.Background(), ethereum.CallMsg{To: &to, Data: data}, nil)
	if err != nil {
		c.t.Fatalf("call: %v", contracts.Revert(err))
	}
	return out
}

func (c *chain) job(id *big.Int) bindings.JobMarketJob {
	c.t.Helper()
	j, err := market.UnpackGetJob(c.call(c.market, market.PackGetJob(id)))
	if err != nil {
		c.t.Fatal(err)
	}
	return j
}

func (c *chain) credit(token, who common.Address) *big.Int {
	c.t.Helper()
	v, err := market.UnpackCredit(c.call(c.market, market.PackCredit(token, who)))
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

// balance is who's ETH balance (token zero) or token balance.
func (c *chain) balance(token, who common.Address) *big.Int {
	c.t.Helper()
	if token == (common.Address{}) {
		b, err := c.client.BalanceAt(context.Background(), who, nil)
		if err != nil {
			c.t.Fatal(err)
		}
		return b
	}
	b, err := tokenABI.UnpackBalanceOf(c.call(token, tokenABI.PackBalanceOf(who)))
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// now is the timestamp of the latest block.
func (c *chain) now() uint64 {
	c.t.Helper()
	h, err := c.client.HeaderByNumber(context.Background(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return h.Time
}

// warp moves the chain clock forward by d (and mines a block).
func (c *chain) warp(d time.Duration) {
	c.t.Helper()
	// The tx pool forgets mined transactions asynchronously after a block, and AdjustTime
	// refuses to run while it still lists any: retry for a bounded while.
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

// newToken deploys a token contract, mints to sponsor and providers and approves the market.
func (c *chain) newToken(bin string) common.Address {
	c.t.Helper()
	tok := c.deploy(c.deployer, common.FromHex(bin))
	amount := new(big.Int).Mul(big.NewInt(1000), ether)
	for _, a := range []account{c.sponsor, c.provider, c.other} {
		c.mustSend(c.deployer, tok, nil, tokenABI.PackMint(a.addr, amount))
		if bin != mocks.FalseTokenMetaData.Bin {
			c.mustSend(a, tok, nil, tokenABI.PackApprove(c.market, amount))
		}
	}
	return tok
}

// terms are the numbers every lifecycle test uses.
var (
	reward = new(big.Int).Mul(big.NewInt(10), ether)
	fee    = new(big.Int).Div(ether, big.NewInt(10))
	bond   = ether
)

const (
	acceptWindow = time.Hour
	runWindow    = 6 * time.Hour
	attestWindow = 2 * time.Hour
	threshold    = 900_000 // score units are the contract user's choice; here accuracy * 1e6
)

func (c *chain) params(token common.Address, quorum uint8) bindings.JobMarketJobParams {
	return bindings.JobMarketJobParams{
		Token:        token,
		Reward:       reward,
		ValidatorFee: fee,
		Bond:         bond,
		Threshold:    threshold,
		Quorum:       quorum,
		Validators:   c.valAddrs,
		AcceptBy:     new(big.Int).SetUint64(c.now() + uint64(acceptWindow.Seconds())),
		RunWindow:    uint32(runWindow.Seconds()),
		AttestWindow: uint32(attestWindow.Seconds()),
		ManifestCID:  "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
		ManifestHash: crypto.Keccak256Hash([]byte("manifest")),
	}
}

// escrow is what the sponsor pays at post.
func escrow(p bindings.JobMarketJobParams) *big.Int {
	e := new(big.Int).Mul(p.ValidatorFee, big.NewInt(int64(len(p.Validators))))
	return e.Add(e, p.Reward)
}

// post posts a job and returns its id.
func (c *chain) post(p bindings.JobMarketJobParams) *big.Int {
	c.t.Helper()
	var value *big.Int
	if p.Token == (common.Address{}) {
		value = escrow(p)
	}
	r := c.mustSend(c.sponsor, c.market, value, market.PackPostJob(p))
	for _, l := range r.Logs {
		if ev, err := market.UnpackJobPostedEvent(l); err == nil {
			return ev.JobId
		}
	}
	c.t.Fatal("no JobPosted event")
	return nil
}

func (c *chain) accept(id *big.Int, token common.Address) *types.Receipt {
	c.t.Helper()
	var value *big.Int
	if token == (common.Address{}) {
		value = bond
	}
	return c.mustSend(c.provider, c.market, value, market.PackAcceptJob(id, c.valAddrs))
}

var resultHash = crypto.Keccak256Hash([]byte("checkpoint"))

func (c *chain) submit(id *big.Int) *types.Receipt {
	c.t.Helper()
	return c.mustSend(c.provider, c.market, nil, market.PackSubmitResult(id, "bafybeicheckpointcheckpointcheckpointcheckpointcheckpoint", resultHash))
}

func (c *chain) attest(id *big.Int, v int, score uint32) *types.Receipt {
	c.t.Helper()
	return c.mustSend(c.vals[v], c.market, nil, market.PackAttest(id, c.valAddrs, resultHash, score))
}

func (c *chain) withdraw(a account, token common.Address) *types.Receipt {
	c.t.Helper()
	return c.mustSend(a, c.market, nil, market.PackWithdraw(token))
}

// events returns the names of the JobMarket events in a receipt, in order.
func events(r *types.Receipt) []string {
	a := market.GetABI()
	var out []string
	for _, l := range r.Logs {
		if len(l.Topics) == 0 {
			continue
		}
		if ev, err := a.EventByID(l.Topics[0]); err == nil {
			out = append(out, ev.Name)
		}
	}
	return out
}
