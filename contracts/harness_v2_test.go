package contracts_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/contracts/bindings"
)

var market2 = bindings.NewJobMarketV2()

// Registry terms of the v2 tests.
var (
	minStake    = ether
	slashAmount = new(big.Int).Div(ether, big.NewInt(2))
)

const (
	unbonding    = 24 * time.Hour
	commitWindow = time.Hour
	revealWindow = time.Hour
)

// Job states as numbered in JobMarketV2.State.
const (
	v2Open uint8 = iota + 1
	v2Accepted
	v2Submitted
	v2Passed
	v2Completed
	v2Rejected
	v2NoQuorum
	v2Returned
	v2Cancelled
	v2Expired
)

// chain2 is a simulated chain with a JobMarketV2 beside the v1 market: the provider and
// other are registered providers on it, and the three validators are staked with
// minStake (so the pool is exactly c.vals).
type chain2 struct {
	*chain
	v2     common.Address
	byAddr map[common.Address]account
	gas    []gasRow
}

func newChain2(t testing.TB) *chain2 {
	t.Helper()
	c := &chain2{chain: newChain(t), byAddr: map[common.Address]account{}}
	code := append(common.FromHex(bindings.JobMarketV2MetaData.Bin), market2.PackConstructor(minStake, slashAmount, uint32(unbonding.Seconds()))...)
	c.v2 = c.deploy(c.deployer, code)
	for _, a := range append([]account{c.deployer, c.sponsor, c.provider, c.other, c.outsider}, c.vals...) {
		c.byAddr[a.addr] = a
	}
	c.mustSend(c.provider, c.v2, nil, market2.PackRegisterProvider("12D3KooWProvider", "bafyreport", crypto.Keccak256Hash([]byte("report"))))
	c.mustSend(c.other, c.v2, nil, market2.PackRegisterProvider("12D3KooWOther", "bafyreport2", crypto.Keccak256Hash([]byte("report2"))))
	for i, v := range c.vals {
		c.mustSend(v, c.v2, minStake, market2.PackRegisterValidator(fmt.Sprintf("12D3KooWValidator%d", i)))
	}
	return c
}

// funded creates a new account with 100 ETH from the deployer.
func (c *chain2) funded() account {
	c.t.Helper()
	a := newAccount(c.t)
	c.mustSend(c.deployer, a.addr, new(big.Int).Mul(big.NewInt(100), ether), nil)
	c.byAddr[a.addr] = a
	return a
}

// record runs a transaction, keeps its gas under name and returns its receipt.
func (c *chain2) record(name string, from account, value *big.Int, data []byte) *types.Receipt {
	c.t.Helper()
	r := c.mustSend(from, c.v2, value, data)
	c.gas = append(c.gas, gasRow{name, r.GasUsed})
	return r
}

// printGas prints the gas of every recorded call (with -v, or when the test failed).
func (c *chain2) printGas(t *testing.T) {
	if !t.Failed() && !testing.Verbose() {
		return
	}
	printRows(os.Stdout, t.Name(), c.gas)
}

func printRows(w io.Writer, title string, rows []gasRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tgas\t\n", title)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t\n", r.call, r.gas)
	}
	fmt.Fprintf(tw, "total\t%d\t\n", total(rows))
	tw.Flush()
}

func (c *chain2) params2(token common.Address, k, quorum uint8) bindings.JobMarketV2JobParams {
	return bindings.JobMarketV2JobParams{
		Token:          token,
		Reward:         reward,
		ValidatorFee:   fee,
		Bond:           bond,
		Threshold:      threshold,
		ValidatorCount: k,
		Quorum:         quorum,
		AcceptBy:       new(big.Int).SetUint64(c.now() + uint64(acceptWindow.Seconds())),
		RunWindow:      uint32(runWindow.Seconds()),
		CommitWindow:   big.NewInt(int64(commitWindow.Seconds())),
		RevealWindow:   big.NewInt(int64(revealWindow.Seconds())),
		ManifestCID:    "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
		ManifestHash:   crypto.Keccak256Hash([]byte("manifest")),
	}
}

func escrow2(p bindings.JobMarketV2JobParams) *big.Int {
	e := new(big.Int).Mul(p.ValidatorFee, big.NewInt(int64(p.ValidatorCount)))
	return e.Add(e, p.Reward)
}

