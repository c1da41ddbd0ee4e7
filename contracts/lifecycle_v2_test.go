package contracts_test

import (
	"math/big"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/contracts/bindings/mocks"
)

// TestV2Lifecycle runs every path of a v2 job, in ETH and in an ERC-20: who is credited
// what (in the job's token and in ETH slashes), the final state, the last events, and that
// once everyone has withdrawn the market holds only the validators' stakes (no funds stuck).
func TestV2Lifecycle(t *testing.T) {
	type path struct {
		name string
		// run drives the job from Open and returns the last receipt's events.
		run    func(c *chain2, id *big.Int, token common.Address) []string
		state  uint8
		events []string
		// credits in the job's token; slashes are ETH credits (to the provider).
		credits func(c *chain2) map[common.Address]*big.Int
		slashed int64 // validators slashed, each by slashAmount
	}
	passAll := func(c *chain2, id *big.Int, token common.Address, scores ...uint32) ([]common.Address, sealed) {
		drawn := c.accept2(id, token, false, nil)
		s := newSealed(c.t)
		c.submit2(id, s)
		for i, v := range drawn {
			c.commit2(id, drawn, v, scores[i])
		}
		return drawn, s
	}
	paths := []path{
		{
			name: "cancel",
			run: func(c *chain2, id *big.Int, _ common.Address) []string {
				c.mustRevert2("NotSponsor", c.outsider, nil, market2.PackCancelJob(id))
				return events2(c.mustSend(c.sponsor, c.v2, nil, market2.PackCancelJob(id)))
			},
			state:  v2Cancelled,
			events: []string{"JobCancelled"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{c.sponsor.addr: add(reward, mul(fee, 3))}
			},
		},
		{
			name: "complete",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				drawn, s := passAll(c, id, token, threshold, threshold+1, threshold-1)
				for i, v := range drawn {
					c.reveal2(id, drawn, v, []uint32{threshold, threshold + 1, threshold - 1}[i])
				}
				if st := c.job2(id).State; st != v2Passed {
					c.t.Fatalf("state %d after the reveals, want Passed", st)
				}
				c.mustRevert2("DeadlineNotPassed", c.sponsor, nil, market2.PackExpire(id))
				c.mustRevert2("BadState", c.sponsor, nil, market2.PackFinalize(id, drawn))
				var wrong [32]byte
				c.mustRevert2("WrongKey", c.outsider, nil, market2.PackReleaseKey(id, wrong))
				return events2(c.mustSend(c.outsider, c.v2, nil, market2.PackReleaseKey(id, s.key)))
			},
			state:  v2Completed,
			events: []string{"KeyReleased", "JobCompleted"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{
					c.provider.addr: add(reward, bond),
					c.vals[0].addr:  fee, c.vals[1].addr: fee, c.vals[2].addr: fee,
				}
			},
		},
		{
			name: "reject",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				drawn, _ := passAll(c, id, token, 0, threshold, threshold-1)
				c.reveal2(id, drawn, drawn[0], 0)
				c.reveal2(id, drawn, drawn[1], threshold)
				return events2(c.reveal2(id, drawn, drawn[2], threshold-1))
			},
			state:  v2Rejected,
			events: []string{"Revealed", "JobDecided"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{
					c.sponsor.addr: add(reward, bond), // the bond is slashed to the sponsor
					c.vals[0].addr: fee, c.vals[1].addr: fee, c.vals[2].addr: fee,
				}
			},
		},
		{
			name: "two reveals of three decide",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				drawn, s := passAll(c, id, token, threshold, threshold, threshold)
				c.warp(commitWindow + 1)
				c.reveal2(id, drawn, c.vals[0].addr, threshold)
				c.reveal2(id, drawn, c.vals[1].addr, threshold)
				c.mustRevert2("DeadlineNotPassed", c.outsider, nil, market2.PackFinalize(id, drawn))
				c.warp(revealWindow)
				ev := events2(c.mustSend(c.outsider, c.v2, nil, market2.PackFinalize(id, drawn)))
				if !slices.Equal(ev, []string{"Slashed", "JobDecided"}) {
					c.t.Fatalf("finalize events %v", ev)
				}
				return events2(c.mustSend(c.provider, c.v2, nil, market2.PackReleaseKey(id, s.key)))
			},
			state:  v2Completed,
			events: []string{"KeyReleased", "JobCompleted"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{
					c.provider.addr: add(reward, bond),
					c.sponsor.addr:  fee, // the fee the silent validator did not earn
					c.vals[0].addr:  fee, c.vals[1].addr: fee,
				}
			},
			slashed: 1,
		},
		{
			name: "no quorum",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				drawn, _ := passAll(c, id, token, threshold, threshold, threshold)
				c.warp(commitWindow + revealWindow + 1)
				c.mustRevert2("DeadlinePassed", c.byAddr[drawn[0]], nil, market2.PackReveal(id, drawn, threshold, saltOf(drawn[0])))
				return events2(c.mustSend(c.outsider, c.v2, nil, market2.PackFinalize(id, drawn)))
			},
			state:  v2NoQuorum,
			events: []string{"Slashed", "Slashed", "Slashed", "JobDecided"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{
					c.sponsor.addr:  add(reward, mul(fee, 3)),
					c.provider.addr: bond, // not the provider's fault
				}
			},
			slashed: 3,
		},
		{
			name: "key withheld",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				drawn, s := passAll(c, id, token, threshold, threshold, threshold)
				for _, v := range drawn {
					c.reveal2(id, drawn, v, threshold)
				}
				c.mustRevert2("DeadlineNotPassed", c.outsider, nil, market2.PackExpire(id))
				c.warp(revealWindow + 1)
				c.mustRevert2("DeadlinePassed", c.provider, nil, market2.PackReleaseKey(id, s.key))
				return events2(c.mustSend(c.outsider, c.v2, nil, market2.PackExpire(id)))
			},
			state:  v2Expired,
			events: []string{"JobExpired"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{
					c.sponsor.addr: add(reward, bond),
					c.vals[0].addr: fee, c.vals[1].addr: fee, c.vals[2].addr: fee,
				}
			},
		},
		{
			name: "give back early",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				c.accept2(id, token, false, nil)
				c.mustRevert2("NotProvider", c.sponsor, nil, market2.PackGiveBack(id, crypto.Keccak256Hash([]byte("log"))))
				return events2(c.mustSend(c.provider, c.v2, nil, market2.PackGiveBack(id, crypto.Keccak256Hash([]byte("log")))))
			},
			state:  v2Returned,
			events: []string{"JobReturned"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{c.sponsor.addr: add(reward, mul(fee, 3)), c.provider.addr: bond}
			},
		},
		{
			name: "give back late",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				c.accept2(id, token, false, nil)
				c.warp(runWindow/10 + 2)
				return events2(c.mustSend(c.provider, c.v2, nil, market2.PackGiveBack(id, crypto.Keccak256Hash([]byte("log")))))
			},
			state:  v2Returned,
			events: []string{"JobReturned"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{c.sponsor.addr: add(reward, mul(fee, 3), bond)}
			},
		},
		{
			name: "give back without a log",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				c.accept2(id, token, false, nil)
				return events2(c.mustSend(c.provider, c.v2, nil, market2.PackGiveBack(id, [32]byte{})))
			},
			state:  v2Returned,
			events: []string{"JobReturned"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{c.sponsor.addr: add(reward, mul(fee, 3), bond)}
			},
		},
		{
			name: "expire while open",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				c.mustRevert2("DeadlineNotPassed", c.outsider, nil, market2.PackExpire(id))
				c.warp(acceptWindow + 1)
				var value *big.Int
				if token == (common.Address{}) {
					value = bond
				}
				c.mustRevert2("DeadlinePassed", c.provider, value, market2.PackAcceptJob(id, false, nil))
				return events2(c.mustSend(c.outsider, c.v2, nil, market2.PackExpire(id)))
			},
			state:  v2Expired,
			events: []string{"JobExpired"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{c.sponsor.addr: add(reward, mul(fee, 3))}
			},
		},
		{
			name: "expire while accepted",
			run: func(c *chain2, id *big.Int, token common.Address) []string {
				c.accept2(id, token, false, nil)
				c.mustRevert2("BadState", c.sponsor, nil, market2.PackCancelJob(id))
				c.mustRevert2("DeadlineNotPassed", c.outsider, nil, market2.PackExpire(id))
				c.warp(runWindow + 1)
				s := newSealed(c.t)
				c.mustRevert2("DeadlinePassed", c.provider, nil, market2.PackSubmitResult(id, "bafylate", s.result, keyHash(s.key)))
				c.mustRevert2("DeadlinePassed", c.provider, nil, market2.PackGiveBack(id, s.result))
				return events2(c.mustSend(c.outsider, c.v2, nil, market2.PackExpire(id)))
			},
			state:  v2Expired,
			events: []string{"JobExpired"},
			credits: func(c *chain2) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{c.sponsor.addr: add(reward, mul(fee, 3), bond)}
			},
		},
	}
	for _, kind := range []string{"eth", "erc20"} {
		for _, p := range paths {
			t.Run(kind+"/"+p.name, func(t *testing.T) {
				c := newChain2(t)
				var token common.Address
				if kind == "erc20" {
					token = c.newToken(mocks.MockTokenMetaData.Bin)
					for _, a := range []account{c.sponsor, c.provider} {
						c.mustSend(a, token, nil, tokenABI.PackApprove(c.v2, new(big.Int).Mul(big.NewInt(1000), ether)))
					}
				}
				stakes := mul(minStake, int64(len(c.vals)))
				id := c.post2(c.params2(token, 3, 2))
				if got := c.balance(token, c.v2); token != (common.Address{}) && got.Cmp(add(reward, mul(fee, 3))) != 0 {
					t.Fatalf("market holds %s tokens after post", got)
				}
				if s := c.job2(id).State; s != v2Open {
					t.Fatalf("state after post %d", s)
				}
				ev := p.run(c, id, token)
				if !slices.Equal(ev, p.events) {
					t.Errorf("events %v, want %v", ev, p.events)
				}
				if s := c.job2(id).State; s != p.state {
					t.Errorf("state %d, want %d", s, p.state)
				}
				slash := mul(slashAmount, p.slashed)
				if got := c.credit2(common.Address{}, c.provider.addr); token != (common.Address{}) && got.Cmp(slash) != 0 {
					t.Errorf("provider ETH credit %s, want the slashes %s", got, slash)
				}
				want := p.credits(c)
				if token == (common.Address{}) && p.slashed != 0 {
					want[c.provider.addr] = add(want[c.provider.addr], slash)
				}
				everyone := append([]account{c.sponsor, c.provider, c.other, c.outsider}, c.vals...)
				for _, a := range everyone {
					for _, tok := range slices.Compact([]common.Address{token, {}}) {
						got := c.credit2(tok, a.addr)
						w := want[a.addr]
						if tok != token {
							w = nil
							if a.addr == c.provider.addr && p.slashed != 0 {
								w = slash
							}
						}
						if w == nil {
							w = new(big.Int)
						}
						if got.Cmp(w) != 0 {
							t.Errorf("credit of %s in %s = %s, want %s", a.addr, tok, got, w)
						}
						if got.Sign() == 0 {
							c.mustRevert2("NothingToWithdraw", a, nil, market2.PackWithdraw(tok))
							continue
						}
						before := c.balance(tok, a.addr)
						r := c.mustSend(a, c.v2, nil, market2.PackWithdraw(tok))
						gained := new(big.Int).Sub(c.balance(tok, a.addr), before)
						if tok == (common.Address{}) {
							gained.Add(gained, new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice))
						}
						if gained.Cmp(got) != 0 {
							t.Errorf("%s withdrew %s, want %s", a.addr, gained, got)
						}
					}
				}
				if got, want := c.balance(common.Address{}, c.v2), new(big.Int).Sub(stakes, slash); got.Cmp(want) != 0 {
					t.Errorf("market holds %s ETH after every withdrawal, want the remaining stakes %s", got, want)
				}
				if token != (common.Address{}) {
					if got := c.balance(token, c.v2); got.Sign() != 0 {
						t.Errorf("market still holds %s tokens: funds stuck", got)
					}
				}
			})
		}
	}
}
