package contracts_test

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/bindings/mocks"
)

// TestV2NoFundsStuck drives jobs down randomly chosen paths (seeded, so every run takes the
// same choices; only the draw varies with the chain's prevrandao): who commits, who
// reveals, with which score, whether the provider submits, gives back or vanishes, whether
// anyone releases the key. Every party then takes every timeout exit, withdraws its
// credit, and the validators unstake and withdraw their stakes: the market must end
// holding nothing, in ETH or in the token.
func TestV2NoFundsStuck(t *testing.T) {
	for seed := range uint64(16) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 16))
			c := newChain2(t)
			// Two more validators, so that the draw picks three of five.
			for i := range 2 {
				v := c.funded()
				c.mustSend(v, c.v2, minStake, market2.PackRegisterValidator(fmt.Sprintf("12D3KooWExtra%d", i)))
				c.vals = append(c.vals, v)
			}
			var token common.Address
			if seed%2 == 1 {
				token = c.newToken(mocks.MockTokenMetaData.Bin)
				for _, a := range []account{c.sponsor, c.provider} {
					c.mustSend(a, token, nil, tokenABI.PackApprove(c.v2, new(big.Int).Mul(big.NewInt(1000), ether)))
				}
			}
			for range 2 {
				c.randomJob(rng, token)
			}
			c.settleAll(token)
		})
	}
}

// randomJob posts a job and takes it down a random path to a final state (or leaves it
// where a timeout exit remains, for settleAll).
func (c *chain2) randomJob(rng *rand.Rand, token common.Address) {
	c.t.Helper()
	p := c.params2(token, 3, uint8(1+rng.IntN(3)))
	p.LowerIsBetter = rng.IntN(2) == 0
	id := c.post2(p)
	switch rng.IntN(8) {
	case 0:
		c.mustSend(c.sponsor, c.v2, nil, market2.PackCancelJob(id))
		return
	case 1:
		return // left Open: settleAll expires it
	}
	if c.poolSize() < 3 {
		return // slashes took validators out of the draw
	}
	drawn := c.accept2(id, token, false, nil)
	switch rng.IntN(8) {
	case 0:
		c.mustSend(c.provider, c.v2, nil, market2.PackGiveBack(id, common.Hash{1}))
		return
	case 1:
		c.warp(runWindow/10 + 2)
		c.mustSend(c.provider, c.v2, nil, market2.PackGiveBack(id, common.Hash{1}))
		return
	case 2:
		return // the provider vanished: settleAll expires it
	}
	s := newSealed(c.t)
	c.submit2(id, s)
	scores := map[common.Address]uint32{}
	for _, v := range drawn {
		if rng.IntN(5) == 0 {
			continue // offline
		}
		scores[v] = threshold - 1 + uint32(rng.IntN(3))
		c.commit2(id, drawn, v, scores[v])
	}
	if len(scores) < len(drawn) || rng.IntN(2) == 0 {
		c.warp(commitWindow + 1)
	}
	for _, v := range drawn {
		score, ok := scores[v]
		if !ok || rng.IntN(5) == 0 || c.job2(id).State != v2Submitted {
			continue
		}
		c.reveal2(id, drawn, v, score)
	}
	if c.job2(id).State == v2Submitted {
		c.warp(commitWindow + revealWindow + 1)
		c.mustSend(c.outsider, c.v2, nil, market2.PackFinalize(id, drawn))
	}
	if c.job2(id).State == v2Passed && rng.IntN(3) != 0 {
		c.mustSend(c.byAddr[drawn[rng.IntN(len(drawn))]], c.v2, nil, market2.PackReleaseKey(id, s.key))
	}
}

// settleAll takes every timeout exit, withdraws every credit and every stake, and checks
// that the market holds nothing.
func (c *chain2) settleAll(token common.Address) {
	c.t.Helper()
	c.warp(acceptWindow + runWindow + commitWindow + 3*revealWindow + 10)
	n, err := market2.UnpackJobCount(c.call(c.v2, market2.PackJobCount()))
	if err != nil {
		c.t.Fatal(err)
	}
	var before []uint8
	for id := int64(1); id <= n.Int64(); id++ {
		s := c.job2(big.NewInt(id)).State
		before = append(before, s)
		switch s {
		case v2Open, v2Accepted, v2Passed:
			c.mustSend(c.outsider, c.v2, nil, market2.PackExpire(big.NewInt(id)))
		case v2Submitted:
			c.t.Fatalf("job %d still Submitted after randomJob", id)
		}
	}
	c.t.Logf("job states before the timeouts: %v", before)
	for _, v := range c.vals {
		if c.stakeOf(v.addr).Sign() != 0 {
			c.mustSend(v, c.v2, nil, market2.PackUnstake())
		}
	}
	c.warp(unbonding + 1)
	everyone := append([]account{c.sponsor, c.provider, c.other, c.outsider}, c.vals...)
	for _, a := range everyone {
		if c.stakeOf(a.addr).Sign() != 0 {
			c.mustSend(a, c.v2, nil, market2.PackWithdrawStake())
		}
		for _, tok := range []common.Address{{}, token} {
			if c.credit2(tok, a.addr).Sign() != 0 {
				c.mustSend(a, c.v2, nil, market2.PackWithdraw(tok))
			}
		}
	}
	if got := c.balance(common.Address{}, c.v2); got.Sign() != 0 {
		c.t.Errorf("market holds %s wei after everyone settled: funds stuck", got)
	}
	if token != (common.Address{}) {
		if got := c.balance(token, c.v2); got.Sign() != 0 {
			c.t.Errorf("market holds %s tokens after everyone settled: funds stuck", got)
		}
	}
}
