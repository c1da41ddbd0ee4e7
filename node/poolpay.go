package node

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/pooljobs"
	"github.com/gpunode/gpunode/node/poolpay"
	"github.com/gpunode/gpunode/node/store"
)

// A pool's payouts (node/poolpay). On the coordinator: the ledger the pool's job flow
// books each paid job's split in, the PoolPayouts contract (deployed on first start), the
// publisher that turns booked shares into epochs every pool.payout_interval, and the
// payouts protocol members ask. On a member: its coordinator's answer, refreshed, for
// status, `gpunode pool payouts` and `gpunode pool claim`.

// memberPayoutsRefresh is how often a member asks its coordinator what it is owed.
const memberPayoutsRefresh = time.Minute

// poolPayouts is the node's part in its pool's payouts.
type poolPayouts struct {
	n  *Node
	mk *market.Market
	// h is the node's p2p host, which carries the payouts protocol; nil off the network.
	h host.Host
	// ledger is the coordinator's; nil on a member.
	ledger *poolpay.Ledger
	// ready holds the publisher and view once the contract is known (coordinator).
	ready atomic.Pointer[payoutsReady]
	// coordinator is a member's coordinator; owed its last known sums.
	coordinator peer.ID
	mu          sync.Mutex
	owed        *api.PoolOwed
}

type payoutsReady struct {
	pub  *poolpay.Publisher
	view *poolpay.View
}

var errPayoutsNotReady = api.WithClass(api.ErrUnavailable, errors.New("the pool's PoolPayouts contract is not ready yet (deploying, or the chain is unreachable: see the pool_payouts check in gpunode status)"))

// openPoolPay builds the node's payouts part over its chain side, store and p2p host (nil
// off the network); nothing outside a pool.
func (n *Node) openPoolPay(mk *market.Market, st *store.Store, h host.Host) error {
	cfg := n.cfg.Pool
	switch {
	case mk == nil:
		return nil
	case cfg.Coordinator:
		if mk.Account() == (common.Address{}) {
			return errors.New("pool payouts: the coordinator needs its unlocked market key: it publishes and funds the members' payouts")
		}
		l, err := poolpay.NewLedger(st, cfg.FeeBPS, n.log)
		if err != nil {
			return err
		}
		n.poolPay = &poolPayouts{n: n, mk: mk, h: h, ledger: l}
	case cfg.CoordinatorPeer != "":
		co, err := peer.Decode(cfg.CoordinatorPeer)
		if err != nil {
			return fmt.Errorf("pool.coordinator_peer: %w", err)
		}
		n.poolPay = &poolPayouts{n: n, mk: mk, h: h, coordinator: co}
	default:
		return nil
	}
	return n.reg.Register(payoutsCollector{n.poolPay})
}

// p2pHost is the node's libp2p host; nil off the network.
func (n *Node) p2pHost() host.Host {
	if n.deps.Network == nil {
		return nil
	}
	return n.deps.Network.Host()
}

// The coordinator's ledger is its job flow's Booker.
var _ pooljobs.Booker = (*poolpay.Ledger)(nil)

// poolBooker is the ledger the coordinator's job flow books paid jobs in
// (pooljobs.Deps.Booker); nil elsewhere.
func (n *Node) poolBooker() *poolpay.Ledger {
	if n.poolPay == nil {
		return nil
	}
	return n.poolPay.ledger
}

// identity is the node's libp2p host and key, for the payouts protocol.
func (p *poolPayouts) identity() (host.Host, libp2pcrypto.PrivKey, error) {
	h := p.h
	if h == nil {
		return nil, nil, api.WithClass(api.ErrUnavailable, errors.New("pool payouts travel on the p2p network, which is off or did not start ([p2p])"))
	}
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil {
		return nil, nil, errors.New("pool payouts: the p2p host has no private key")
	}
	return h, key, nil
}