func (c *chain2) post2(p bindings.JobMarketV2JobParams) *big.Int {
	c.t.Helper()
	var value *big.Int
	if p.Token == (common.Address{}) {
		value = escrow2(p)
	}
	r := c.record("postJob", c.sponsor, value, market2.PackPostJob(p))
	for _, l := range r.Logs {
		if ev, err := market2.UnpackJobPostedEvent(l); err == nil {
			return ev.JobId
		}
	}
	c.t.Fatal("no JobPosted event")
	return nil
}

// accept2 accepts as the provider and returns the drawn validators.
func (c *chain2) accept2(id *big.Int, token common.Address, useAllowlist bool, allowlist []common.Address) []common.Address {
	c.t.Helper()
	var value *big.Int
	if token == (common.Address{}) {
		value = bond
	}
	r := c.record("acceptJob", c.provider, value, market2.PackAcceptJob(id, useAllowlist, allowlist))
	for _, l := range r.Logs {
		if ev, err := market2.UnpackJobAcceptedEvent(l); err == nil {
			return ev.Validators
		}
	}
	c.t.Fatal("no JobAccepted event")
	return nil
}

// sealed is a submitted checkpoint: its ciphertext hash and key.
type sealed struct {
	result common.Hash
	key    [32]byte
}

func newSealed(t testing.TB) sealed {
	var s sealed
	if _, err := rand.Read(s.key[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(s.result[:]); err != nil {
		t.Fatal(err)
	}
	return s
}

// keyHash is the hash submitResult commits: keccak256(K).
func keyHash(key [32]byte) common.Hash { return crypto.Keccak256Hash(key[:]) }

func (c *chain2) submit2(id *big.Int, s sealed) *types.Receipt {
	c.t.Helper()
	return c.record("submitResult", c.provider, nil, market2.PackSubmitResult(id, "bafybeisealedcheckpoint", s.result, keyHash(s.key)))
}

// commitment is keccak256(abi.encode(uint32 score, bytes32 salt, address validator, uint256 jobId)).
func commitment(score uint32, salt [32]byte, v common.Address, id *big.Int) common.Hash {
	return crypto.Keccak256Hash(common.LeftPadBytes(big.NewInt(int64(score)).Bytes(), 32), salt[:], common.LeftPadBytes(v.Bytes(), 32), common.LeftPadBytes(id.Bytes(), 32))
}

func saltOf(v common.Address) [32]byte { return crypto.Keccak256Hash(v.Bytes(), []byte("salt")) }

func (c *chain2) commit2(id *big.Int, drawn []common.Address, v common.Address, score uint32) *types.Receipt {
	c.t.Helper()
	return c.record("commit", c.byAddr[v], nil, market2.PackCommit(id, drawn, commitment(score, saltOf(v), v, id)))
}

func (c *chain2) reveal2(id *big.Int, drawn []common.Address, v common.Address, score uint32) *types.Receipt {
	c.t.Helper()
	return c.record("reveal", c.byAddr[v], nil, market2.PackReveal(id, drawn, score, saltOf(v)))
}

func (c *chain2) job2(id *big.Int) bindings.JobMarketV2Job {
	c.t.Helper()
	j, err := market2.UnpackGetJob(c.call(c.v2, market2.PackGetJob(id)))
	if err != nil {
		c.t.Fatal(err)
	}
	return j
}

func (c *chain2) credit2(token, who common.Address) *big.Int {
	c.t.Helper()
	v, err := market2.UnpackCredit(c.call(c.v2, market2.PackCredit(token, who)))
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

func (c *chain2) stakeOf(who common.Address) *big.Int {
	c.t.Helper()
	v, err := market2.UnpackValidatorOf(c.call(c.v2, market2.PackValidatorOf(who)))
	if err != nil {
		c.t.Fatal(err)
	}
	return v.Stake
}

func (c *chain2) poolSize() int64 {
	c.t.Helper()
	n, err := market2.UnpackPoolSize(c.call(c.v2, market2.PackPoolSize()))
	if err != nil {
		c.t.Fatal(err)
	}
	return n.Int64()
}

func (c *chain2) mustRevert2(name string, from account, value *big.Int, data []byte) {
	c.t.Helper()
	c.mustRevert(name, from, c.v2, value, data)
}

// events2 returns the names of the JobMarketV2 events in a receipt, in order.
func events2(r *types.Receipt) []string {
	a := market2.GetABI()
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

// sameSet reports whether a and b hold the same addresses in any order.
func sameSet(a, b []common.Address) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	cmp := func(p, q common.Address) int { return bytes.Compare(p[:], q[:]) }
	slices.SortFunc(x, cmp)
	slices.SortFunc(y, cmp)
	return slices.Equal(x, y)
}
