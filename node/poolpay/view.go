package poolpay

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/pool"
)

// View is the coordinator's read side of its payouts: for the API, the payouts
// protocol, and metrics.
type View struct {
	l *Ledger
	p *Publisher
	c Chain

	mu      sync.Mutex
	claimed map[claimKey]bool // claims seen on chain (a claim is final)
}

type claimKey struct {
	epoch  uint64
	member common.Address
}

// NewView reads l and the chain through c, for p's contract.
func NewView(l *Ledger, p *Publisher, c Chain) *View {
	return &View{l: l, p: p, c: c, claimed: map[claimKey]bool{}}
}

// isClaimed asks the chain whether member claimed epoch n, remembering a yes.
func (v *View) isClaimed(ctx context.Context, n uint64, member common.Address) (bool, error) {
	k := claimKey{n, member}
	v.mu.Lock()
	done := v.claimed[k]
	v.mu.Unlock()
	if done {
		return true, nil
	}
	ok, err := Claimed(ctx, v.c, v.p.contract, n, member)
	if err != nil || !ok {
		return false, err
	}
	v.mu.Lock()
	v.claimed[k] = true
	v.mu.Unlock()
	return true, nil
}

// published returns the contract's published epochs by number.
func (v *View) published() (map[uint64]EpochRecord, error) {
	epochs, err := v.l.Epochs(v.p.contract)
	if err != nil {
		return nil, err
	}
	out := map[uint64]EpochRecord{}
	for _, e := range epochs {
		if e.State == EpochPublished {
			out[e.Number] = e
		}
	}
	return out, nil
}

// paidBy is the published epoch that pays b's shares, if any.
func (v *View) paidBy(b Booking, epochs map[uint64]EpochRecord) (uint64, bool) {
	if b.Epoch == nil || b.Contract != v.p.contract.Hex() {
		return 0, false
	}
	_, ok := epochs[*b.Epoch]
	return *b.Epoch, ok
}

func workOf(b Booking, m common.Address) (gpuSeconds, score float64) {
	var weighted float64
	for _, w := range b.Works {
		if w.Member == m {
			gpuSeconds += w.GPUSeconds
			weighted += w.GPUSeconds * w.Score
		}
	}
	if gpuSeconds > 0 {
		score = weighted / gpuSeconds
	}
	return gpuSeconds, score
}

