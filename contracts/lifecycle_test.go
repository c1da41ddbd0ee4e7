package contracts_test

import (
	"math/big"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/bindings/mocks"
)

// Job states as numbered in JobMarket.State.
const (
	stOpen uint8 = iota + 1
	stAccepted
	stSubmitted
	stCompleted
	stRejected
	stCancelled
	stExpired
)

func add(xs ...*big.Int) *big.Int {
	s := new(big.Int)
	for _, x := range xs {
		s.Add(s, x)
	}
	return s
}

func mul(x *big.Int, n int64) *big.Int { return new(big.Int).Mul(x, big.NewInt(n)) }

// TestLifecycle runs every path of a job, in ETH and in an ERC-20: who is credited what,
// the final state, the events, and that once everyone has withdrawn the market holds
// nothing (no funds stuck).
func TestLifecycle(t *testing.T) {
	type path struct {
		name string
		// run drives the job from Open and returns the last receipt's events.
		run     func(c *chain, id *big.Int, token common.Address) []string
		state   uint8
		events  []string
		credits func(c *chain) map[common.Address]*big.Int
	}
	paths := []path{
		{
			name: "cancel",
			run: func(c *chain, id *big.Int, _ common.Address) []string {
				c.mustRevert("NotSponsor", c.outsider, c.market, nil, market.PackCancelJob(id))
				return events(c.mustSend(c.sponsor, c.market, nil, market.PackCancelJob(id)))
			},
			state:  stCancelled,
			events: []string{"JobCancelled"},
			credits: func(c *chain) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{c.sponsor.addr: add(reward, mul(fee, 3))}
			},
		},
		{
			name: "complete",
			run: func(c *chain, id *big.Int, token common.Address) []string {
				c.accept(id, token)
				c.submit(id)
				c.attest(id, 0, threshold)
				ev := events(c.attest(id, 1, threshold+1))
				c.mustRevert("BadState", c.vals[2], c.market, nil, market.PackAttest(id, c.valAddrs, resultHash, threshold))
				c.mustRevert("BadState", c.sponsor, c.market, nil, market.PackExpire(id))
				return ev
			},
			state:  stCompleted,
			events: []string{"Attested", "JobCompleted"},
			credits: func(c *chain) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{
					c.provider.addr: add(reward, bond),
					c.vals[0].addr:  fee,
					c.vals[1].addr:  fee,
					c.sponsor.addr:  fee, // the fee no validator earned
				}
			},
		},
		{
			name: "complete after a failing score",
			run: func(c *chain, id *big.Int, token common.Address) []string {
				c.accept(id, token)
				c.submit(id)
				if ev := events(c.attest(id, 0, threshold-1)); !slices.Equal(ev, []string{"Attested"}) {
					c.t.Fatalf("first attest events %v", ev)
				}
				c.attest(id, 1, threshold)
				return events(c.attest(id, 2, threshold))
			},
			state:  stCompleted,
			events: []string{"Attested", "JobCompleted"},
			credits: func(c *chain) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{
					c.provider.addr: add(reward, bond),
					c.vals[0].addr:  fee, c.vals[1].addr: fee, c.vals[2].addr: fee,
				}
			},
		},
		{
			name: "reject",
			run: func(c *chain, id *big.Int, token common.Address) []string {
				c.accept(id, token)
				c.submit(id)
				c.attest(id, 0, 0)
				return events(c.attest(id, 1, threshold-1))
			},
			state:  stRejected,
			events: []string{"Attested", "JobRejected"},
			credits: func(c *chain) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{
					c.sponsor.addr: add(reward, bond, fee), // the bond is slashed to the sponsor
					c.vals[0].addr: fee, c.vals[1].addr: fee,
				}
			},
		},
		{
			name: "expire while open",
			run: func(c *chain, id *big.Int, token common.Address) []string {
				c.mustRevert("DeadlineNotPassed", c.outsider, c.market, nil, market.PackExpire(id))
				c.warp(acceptWindow + 1)
				var value *big.Int
				if token == (common.Address{}) {
					value = bond
				}
				c.mustRevert("DeadlinePassed", c.provider, c.market, value, market.PackAcceptJob(id, c.valAddrs))
				return events(c.mustSend(c.outsider, c.market, nil, market.PackExpire(id)))
			},
			state:  stExpired,
			events: []string{"JobExpired"},
			credits: func(c *chain) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{c.sponsor.addr: add(reward, mul(fee, 3))}
			},
		},
		{
			name: "expire while accepted",
			run: func(c *chain, id *big.Int, token common.Address) []string {
				c.accept(id, token)
				c.mustRevert("BadState", c.sponsor, c.market, nil, market.PackCancelJob(id))
				c.mustRevert("DeadlineNotPassed", c.outsider, c.market, nil, market.PackExpire(id))
				c.warp(runWindow + 1)
				c.mustRevert("DeadlinePassed", c.provider, c.market, nil, market.PackSubmitResult(id, "bafylate", resultHash))
				return events(c.mustSend(c.outsider, c.market, nil, market.PackExpire(id)))
			},
			state:  stExpired,
			events: []string{"JobExpired"},
			credits: func(c *chain) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{c.sponsor.addr: add(reward, mul(fee, 3), bond)}
			},
		},
		{
			name: "expire while submitted",
			run: func(c *chain, id *big.Int, token common.Address) []string {
				c.accept(id, token)
				c.submit(id)
				c.attest(id, 0, threshold)
				c.mustRevert("DeadlineNotPassed", c.outsider, c.market, nil, market.PackExpire(id))
				c.warp(attestWindow + 1)
				c.mustRevert("DeadlinePassed", c.vals[1], c.market, nil, market.PackAttest(id, c.valAddrs, resultHash, threshold))
				ev := events(c.mustSend(c.outsider, c.market, nil, market.PackExpire(id)))
				c.mustRevert("BadState", c.outsider, c.market, nil, market.PackExpire(id))
				return ev
			},
			state:  stExpired,
			events: []string{"JobExpired"},
			credits: func(c *chain) map[common.Address]*big.Int {
				return map[common.Address]*big.Int{
					c.sponsor.addr:  add(reward, mul(fee, 2)),
					c.provider.addr: bond, // validators missed their deadline, not the provider
					c.vals[0].addr:  fee,
				}
			},
		},
	}
	for _, kind := range []string{"eth", "erc20"} {
		for _, p := range paths {
			t.Run(kind+"/"+p.name, func(t *testing.T) {
				c := newChain(t)
				var token common.Address
				if kind == "erc20" {
					token = c.newToken(mocks.MockTokenMetaData.Bin)
				}
				sponsorBefore := c.balance(token, c.sponsor.addr)
				id := c.post(c.params(token, 2))
				if kind == "erc20" {
					if got, want := new(big.Int).Sub(sponsorBefore, c.balance(token, c.sponsor.addr)), add(reward, mul(fee, 3)); got.Cmp(want) != 0 {
						t.Fatalf("sponsor paid %s, want %s", got, want)
					}
				}
				if got := c.balance(token, c.market); got.Cmp(add(reward, mul(fee, 3))) != 0 {
					t.Fatalf("market holds %s after post", got)
				}
				if s := c.job(id).State; s != stOpen {
					t.Fatalf("state after post %d", s)
				}
				ev := p.run(c, id, token)
				if !slices.Equal(ev, p.events) {
					t.Errorf("events %v, want %v", ev, p.events)
				}
				if s := c.job(id).State; s != p.state {
					t.Errorf("state %d, want %d", s, p.state)
				}
				want := p.credits(c)
				everyone := append([]account{c.sponsor, c.provider, c.other, c.outsider}, c.vals...)
				for _, a := range everyone {
					got := c.credit(token, a.addr)
					w := want[a.addr]
					if w == nil {
						w = new(big.Int)
					}
					if got.Cmp(w) != 0 {
						t.Errorf("credit of %s = %s, want %s", a.addr, got, w)
					}
					if got.Sign() == 0 {
						c.mustRevert("NothingToWithdraw", a, c.market, nil, market.PackWithdraw(token))
						continue
					}
					before := c.balance(token, a.addr)
					r := c.withdraw(a, token)
					after := c.balance(token, a.addr)
					gained := new(big.Int).Sub(after, before)
					if token == (common.Address{}) {
						gained.Add(gained, new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice))
					}
					if gained.Cmp(got) != 0 {
						t.Errorf("%s withdrew %s, want %s", a.addr, gained, got)
					}
					if c.credit(token, a.addr).Sign() != 0 {
						t.Errorf("credit of %s not zero after withdraw", a.addr)
					}
				}
				if got := c.balance(token, c.market); got.Sign() != 0 {
					t.Errorf("market still holds %s after every withdrawal: funds stuck", got)
				}
			})
		}
	}
}
