package contracts_test

import (
	"bytes"
	"context"
	"math/big"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/bindings/mocks"
)

// submittedV2 posts an ETH job with three validators and the given quorum, accepts it
// (the pool is exactly c.vals, so all three are drawn) and submits a sealed result.
func (c *chain2) submittedV2(quorum uint8) (*big.Int, []common.Address, sealed) {
	c.t.Helper()
	id := c.post2(c.params2(common.Address{}, 3, quorum))
	drawn := c.accept2(id, common.Address{}, false, nil)
	if !sameSet(drawn, c.valAddrs) {
		c.t.Fatalf("drawn %v, want the whole pool %v", drawn, c.valAddrs)
	}
	s := newSealed(c.t)
	c.submit2(id, s)
	return id, drawn, s
}

// TestV2CopiedRevealEarnsNothing: a validator that copies another's commitment, or
// reveals another's score and salt, or reveals without having committed, earns nothing and
// is slashed; the honest validator is paid.
func TestV2CopiedRevealEarnsNothing(t *testing.T) {
	c := newChain2(t)
	defer c.printGas(t)
	id, drawn, _ := c.submittedV2(1)
	honest, copier, silent := c.vals[0], c.vals[1], c.vals[2]
	r := c.commit2(id, drawn, honest.addr, threshold)
	ev, err := market2.UnpackCommittedEvent(r.Logs[0])
	if err != nil {
		t.Fatal(err)
	}
	// The copier commits the honest validator's commitment, seen in the event or mempool.
	c.record("commit (copied)", copier, nil, market2.PackCommit(id, drawn, ev.Commitment))
	c.mustRevert2("RevealTooEarly", honest, nil, market2.PackReveal(id, drawn, threshold, saltOf(honest.addr)))
	c.warp(commitWindow + 1)
	c.mustRevert2("DeadlinePassed", silent, nil, market2.PackCommit(id, drawn, commitment(threshold, saltOf(silent.addr), silent.addr, id)))

	c.reveal2(id, drawn, honest.addr, threshold)
	// Now the honest score and salt are public: copying them does not open the copier's
	// commitment (it names the honest validator), nor does revealing without a commitment.
	c.mustRevert2("WrongReveal", copier, nil, market2.PackReveal(id, drawn, threshold, saltOf(honest.addr)))
	c.mustRevert2("NotCommitted", silent, nil, market2.PackReveal(id, drawn, threshold, saltOf(honest.addr)))
	c.mustRevert2("NotValidator", c.outsider, nil, market2.PackReveal(id, drawn, threshold, saltOf(honest.addr)))
	c.mustRevert2("AlreadyRevealed", honest, nil, market2.PackReveal(id, drawn, threshold, saltOf(honest.addr)))

	c.warp(revealWindow)
	r = c.record("finalize", c.outsider, nil, market2.PackFinalize(id, drawn))
	if ev := events2(r); !slices.Equal(ev, []string{"Slashed", "Slashed", "JobDecided"}) {
		t.Fatalf("finalize events %v", ev)
	}
	if got := c.credit2(common.Address{}, honest.addr); got.Cmp(fee) != 0 {
		t.Errorf("honest validator credit %s, want the fee %s", got, fee)
	}
	for _, v := range []account{copier, silent} {
		if got := c.credit2(common.Address{}, v.addr); got.Sign() != 0 {
			t.Errorf("%s earned %s", v.addr, got)
		}
		if got, want := c.stakeOf(v.addr), new(big.Int).Sub(minStake, slashAmount); got.Cmp(want) != 0 {
			t.Errorf("stake of %s = %s, want %s after the slash", v.addr, got, want)
		}
	}
	if got, want := c.credit2(common.Address{}, c.provider.addr), mul(slashAmount, 2); got.Cmp(want) != 0 {
		t.Errorf("provider credit %s, want the two slashes %s", got, want)
	}
	if j := c.job2(id); j.State != v2Passed || j.Passes != 1 || j.Fails != 0 {
		t.Errorf("job %+v, want Passed on the one honest reveal", j)
	}
}