// memberPage is one page of a member's payouts for the protocol.
func (v *View) memberPage(ctx context.Context, member common.Address, fromShare int, fromEpoch uint64) (Answer, error) {
	a := Answer{Account: member, Contract: v.p.contract, FeeBPS: v.l.FeeBPS()}
	if due, err := v.p.Due(); err == nil && !due.IsZero() {
		a.NextPublish = due.Unix()
	}
	epochs, err := v.published()
	if err != nil {
		return Answer{}, err
	}
	bookings, shares, err := v.l.MemberShares(member)
	if err != nil {
		return Answer{}, err
	}
	for i := fromShare; i < len(shares) && len(a.Shares) < maxSharesPerAnswer; i++ {
		gs, score := workOf(bookings[i], member)
		ws := WireShare{JobID: bookings[i].JobID, Wei: shares[i].Wei.String(), GPUSeconds: gs, Score: score, BookedAt: bookings[i].BookedAt.Unix()}
		if n, ok := v.paidBy(bookings[i], epochs); ok {
			ws.Epoch = &n
		}
		a.Shares = append(a.Shares, ws)
	}
	a.MoreShares = fromShare+len(a.Shares) < len(shares)
	nums := make([]uint64, 0, len(epochs))
	for n := range epochs {
		if n >= fromEpoch {
			nums = append(nums, n)
		}
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	for i, n := range nums {
		p, err := epochs[n].Payout(member)
		if err != nil {
			continue // nothing for this member in epoch n
		}
		if len(a.Payouts) == maxPayoutsPerAnswer {
			a.MorePayouts, a.NextEpoch = true, nums[i]
			break
		}
		claimed, err := v.isClaimed(ctx, n, member)
		if err != nil {
			return Answer{}, err
		}
		a.Payouts = append(a.Payouts, WirePayout{Epoch: n, Wei: p.Wei.String(), Proof: p.Proof, Claimed: claimed})
	}
	return a, nil
}

// Coordinator lists every member's share of every booked job, and every published
// payout, with what the chain says was claimed.
func (v *View) Coordinator(ctx context.Context, peerID string) (api.PoolPayouts, error) {
	out := api.PoolPayouts{Role: "coordinator", Contract: v.p.contract.Hex(), Coordinator: peerID, FeeBPS: v.l.FeeBPS(),
		Shares: []api.PoolShare{}, Payouts: []api.PoolPayout{}}
	if due, err := v.p.Due(); err == nil {
		out.NextPublish = due
	}
	epochs, err := v.published()
	if err != nil {
		return out, err
	}
	jobs, err := v.l.Jobs()
	if err != nil {
		return out, err
	}
	fee, booked, published, claimed := new(big.Int), new(big.Int), new(big.Int), new(big.Int)
	var chainErr error
	for _, b := range jobs {
		fee.Add(fee, b.Split.Fee)
		n, paid := v.paidBy(b, epochs)
		for _, s := range b.Split.Shares {
			gs, score := workOf(b, s.Member)
			sh := api.PoolShare{JobID: b.JobID, Member: s.Member.Hex(), Wei: s.Wei.String(), GPUSeconds: gs, Score: score, BookedAt: b.BookedAt, State: api.ShareBooked}
			if paid {
				num := n
				sh.Epoch, sh.State = &num, api.SharePublished
				if ok, err := v.isClaimed(ctx, n, s.Member); err != nil {
					chainErr = err
				} else if ok {
					sh.State = api.ShareClaimed
				}
			}
			out.Shares = append(out.Shares, sh)
		}
	}
	nums := make([]uint64, 0, len(epochs))
	for n := range epochs {
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	for _, n := range nums {
		for _, p := range epochs[n].Payouts {
			ok, err := v.isClaimed(ctx, n, p.Member)
			if err != nil {
				chainErr = err
			}
			out.Payouts = append(out.Payouts, api.PoolPayout{Epoch: n, Member: p.Member.Hex(), Wei: p.Wei.String(), Claimed: ok})
			if ok {
				claimed.Add(claimed, p.Wei)
			} else {
				published.Add(published, p.Wei)
			}
		}
	}
	for _, s := range out.Shares {
		if s.State == api.ShareBooked {
			w, _ := new(big.Int).SetString(s.Wei, 10)
			booked.Add(booked, w)
		}
	}
	out.FeeWei = fee.String()
	out.Owed = api.PoolOwed{BookedWei: booked.String(), PublishedWei: published.String(), ClaimedWei: claimed.String(), At: time.Now().UTC()}
	if chainErr != nil {
		out.Owed.Error = chainErr.Error()
	}
	return out, nil
}

// Totals sums the ledger for metrics: booked (unpublished) and published shares, and the
// pool's fees, in wei.
func (v *View) Totals() (booked, published, fee *big.Int, err error) {
	booked, published, fee = new(big.Int), new(big.Int), new(big.Int)
	epochs, err := v.published()
	if err != nil {
		return nil, nil, nil, err
	}
	jobs, err := v.l.Jobs()
	if err != nil {
		return nil, nil, nil, err
	}
	for _, b := range jobs {
		fee.Add(fee, b.Split.Fee)
		_, paid := v.paidBy(b, epochs)
		for _, s := range b.Split.Shares {
			if paid {
				published.Add(published, s.Wei)
			} else {
				booked.Add(booked, s.Wei)
			}
		}
	}
	return booked, published, fee, nil
}

// MemberView is a member's own payouts as its coordinator answered them, for the API.
func MemberView(a Answer) api.PoolPayouts {
	out := api.PoolPayouts{Role: "member", Contract: a.Contract.Hex(), Coordinator: a.Coordinator, Account: a.Account.Hex(),
		FeeBPS: a.FeeBPS, Shares: []api.PoolShare{}, Payouts: []api.PoolPayout{}}
	if a.NextPublish > 0 {
		out.NextPublish = time.Unix(a.NextPublish, 0).UTC()
	}
	claimed := map[uint64]bool{}
	for _, p := range a.Payouts {
		claimed[p.Epoch] = p.Claimed
		proof := make([]string, len(p.Proof))
		for i, h := range p.Proof {
			proof[i] = h.Hex()
		}
		out.Payouts = append(out.Payouts, api.PoolPayout{Epoch: p.Epoch, Member: a.Account.Hex(), Wei: p.Wei, Proof: proof, Claimed: p.Claimed})
	}
	for _, s := range a.Shares {
		sh := api.PoolShare{JobID: s.JobID, Member: a.Account.Hex(), Wei: s.Wei, GPUSeconds: s.GPUSeconds, Score: s.Score,
			BookedAt: time.Unix(s.BookedAt, 0).UTC(), Epoch: s.Epoch, State: api.ShareBooked}
		if s.Epoch != nil {
			sh.State = api.SharePublished
			if claimed[*s.Epoch] {
				sh.State = api.ShareClaimed
			}
		}
		out.Shares = append(out.Shares, sh)
	}
	b, p, c := a.Owed()
	out.Owed = api.PoolOwed{BookedWei: b.String(), PublishedWei: p.String(), ClaimedWei: c.String(), At: time.Now().UTC()}
	return out
}

// ClaimAll claims, from the member's account on c, every payout of a (its coordinator's
// answer) the chain says is unclaimed. Each proof is checked against the root the chain
// holds for its epoch first, so a wrong answer costs no gas; a payout that cannot be
// claimed (a wrong proof, a claim window over) is left and reported in the error, and
// the others are claimed.
func ClaimAll(ctx context.Context, c Chain, a Answer) (api.PoolClaimResult, error) {
	self := c.Account()
	out := api.PoolClaimResult{Account: self.Hex(), Contract: a.Contract.Hex(), Claims: []api.PoolClaim{}, TotalWei: "0"}
	if self == (common.Address{}) {
		return out, fmt.Errorf("pool claim: no unlocked market key")
	}
	if a.Account != self {
		return out, fmt.Errorf("pool claim: the coordinator pays account %s, this node's is %s: report the same account (restart the node after changing keys)", a.Account, self)
	}
	total := new(big.Int)
	var skipped []error // payouts that cannot be claimed; the others are
	for _, p := range a.Payouts {
		done, err := Claimed(ctx, c, a.Contract, p.Epoch, self)
		if err != nil {
			return out, err
		}
		if done {
			continue
		}
		on, err := OnChainEpoch(ctx, c, a.Contract, p.Epoch)
		if err != nil {
			return out, err
		}
		wei, ok := new(big.Int).SetString(p.Wei, 10)
		if !ok {
			return out, fmt.Errorf("pool claim: epoch %d: amount %q", p.Epoch, p.Wei)
		}
		e := pool.Epoch{Contract: a.Contract, Number: p.Epoch, Root: on.Root}
		payout := pool.Payout{Member: self, Wei: wei, Proof: p.Proof}
		if !e.Verify(payout) {
			skipped = append(skipped, fmt.Errorf("pool claim: epoch %d: the coordinator's proof for %s wei does not match the root on chain", p.Epoch, wei))
			continue
		}
		if time.Now().After(on.Deadline) || on.Swept {
			skipped = append(skipped, fmt.Errorf("pool claim: epoch %d: the claim window ended %s", p.Epoch, on.Deadline.UTC().Format(time.RFC3339)))
			continue
		}
		r, err := c.SendTo(ctx, fmt.Sprintf("claim pool epoch %d", p.Epoch), a.Contract, nil, pool.PackClaim(e, payout))
		if err != nil {
			return out, err
		}
		total.Add(total, wei)
		out.Claims = append(out.Claims, api.PoolClaim{Epoch: p.Epoch, Wei: wei.String(), TxHash: r.TxHash.Hex(), GasUsed: r.GasUsed})
		out.TotalWei = total.String()
	}
	return out, errors.Join(skipped...)
}