// run is the payouts' loop: the coordinator's contract, protocol and publisher, or a
// member's refreshes.
func (p *poolPayouts) run(ctx context.Context) error {
	if p.ledger == nil {
		return p.runMember(ctx)
	}
	cfg := p.n.cfg.Pool
	wait := time.Second
	var contract common.Address
	for {
		var err error
		contract, err = poolpay.Contract(ctx, p.mk, cfg.PayoutsContract, p.n.cfg.Layout().PoolPayouts(), time.Duration(cfg.ClaimWindow), p.n.log)
		p.n.setCheck("pool_payouts", err)
		if err == nil {
			break
		}
		p.n.log.Warn("pool payouts: no contract yet; trying again", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
	p.n.log.Info("pool payouts contract", "component", "poolpay", "contract", contract.Hex(), "payout_interval", time.Duration(cfg.PayoutInterval))
	pub := poolpay.NewPublisher(p.ledger, p.mk, contract, time.Duration(cfg.PayoutInterval), p.n.log)
	view := poolpay.NewView(p.ledger, pub, p.mk)
	if h, key, err := p.identity(); err == nil {
		srv, err := poolpay.Serve(h, key, view, p.member, p.n.log)
		if err != nil {
			return err
		}
		defer srv.Close()
	} else {
		p.n.log.Warn("pool payouts: members cannot ask for their payouts", "err", err)
	}
	p.ready.Store(&payoutsReady{pub: pub, view: view})
	return pub.Run(ctx)
}

// member is the payout account a peer reports in its heartbeats to this coordinator.
func (p *poolPayouts) member(id peer.ID) (common.Address, bool) {
	c := p.n.poolCoordinator
	if c == nil {
		return common.Address{}, false
	}
	for _, m := range c.Members() {
		if m.Member == id.String() && m.Account != (common.Address{}) {
			return m.Account, true
		}
	}
	return common.Address{}, false
}

func (p *poolPayouts) runMember(ctx context.Context) error {
	for {
		if _, err := p.fetch(ctx); err != nil && ctx.Err() == nil {
			p.n.log.Debug("pool payouts: ask the coordinator", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(memberPayoutsRefresh):
		}
	}
}

// fetch asks the coordinator for the member's payouts and keeps their sums for status.
func (p *poolPayouts) fetch(ctx context.Context) (poolpay.Answer, error) {
	h, key, err := p.identity()
	if err == nil {
		var a poolpay.Answer
		if a, err = poolpay.Fetch(ctx, h, key, p.coordinator); err == nil {
			v := poolpay.MemberView(a)
			p.setOwed(v.Owed)
			return a, nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owed == nil {
		p.owed = &api.PoolOwed{BookedWei: "0", PublishedWei: "0", ClaimedWei: "0"}
	}
	p.owed.Error = err.Error()
	if errors.Is(err, poolpay.ErrRefused) {
		err = api.WithClass(api.ErrFailedPrecondition, err)
	} else if !classed(err) {
		err = api.WithClass(api.ErrUnavailable, err)
	}
	return poolpay.Answer{}, err
}

func (p *poolPayouts) setOwed(o api.PoolOwed) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.owed = &o
}

// Owed is what the pool owes this member, as last known; nil on a coordinator.
func (p *poolPayouts) Owed() *api.PoolOwed {
	if p == nil || p.ledger != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owed == nil {
		return &api.PoolOwed{BookedWei: "0", PublishedWei: "0", ClaimedWei: "0", Error: "not asked the coordinator yet"}
	}
	o := *p.owed
	return &o
}

// PoolPayouts serves GET /v1/pool/payouts.
func (p *poolPayouts) PoolPayouts(ctx context.Context) (api.PoolPayouts, error) {
	if p.ledger == nil {
		a, err := p.fetch(ctx)
		if err != nil {
			return api.PoolPayouts{}, err
		}
		return poolpay.MemberView(a), nil
	}
	r := p.ready.Load()
	if r == nil {
		return api.PoolPayouts{}, errPayoutsNotReady
	}
	id := ""
	if p.h != nil {
		id = p.h.ID().String()
	}
	return r.view.Coordinator(ctx, id)
}

// PoolPublish serves POST /v1/pool/publish.
func (p *poolPayouts) PoolPublish(ctx context.Context) (api.PoolPublishResult, error) {
	if p.ledger == nil {
		return api.PoolPublishResult{}, api.WithClass(api.ErrFailedPrecondition, errors.New("only the pool's coordinator publishes payouts"))
	}
	r := p.ready.Load()
	if r == nil {
		return api.PoolPublishResult{}, errPayoutsNotReady
	}
	pub, err := r.pub.Publish(ctx)
	switch {
	case errors.Is(err, poolpay.ErrNothingToPublish), errors.Is(err, poolpay.ErrUnderfunded):
		return api.PoolPublishResult{}, api.WithClass(api.ErrFailedPrecondition, err)
	case err != nil:
		return api.PoolPublishResult{}, payoutTxError(err)
	}
	out := api.PoolPublishResult{Contract: pub.Contract.Hex(), Epoch: pub.Number, Root: pub.Root.Hex(), TotalWei: pub.Total.String(),
		Members: len(pub.Payouts), Jobs: len(pub.Jobs), TxHash: pub.TxHash, GasUsed: pub.GasUsed}
	if pub.Withdrawn != nil {
		out.WithdrawnWei = pub.Withdrawn.String()
	}
	return out, nil
}

// PoolClaim serves POST /v1/pool/claim.
func (p *poolPayouts) PoolClaim(ctx context.Context) (api.PoolClaimResult, error) {
	if p.ledger != nil {
		return api.PoolClaimResult{}, api.WithClass(api.ErrFailedPrecondition, errors.New("a coordinator has no payouts to claim: members claim theirs"))
	}
	if p.mk.Account() == (common.Address{}) {
		return api.PoolClaimResult{}, api.WithClass(api.ErrFailedPrecondition, fmt.Errorf("pool claim: %w", market.ErrWatchOnly))
	}
	a, err := p.fetch(ctx)
	if err != nil {
		return api.PoolClaimResult{}, err
	}
	res, err := poolpay.ClaimAll(ctx, p.mk, a)
	if _, ferr := p.fetch(ctx); ferr != nil {
		p.n.log.Debug("pool payouts: refresh after claiming", "err", ferr)
	}
	if err != nil {
		return res, payoutTxError(err)
	}
	return res, nil
}

// classed tells whether err carries an API class already.
func classed(err error) bool {
	var e *api.Error
	return errors.As(err, &e)
}

// payoutTxError classes a payout transaction's error for the API: a refusal by the
// contract, or a node without its key, is a failed precondition; anything else is the
// chain's endpoint failing.
func payoutTxError(err error) error {
	if classed(err) {
		return err
	}
	if errors.Is(err, market.ErrWatchOnly) || errors.As(contracts.Revert(err), new(*contracts.RevertError)) {
		return api.WithClass(api.ErrFailedPrecondition, err)
	}
	return api.WithClass(api.ErrUnavailable, err)
}

var (
	poolPayoutsDesc = prometheus.NewDesc("gpunode_pool_payouts_wei",
		"A pool coordinator's ledger, in wei: members' shares booked (not yet published) and published (in an epoch of its PoolPayouts), and the pool's fees.",
		[]string{"state"}, nil)
	poolOwedDesc = prometheus.NewDesc("gpunode_pool_owed_wei",
		"What the pool owes this member, in wei, as its coordinator last answered: booked, published (claimable), claimed.",
		[]string{"state"}, nil)
)

// payoutsCollector reads the ledger (coordinator) or the last answer (member) at scrape.
type payoutsCollector struct{ p *poolPayouts }

func (c payoutsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolPayoutsDesc
	ch <- poolOwedDesc
}

func weiFloat(v *big.Int) float64 {
	f, _ := new(big.Float).SetInt(v).Float64()
	return f
}

func (c payoutsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.p.ledger != nil {
		r := c.p.ready.Load()
		if r == nil {
			return
		}
		booked, published, fee, err := r.view.Totals()
		if err != nil {
			return
		}
		for state, v := range map[string]*big.Int{"booked": booked, "published": published, "fee": fee} {
			ch <- prometheus.MustNewConstMetric(poolPayoutsDesc, prometheus.GaugeValue, weiFloat(v), state)
		}
		return
	}
	o := c.p.Owed()
	for state, s := range map[string]string{"booked": o.BookedWei, "published": o.PublishedWei, "claimed": o.ClaimedWei} {
		if v, ok := new(big.Int).SetString(s, 10); ok {
			ch <- prometheus.MustNewConstMetric(poolOwedDesc, prometheus.GaugeValue, weiFloat(v), state)
		}
	}
}