// TestV2SponsorNoShowValidators: validators the sponsor controls cannot be drawn unless
// they are staked and the provider opts into the sponsor's allowlist; when they are drawn
// and do not show up they are slashed, the provider is compensated, and the sponsor is
// refunded without ever getting the key.
func TestV2SponsorNoShowValidators(t *testing.T) {
	t.Run("not drawable", func(t *testing.T) {
		c := newChain2(t)
		defer c.printGas(t)
		sybils := []account{c.funded(), c.funded(), c.funded()}
		var list []common.Address
		for _, s := range sybils {
			list = append(list, s.addr)
		}
		p := c.params2(common.Address{}, 3, 3)
		p.Allowlist = list
		id := c.post2(p)
		// Unstaked allowlisted addresses cannot be drawn, even with the provider's consent.
		c.mustRevert2("NotEnoughValidators", c.provider, bond, market2.PackAcceptJob(id, true, list))
		c.mustSend(sybils[0], c.v2, minStake, market2.PackRegisterValidator("12D3KooWSybil"))
		c.mustRevert2("NotEnoughValidators", c.provider, bond, market2.PackAcceptJob(id, true, list))
		c.mustRevert2("WrongCommitment", c.provider, bond, market2.PackAcceptJob(id, true, c.valAddrs))
		c.mustRevert2("BadParams", c.provider, bond, market2.PackAcceptJob(id, false, list))
		// Neither the sponsor nor the provider is ever drawn, staked or not.
		c.mustSend(c.sponsor, c.v2, minStake, market2.PackRegisterValidator("12D3KooWSponsor"))
		c.mustSend(c.provider, c.v2, minStake, market2.PackRegisterValidator("12D3KooWProviderV"))
		if n := c.poolSize(); n != 6 {
			t.Fatalf("pool size %d, want 6", n)
		}
		c.mustSend(sybils[0], c.v2, nil, market2.PackUnstake())
		drawn := c.accept2(id, common.Address{}, false, nil)
		if !sameSet(drawn, c.valAddrs) {
			t.Fatalf("drawn %v, want the three independent validators %v", drawn, c.valAddrs)
		}
	})
	t.Run("slashed and the provider compensated", func(t *testing.T) {
		c := newChain2(t)
		defer c.printGas(t)
		var list []common.Address
		for i := range 3 {
			s := c.funded()
			c.mustSend(s, c.v2, minStake, market2.PackRegisterValidator("12D3KooWSybil"+string(rune('a'+i))))
			list = append(list, s.addr)
		}
		p := c.params2(common.Address{}, 3, 2)
		p.Allowlist = list
		id := c.post2(p)
		drawn := c.accept2(id, common.Address{}, true, list)
		if !sameSet(drawn, list) {
			t.Fatalf("drawn %v, want the allowlist %v", drawn, list)
		}
		s := newSealed(t)
		c.submit2(id, s)
		c.warp(commitWindow + revealWindow + 1)
		r := c.record("finalize (no-shows)", c.outsider, nil, market2.PackFinalize(id, drawn))
		if ev := events2(r); !slices.Equal(ev, []string{"Slashed", "Slashed", "Slashed", "JobDecided"}) {
			t.Fatalf("finalize events %v", ev)
		}
		if j := c.job2(id); j.State != v2NoQuorum {
			t.Fatalf("state %d, want NoQuorum", j.State)
		}
		for _, v := range drawn {
			if got, want := c.stakeOf(v), new(big.Int).Sub(minStake, slashAmount); got.Cmp(want) != 0 {
				t.Errorf("stake of %s = %s, want %s", v, got, want)
			}
		}
		if n := c.poolSize(); n != 3 {
			t.Errorf("pool size %d: the slashed validators, now under the minimum, must leave the draw", n)
		}
		if got, want := c.credit2(common.Address{}, c.provider.addr), add(bond, mul(slashAmount, 3)); got.Cmp(want) != 0 {
			t.Errorf("provider credit %s, want bond + three slashes %s", got, want)
		}
		if got, want := c.credit2(common.Address{}, c.sponsor.addr), add(reward, mul(fee, 3)); got.Cmp(want) != 0 {
			t.Errorf("sponsor credit %s, want %s", got, want)
		}
		c.mustRevert2("BadState", c.provider, nil, market2.PackReleaseKey(id, s.key))
		c.mustRevert2("BadState", c.sponsor, nil, market2.PackExpire(id))
		if at := c.findBytes(s.key[:]); at != "" {
			t.Errorf("the key is on chain (%s) though the job was never paid", at)
		}
	})
}

