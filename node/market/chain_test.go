package market

import (
	"context"
	"crypto/ecdsa"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
)

// testChain is a simulated EVM with a deployed JobMarket and a funded sponsor.
type testChain struct {
	t       *testing.T
	sim     *simulated.Backend
	client  simulated.Client
	market  common.Address
	deploy  uint64
	key     *ecdsa.PrivateKey
	addr    common.Address
	valAddr common.Address
	nonce   uint64 // counted here: the pool's pending nonce lags right after a block
}

func newTestChain(t *testing.T) *testChain {
	t.Helper()
	key, _ := crypto.GenerateKey()
	addr := crypto.PubkeyToAddress(key.PublicKey)
	fund := new(big.Int).Mul(big.NewInt(1000), big.NewInt(params.Ether))
	sim := simulated.NewBackend(types.GenesisAlloc{addr: {Balance: fund}}, devchain.WithMainnetRules())
	t.Cleanup(func() { sim.Close() })
	c := &testChain{t: t, sim: sim, client: sim.Client(), key: key, addr: addr, valAddr: common.HexToAddress("0x1111")}
	opts := c.opts()
	opts.Nonce = new(big.Int)
	c.nonce = 1
	m, tx, err := contracts.DeployJobMarket(opts, c.client)
	if err != nil {
		t.Fatal(err)
	}
	sim.Commit()
	r, err := c.client.TransactionReceipt(t.Context(), tx.Hash())
	if err != nil || r.Status != 1 {
		t.Fatalf("deploy: %v", err)
	}
	c.market, c.deploy = m, r.BlockNumber.Uint64()
	return c
}

func (c *testChain) opts() *bind.TransactOpts {
	o := bind.NewKeyedTransactor(c.key, big.NewInt(1337))
	o.Context = context.Background()
	return o
}

// postJobs sends n postJob transactions without mining them.
func (c *testChain) postJobs(n int) {
	c.t.Helper()
	m := bindings.NewJobMarket()
	h, err := c.client.HeaderByNumber(context.Background(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for range n {
		p := bindings.JobMarketJobParams{
			Reward: big.NewInt(1000), ValidatorFee: big.NewInt(1), Bond: big.NewInt(10), Threshold: 1, Quorum: 1,
			Validators: []common.Address{c.valAddr}, AcceptBy: new(big.Int).SetUint64(h.Time + 3600),
			RunWindow: 60, AttestWindow: 60, ManifestCID: "bafymanifest", ManifestHash: crypto.Keccak256Hash([]byte("m")),
		}
		o := c.opts()
		o.Value = big.NewInt(1001)
		o.Nonce = new(big.Int).SetUint64(c.nonce)
		c.nonce++
		if _, err := bind.Transact(m.Instance(c.client, c.market), o, m.PackPostJob(p)); err != nil {
			c.t.Fatal(contracts.Revert(err))
		}
	}
}

func (c *testChain) commit(n int) common.Hash {
	var h common.Hash
	for range n {
		h = c.sim.Commit()
	}
	return h
}

// canonical returns the IDs of every JobMarket log on the canonical chain.
func (c *testChain) canonical() []string {
	c.t.Helper()
	logs, err := c.client.FilterLogs(context.Background(), filterAll(c.market, c.deploy))
	if err != nil {
		c.t.Fatal(err)
	}
	var ids []string
	for _, l := range logs {
		ids = append(ids, Event{Log: l}.ID())
	}
	return ids
}

// memCursor is an in-memory CursorStore.
type memCursor struct {
	p  Position
	ok bool
}

func (m *memCursor) Load() (Position, bool, error) { return m.p, m.ok, nil }
func (m *memCursor) Save(p Position) error         { m.p, m.ok = p, true; return nil }