// findBytes scans every transaction's input and every log of the chain for b and says
// where it first appears ("" if nowhere).
func (c *chain2) findBytes(b []byte) string {
	c.t.Helper()
	ctx := context.Background()
	head, err := c.client.BlockNumber(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	for n := uint64(0); n <= head; n++ {
		blk, err := c.client.BlockByNumber(ctx, new(big.Int).SetUint64(n))
		if err != nil {
			c.t.Fatal(err)
		}
		for _, tx := range blk.Transactions() {
			if bytes.Contains(tx.Data(), b) {
				return "input of " + tx.Hash().Hex()
			}
			r, err := c.client.TransactionReceipt(ctx, tx.Hash())
			if err != nil {
				c.t.Fatal(err)
			}
			for _, l := range r.Logs {
				if bytes.Contains(l.Data, b) || slices.ContainsFunc(l.Topics, func(h common.Hash) bool { return bytes.Equal(h[:], b) }) {
					return "log of " + tx.Hash().Hex()
				}
			}
		}
	}
	return ""
}

// TestV2SponsorCannotReadBeforePayment: the key is nowhere on chain until the call that
// pays the provider, which only a Passed job takes and only with the committed key; a
// drawn validator can release it when the provider does not, and the provider is paid.
func TestV2SponsorCannotReadBeforePayment(t *testing.T) {
	c := newChain2(t)
	defer c.printGas(t)
	id, drawn, s := c.submittedV2(3)
	c.mustRevert2("BadState", c.provider, nil, market2.PackReleaseKey(id, s.key))
	for _, v := range drawn {
		c.commit2(id, drawn, v, threshold)
	}
	for _, v := range drawn {
		c.reveal2(id, drawn, v, threshold)
	}
	if j := c.job2(id); j.State != v2Passed || j.KeyHash != keyHash(s.key) {
		t.Fatalf("job %+v, want Passed with the key hash", j)
	}
	if at := c.findBytes(s.key[:]); at != "" {
		t.Fatalf("the key is on chain before payment: %s", at)
	}
	if got := c.credit2(common.Address{}, c.provider.addr); got.Sign() != 0 {
		t.Fatalf("provider credited %s before releasing the key", got)
	}
	wrong := s.key
	wrong[0] ^= 1
	c.mustRevert2("WrongKey", c.sponsor, nil, market2.PackReleaseKey(id, wrong))
	// The provider went quiet: a drawn validator, who got K over libp2p, releases it.
	r := c.record("releaseKey (by a validator)", c.vals[0], nil, market2.PackReleaseKey(id, s.key))
	if ev := events2(r); !slices.Equal(ev, []string{"KeyReleased", "JobCompleted"}) {
		t.Fatalf("events %v", ev)
	}
	kr, err := market2.UnpackKeyReleasedEvent(r.Logs[0])
	if err != nil || kr.Key != s.key || kr.By != c.vals[0].addr {
		t.Fatalf("KeyReleased %+v %v", kr, err)
	}
	if got := c.credit2(common.Address{}, c.provider.addr); got.Cmp(add(reward, bond)) != 0 {
		t.Errorf("provider credit %s after the key release, want reward + bond", got)
	}
	if got := c.credit2(common.Address{}, c.vals[0].addr); got.Cmp(fee) != 0 {
		t.Errorf("releasing validator credit %s, want only its fee %s", got, fee)
	}
	c.mustRevert2("BadState", c.provider, nil, market2.PackReleaseKey(id, s.key))

	t.Run("rejected", func(t *testing.T) {
		id, drawn, s := c.submittedV2(2)
		for _, v := range drawn {
			c.commit2(id, drawn, v, 0)
		}
		for _, v := range drawn {
			c.reveal2(id, drawn, v, 0)
		}
		if j := c.job2(id); j.State != v2Rejected {
			t.Fatalf("state %d, want Rejected", j.State)
		}
		c.mustRevert2("BadState", c.provider, nil, market2.PackReleaseKey(id, s.key))
		if at := c.findBytes(s.key[:]); at != "" {
			t.Fatalf("the key of a rejected job is on chain: %s", at)
		}
	})
}

// TestV2SealedCheckpointBinding: another job's sealed checkpoint cannot be submitted
// again, and another job's key does not open this job's payment.
func TestV2SealedCheckpointBinding(t *testing.T) {
	c := newChain2(t)
	defer c.printGas(t)
	idA, drawnA, sA := c.submittedV2(3)

	idB := c.post2(c.params2(common.Address{}, 3, 3))
	r := c.mustSend(c.other, c.v2, bond, market2.PackAcceptJob(idB, false, nil))
	acc, err := market2.UnpackJobAcceptedEvent(r.Logs[0])
	if err != nil {
		t.Fatal(err)
	}
	drawnB := acc.Validators
	c.mustRevert("ResultReused", c.other, c.v2, nil, market2.PackSubmitResult(idB, "bafycopied", sA.result, keyHash(sA.key)))
	sB := newSealed(t)
	c.mustSend(c.other, c.v2, nil, market2.PackSubmitResult(idB, "bafyownb", sB.result, keyHash(sB.key)))
	used, err := market2.UnpackResultUsed(c.call(c.v2, market2.PackResultUsed(sA.result)))
	if err != nil || !used {
		t.Fatalf("resultUsed(A) = %v %v", used, err)
	}

	for _, job := range []struct {
		id    *big.Int
		drawn []common.Address
	}{{idA, drawnA}, {idB, drawnB}} {
		for _, v := range job.drawn {
			c.commit2(job.id, job.drawn, v, threshold)
		}
		for _, v := range job.drawn {
			c.reveal2(job.id, job.drawn, v, threshold)
		}
	}
	// A's key, public once A is paid, does not release B.
	c.mustSend(c.provider, c.v2, nil, market2.PackReleaseKey(idA, sA.key))
	c.mustRevert("WrongKey", c.other, c.v2, nil, market2.PackReleaseKey(idB, sA.key))
	c.mustSend(c.other, c.v2, nil, market2.PackReleaseKey(idB, sB.key))
	if j := c.job2(idB); j.State != v2Completed {
		t.Fatalf("job B state %d", j.State)
	}
}

// TestV2DoubleCommitRefused: one commitment per drawn validator per job, never replaced;
// only drawn validators commit, against the drawn list, before the deadline.
func TestV2DoubleCommitRefused(t *testing.T) {
	c := newChain2(t)
	defer c.printGas(t)
	id, drawn, _ := c.submittedV2(2)
	v := c.vals[0]
	c.commit2(id, drawn, v.addr, threshold)
	first := commitment(threshold, saltOf(v.addr), v.addr, id)
	c.mustRevert2("AlreadyCommitted", v, nil, market2.PackCommit(id, drawn, first))
	other := commitment(0, saltOf(v.addr), v.addr, id)
	c.mustRevert2("AlreadyCommitted", v, nil, market2.PackCommit(id, drawn, other))
	got, err := market2.UnpackCommitments(c.call(c.v2, market2.PackCommitments(id, v.addr)))
	if err != nil || common.Hash(got) != first {
		t.Fatalf("stored commitment %x %v, want the first %x", got, err, first)
	}
	c.mustRevert2("NotValidator", c.outsider, nil, market2.PackCommit(id, drawn, other))
	c.mustRevert2("NotValidator", c.provider, nil, market2.PackCommit(id, drawn, other))
	forged := append([]common.Address{c.outsider.addr}, drawn[1:]...)
	c.mustRevert2("WrongCommitment", c.outsider, nil, market2.PackCommit(id, forged, other))
	c.mustRevert2("BadParams", c.vals[1], nil, market2.PackCommit(id, drawn, [32]byte{}))
	if j := c.job2(id); j.Committed == 0 || j.Committed&(j.Committed-1) != 0 {
		t.Errorf("committed mask %b, want one bit", j.Committed)
	}
	c.warp(commitWindow + 1)
	c.mustRevert2("DeadlinePassed", c.vals[1], nil, market2.PackCommit(id, drawn, commitment(1, saltOf(c.vals[1].addr), c.vals[1].addr, id)))
	// The original reveal opens; the equivocating one does not.
	c.mustRevert2("WrongReveal", v, nil, market2.PackReveal(id, drawn, 0, saltOf(v.addr)))
	c.reveal2(id, drawn, v.addr, threshold)
}

// TestV2LateRevealEarnsNothing: a reveal after the reveal deadline reverts; the validator
// earns no fee and is slashed when the job is finalized. A reveal before the commit phase
// is over reverts too.
func TestV2LateRevealEarnsNothing(t *testing.T) {
	c := newChain2(t)
	defer c.printGas(t)
	id, drawn, _ := c.submittedV2(2)
	c.commit2(id, drawn, c.vals[0].addr, threshold)
	c.commit2(id, drawn, c.vals[1].addr, threshold)
	c.mustRevert2("RevealTooEarly", c.vals[0], nil, market2.PackReveal(id, drawn, threshold, saltOf(c.vals[0].addr)))
	c.warp(commitWindow + 1)
	c.reveal2(id, drawn, c.vals[0].addr, threshold)
	c.warp(revealWindow)
	c.mustRevert2("DeadlinePassed", c.vals[1], nil, market2.PackReveal(id, drawn, threshold, saltOf(c.vals[1].addr)))
	c.record("finalize", c.outsider, nil, market2.PackFinalize(id, drawn))
	if got := c.credit2(common.Address{}, c.vals[1].addr); got.Sign() != 0 {
		t.Errorf("late validator earned %s", got)
	}
	for _, v := range c.vals[1:] {
		if got, want := c.stakeOf(v.addr), new(big.Int).Sub(minStake, slashAmount); got.Cmp(want) != 0 {
			t.Errorf("stake of %s = %s, want %s", v.addr, got, want)
		}
	}
	if got := c.stakeOf(c.vals[0].addr); got.Cmp(minStake) != 0 {
		t.Errorf("the validator that revealed lost stake: %s", got)
	}
	if j := c.job2(id); j.State != v2NoQuorum {
		t.Errorf("state %d, want NoQuorum (one reveal of a quorum of two)", j.State)
	}
}

// TestV2ValidatorRegistry: staking, the minimum, unstaking out of the draw, and an
// unbonding period that outlasts every job the validator was drawn for, so a slash
// cannot be escaped.
func TestV2ValidatorRegistry(t *testing.T) {
	c := newChain2(t)
	defer c.printGas(t)
	if n := c.poolSize(); n != 3 {
		t.Fatalf("pool size %d", n)
	}
	c.mustRevert2("BadParams", c.outsider, new(big.Int).Sub(minStake, big.NewInt(1)), market2.PackRegisterValidator("12D3KooWOutsider"))
	c.mustRevert2("BadParams", c.outsider, minStake, market2.PackRegisterValidator(""))
	c.mustRevert2("WrongValue", c.vals[0], nil, market2.PackStake())
	r := c.record("registerValidator", c.outsider, minStake, market2.PackRegisterValidator("12D3KooWOutsider"))
	if ev, err := market2.UnpackValidatorRegisteredEvent(r.Logs[0]); err != nil || ev.PeerId != "12D3KooWOutsider" || ev.Stake.Cmp(minStake) != 0 {
		t.Fatalf("event %+v %v", ev, err)
	}
	c.record("stake", c.outsider, ether, market2.PackStake())
	if got := c.stakeOf(c.outsider.addr); got.Cmp(mul(ether, 2)) != 0 {
		t.Fatalf("stake %s", got)
	}
	c.record("unstake", c.outsider, nil, market2.PackUnstake())
	c.mustRevert2("BadState", c.outsider, nil, market2.PackUnstake())
	c.mustRevert2("StakeLocked", c.outsider, nil, market2.PackWithdrawStake())
	if n := c.poolSize(); n != 3 {
		t.Fatalf("pool size %d after unstake, want 3", n)
	}

	// vals[0] is drawn, unstakes at once and never reveals: it is still slashed.
	id, drawn, _ := c.submittedV2(2)
	c.mustSend(c.vals[0], c.v2, nil, market2.PackUnstake())
	for _, v := range drawn {
		if v != c.vals[0].addr {
			c.commit2(id, drawn, v, threshold)
		}
	}
	c.warp(commitWindow + 1)
	for _, v := range drawn {
		if v != c.vals[0].addr {
			c.reveal2(id, drawn, v, threshold)
		}
	}
	// The last reveal decided the job and slashed the silent validator.
	c.warp(revealWindow)
	c.mustRevert2("StakeLocked", c.vals[0], nil, market2.PackWithdrawStake())
	c.mustRevert2("BadState", c.outsider, nil, market2.PackFinalize(id, drawn))
	left := new(big.Int).Sub(minStake, slashAmount)
	if got := c.stakeOf(c.vals[0].addr); got.Cmp(left) != 0 {
		t.Fatalf("stake after the slash %s, want %s", got, left)
	}
	c.warp(unbonding)
	c.record("withdrawStake", c.vals[0], nil, market2.PackWithdrawStake())
	c.record("withdrawStake", c.outsider, nil, market2.PackWithdrawStake())
	if got := c.credit2(common.Address{}, c.vals[0].addr); got.Cmp(left) != 0 {
		t.Errorf("credit after withdrawStake %s, want %s", got, left)
	}
	c.mustRevert2("BadState", c.vals[0], nil, market2.PackWithdrawStake())
	before := c.balance(common.Address{}, c.outsider.addr)
	r = c.mustSend(c.outsider, c.v2, nil, market2.PackWithdraw(common.Address{}))
	gained := new(big.Int).Sub(c.balance(common.Address{}, c.outsider.addr), before)
	gained.Add(gained, new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice))
	if gained.Cmp(mul(ether, 2)) != 0 {
		t.Errorf("outsider got %s back, want its 2 ETH stake", gained)
	}

	// Registering again while unbonding bonds again and rejoins the draw.
	c.mustSend(c.vals[1], c.v2, nil, market2.PackUnstake())
	c.mustSend(c.vals[1], c.v2, nil, market2.PackRegisterValidator("12D3KooWValidator1"))
	v, err := market2.UnpackValidatorOf(c.call(c.v2, market2.PackValidatorOf(c.vals[1].addr)))
	if err != nil || v.UnbondAt.Sign() != 0 || v.PoolIndex == 0 {
		t.Fatalf("after re-registering: %+v %v", v, err)
	}
}

// TestV2LowerIsBetter: with lowerIsBetter a score passes at or under the threshold.
func TestV2LowerIsBetter(t *testing.T) {
	c := newChain2(t)
	defer c.printGas(t)
	p := c.params2(common.Address{}, 3, 3)
	p.LowerIsBetter = true
	id := c.post2(p)
	drawn := c.accept2(id, common.Address{}, false, nil)
	c.submit2(id, newSealed(t))
	scores := map[common.Address]uint32{c.vals[0].addr: threshold - 1, c.vals[1].addr: threshold, c.vals[2].addr: threshold + 1}
	for _, v := range drawn {
		c.commit2(id, drawn, v, scores[v])
	}
	for _, v := range drawn {
		r := c.reveal2(id, drawn, v, scores[v])
		ev, err := market2.UnpackRevealedEvent(r.Logs[0])
		if err != nil {
			t.Fatal(err)
		}
		if want := scores[v] <= threshold; ev.Pass != want {
			t.Errorf("score %d: pass %v, want %v", scores[v], ev.Pass, want)
		}
	}
	if j := c.job2(id); j.State != v2Passed || j.Passes != 2 || j.Fails != 1 {
		t.Errorf("job state %d passes %d fails %d, want Passed 2/1", j.State, j.Passes, j.Fails)
	}
}

func TestV2ReentrantWithdraw(t *testing.T) {
	c := newChain2(t)
	c.post2(c.params2(common.Address{}, 3, 2)) // someone else's escrow to steal
	attacker := mocks.NewReentrantAttacker()
	att := c.deploy(c.outsider, append(common.FromHex(mocks.ReentrantAttackerMetaData.Bin), attacker.PackConstructor(c.v2)...))
	p := c.params2(common.Address{}, 3, 2)
	c.mustSend(c.outsider, att, escrow2(p), attacker.PackPostAndCancel(market2.PackPostJob(p)))
	if got := c.credit2(common.Address{}, att); got.Cmp(escrow2(p)) != 0 {
		t.Fatalf("attacker credit %s, want %s", got, escrow2(p))
	}
	before := c.balance(common.Address{}, c.v2)
	c.mustSend(c.outsider, att, nil, attacker.PackAttack())
	get := func(data []byte, unpack func([]byte) (*big.Int, error)) *big.Int {
		v, err := unpack(c.call(att, data))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if n := get(attacker.PackReentries(), attacker.UnpackReentries); n.Sign() == 0 {
		t.Fatal("attacker never re-entered: the test does not exercise the guard")
	}
	if n := get(attacker.PackReentrySuccesses(), attacker.UnpackReentrySuccesses); n.Sign() != 0 {
		t.Errorf("%s reentrant withdrawals succeeded", n)
	}
	if got := get(attacker.PackReceived(), attacker.UnpackReceived); got.Cmp(escrow2(p)) != 0 {
		t.Errorf("attacker received %s, want exactly its credit %s", got, escrow2(p))
	}
	if got, want := c.balance(common.Address{}, c.v2), new(big.Int).Sub(before, escrow2(p)); got.Cmp(want) != 0 {
		t.Errorf("market holds %s, want %s", got, want)
	}
	c.mustRevert("NothingToWithdraw", c.outsider, att, nil, attacker.PackAttack())
}

func TestV2UnauthorizedCallers(t *testing.T) {
	c := newChain2(t)
	id := c.post2(c.params2(common.Address{}, 3, 2))
	c.mustRevert2("NotRegistered", c.outsider, bond, market2.PackAcceptJob(id, false, nil))
	c.mustRevert2("WrongValue", c.provider, new(big.Int).Sub(bond, big.NewInt(1)), market2.PackAcceptJob(id, false, nil))
	c.mustRevert2("WrongCommitment", c.provider, bond, market2.PackAcceptJob(id, true, nil))
	c.mustSend(c.sponsor, c.v2, nil, market2.PackRegisterProvider("12D3KooWSponsor", "bafys", resultHash))
	c.mustRevert2("BadParams", c.sponsor, bond, market2.PackAcceptJob(id, false, nil))
	c.mustRevert2("BadState", c.vals[0], nil, market2.PackCommit(id, c.valAddrs, resultHash))
	drawn := c.accept2(id, common.Address{}, false, nil)
	c.mustRevert2("BadState", c.other, bond, market2.PackAcceptJob(id, false, nil))
	s := newSealed(t)
	c.mustRevert2("NotProvider", c.other, nil, market2.PackSubmitResult(id, "bafyx", s.result, keyHash(s.key)))
	c.mustRevert2("NotProvider", c.sponsor, nil, market2.PackSubmitResult(id, "bafyx", s.result, keyHash(s.key)))
	c.mustRevert2("BadParams", c.provider, nil, market2.PackSubmitResult(id, "bafyx", s.result, [32]byte{}))
	c.mustRevert2("NotProvider", c.other, nil, market2.PackGiveBack(id, resultHash))
	c.mustRevert2("BadState", c.vals[0], nil, market2.PackCommit(id, drawn, resultHash))
	c.mustRevert2("BadState", c.outsider, nil, market2.PackFinalize(id, drawn))
	c.submit2(id, s)
	c.mustRevert2("BadState", c.provider, nil, market2.PackGiveBack(id, resultHash))
	c.mustRevert2("WrongCommitment", c.outsider, nil, market2.PackFinalize(id, c.valAddrs[:2]))
	c.mustRevert2("DeadlineNotPassed", c.outsider, nil, market2.PackFinalize(id, drawn))
	c.mustRevert2("BadState", c.outsider, nil, market2.PackExpire(id))
}

func TestV2TokenQuirks(t *testing.T) {
	c := newChain2(t)
	t.Run("returns false", func(t *testing.T) {
		tok := c.newToken(mocks.FalseTokenMetaData.Bin)
		c.mustRevert2("SafeERC20FailedOperation", c.sponsor, nil, market2.PackPostJob(c.params2(tok, 3, 2)))
	})
	t.Run("takes a fee", func(t *testing.T) {
		tok := c.newToken(mocks.FeeTokenMetaData.Bin)
		c.mustSend(c.sponsor, tok, nil, tokenABI.PackApprove(c.v2, new(big.Int).Mul(big.NewInt(1000), ether)))
		c.mustRevert2("TokenAmountMismatch", c.sponsor, nil, market2.PackPostJob(c.params2(tok, 3, 2)))
	})
	t.Run("ETH sent to a token job", func(t *testing.T) {
		tok := c.newToken(mocks.MockTokenMetaData.Bin)
		c.mustSend(c.sponsor, tok, nil, tokenABI.PackApprove(c.v2, new(big.Int).Mul(big.NewInt(1000), ether)))
		c.mustRevert2("WrongValue", c.sponsor, big.NewInt(1), market2.PackPostJob(c.params2(tok, 3, 2)))
	})
}

func TestV2BadParams(t *testing.T) {
	c := newChain2(t)
	long := make([]common.Address, 65)
	for i := range long {
		long[i] = common.BigToAddress(big.NewInt(int64(i + 1)))
	}
	for name, mod := range map[string]func(p *bindings.JobMarketV2JobParams){
		"no validators":         func(p *bindings.JobMarketV2JobParams) { p.ValidatorCount = 0 },
		"too many validators":   func(p *bindings.JobMarketV2JobParams) { p.ValidatorCount = 17; p.Quorum = 1 },
		"quorum zero":           func(p *bindings.JobMarketV2JobParams) { p.Quorum = 0 },
		"quorum too big":        func(p *bindings.JobMarketV2JobParams) { p.Quorum = 4 },
		"accept in the past":    func(p *bindings.JobMarketV2JobParams) { p.AcceptBy = big.NewInt(1) },
		"zero reward":           func(p *bindings.JobMarketV2JobParams) { p.Reward = new(big.Int) },
		"empty manifest":        func(p *bindings.JobMarketV2JobParams) { p.ManifestCID = "" },
		"no commit window":      func(p *bindings.JobMarketV2JobParams) { p.CommitWindow = new(big.Int) },
		"windows over unbond/2": func(p *bindings.JobMarketV2JobParams) { p.RunWindow = uint32(unbonding.Seconds() / 2) },
		"allowlist under k":     func(p *bindings.JobMarketV2JobParams) { p.Allowlist = c.valAddrs[:2] },
		"allowlist too long":    func(p *bindings.JobMarketV2JobParams) { p.Allowlist = long },
	} {
		t.Run(name, func(t *testing.T) {
			p := c.params2(common.Address{}, 3, 2)
			mod(&p)
			c.mustRevert2("BadParams", c.sponsor, escrow2(p), market2.PackPostJob(p))
		})
	}
	// The registry's own terms.
	for _, args := range [][3]*big.Int{
		{new(big.Int), slashAmount, big.NewInt(1)},
		{minStake, new(big.Int), big.NewInt(1)},
		{minStake, add(minStake, big.NewInt(1)), big.NewInt(1)},
		{minStake, slashAmount, new(big.Int)},
	} {
		code := append(common.FromHex(bindings.JobMarketV2MetaData.Bin), market2.PackConstructor(args[0], args[1], uint32(args[2].Uint64()))...)
		if _, err := c.client.EstimateGas(t.Context(), ethereum.CallMsg{From: c.deployer.addr, Data: code}); err == nil {
			t.Errorf("deploy with %v succeeded", args)
		}
	}
}
