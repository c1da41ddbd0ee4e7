package p2p

import (
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"

	"github.com/gpunode/gpunode/node/api"
)

// Refusal reasons: the values of gpunode_p2p_offers_refused_total's reason label.
const (
	refusedRateLimited = "rate_limited" // the peer's offer bucket is empty
	refusedBusy        = "busy"         // the node-wide offer bucket is empty
	refusedGraylisted  = "graylisted"   // the peer is graylisted; its connection is refused
	refusedInvalid     = "invalid"      // the offer does not decode or check
	refusedExpired     = "expired"
	refusedCapacity    = "capacity" // more GPUs than free
	refusedPrice       = "price"    // below the ask
	refusedDeclined    = "declined" // evaluated, and the node's handler declined it

	// syncAbuse: a market-sync answer full of invalid records.
	syncAbuse = "sync_invalid"
)

var refusedReasons = []string{refusedRateLimited, refusedBusy, refusedGraylisted, refusedInvalid,
	refusedExpired, refusedCapacity, refusedPrice, refusedDeclined}

const (
	// maxTrackedPeers bounds the per-peer state; past it, peers not yet tracked share one
	// bucket, so a swarm of fresh peer IDs gets no more than a single peer.
	maxTrackedPeers = 4096
	// maxGraylisted bounds the graylist; past it the entry closest to expiry goes.
	maxGraylisted = 16384
	// strikeWindow is the period over which strikes are counted.
	strikeWindow = time.Minute
	// syncEvery and syncBurst bound the market-sync answers one peer gets: each costs up
	// to max_sync_records envelopes of egress, and a peer needs one when it joins.
	syncEvery = 10 * time.Second
	syncBurst = 3
)

// guard keeps what peers cost the node: a token bucket of offers per peer and one for
// the whole node, strikes for refused or invalid requests, and the graylist of peers
// that collected too many strikes. It is the host's connection gater, so a graylisted
// peer can neither connect nor be dialled until its entry expires.
type guard struct {
	cfg Config
	now func() time.Time

	mu       sync.Mutex
	peers    map[peer.ID]*peerState
	overflow *rate.Limiter
	total    *rate.Limiter
	gray     map[peer.ID]time.Time
	swept    time.Time

	// onGraylist is called, outside the lock, when a peer is graylisted.
	onGraylist func(id peer.ID, reason string)
	// refusedConns counts connections refused to graylisted peers.
	refusedConns func()
}

type peerState struct {
	offers      *rate.Limiter
	syncs       *rate.Limiter
	seen        time.Time
	strikes     int
	strikeStart time.Time
}

func newGuard(cfg Config, now func() time.Time) *guard {
	return &guard{
		cfg: cfg, now: now,
		peers:    map[peer.ID]*peerState{},
		overflow: rate.NewLimiter(rate.Limit(cfg.OfferRate), cfg.OfferBurst),
		total:    rate.NewLimiter(rate.Limit(cfg.OfferRateTotal), cfg.OfferBurstTotal),
		gray:     map[peer.ID]time.Time{},
	}
}

// state returns id's state, nil if the table is full of active peers. Called locked.
func (g *guard) state(id peer.ID, now time.Time) *peerState {
	if s, ok := g.peers[id]; ok {
		s.seen = now
		return s
	}
	if len(g.peers) >= maxTrackedPeers {
		if now.Sub(g.swept) < time.Second {
			return nil
		}
		// Forget peers idle long enough for their buckets to have refilled: new
		// buckets for them later are the same as the old ones. At most once a second,
		// so that a swarm of new peers does not make every request scan the table.
		g.swept = now
		idle := max(time.Duration(float64(g.cfg.OfferBurst)/g.cfg.OfferRate*float64(time.Second)), syncBurst*syncEvery) + strikeWindow
		for pid, s := range g.peers {
			if now.Sub(s.seen) > idle {
				delete(g.peers, pid)
			}
		}
		if len(g.peers) >= maxTrackedPeers {
			return nil
		}
	}
	s := &peerState{offers: rate.NewLimiter(rate.Limit(g.cfg.OfferRate), g.cfg.OfferBurst),
		syncs: rate.NewLimiter(rate.Every(syncEvery), syncBurst), seen: now}
	g.peers[id] = s
	return s
}

// allowOffer takes a token for an offer from id: the peer's, then the node's. It
// returns "" when the offer may be evaluated, else the refusal reason; a peer refused
// for its own rate earns a strike.
func (g *guard) allowOffer(id peer.ID) string {
	now := g.now()
	g.mu.Lock()
	s := g.state(id, now)
	lim := g.overflow
	if s != nil {
		lim = s.offers
	}
	if !lim.AllowN(now, 1) {
		g.mu.Unlock()
		g.strike(id, refusedRateLimited)
		return refusedRateLimited
	}
	ok := g.total.AllowN(now, 1)
	g.mu.Unlock()
	if !ok {
		return refusedBusy
	}
	return ""
}

// allowSync takes a token for a market-sync answer to id; a peer past its bucket (or
// one the table has no room for) is refused and earns a strike.
func (g *guard) allowSync(id peer.ID) bool {
	now := g.now()
	g.mu.Lock()
	s := g.state(id, now)
	ok := s != nil && s.syncs.AllowN(now, 1)
	g.mu.Unlock()
	if !ok {
		g.strike(id, refusedRateLimited)
	}
	return ok
}

// strike records one refused or invalid request from id and graylists the peer once it
// has GraylistStrikes within strikeWindow. It reports whether id is now graylisted.
func (g *guard) strike(id peer.ID, reason string) bool {
	now := g.now()
	g.mu.Lock()
	s := g.state(id, now)
	if s == nil {
		g.mu.Unlock()
		return false
	}
	if now.Sub(s.strikeStart) > strikeWindow {
		s.strikes, s.strikeStart = 0, now
	}
	s.strikes++
	if s.strikes < g.cfg.GraylistStrikes {
		g.mu.Unlock()
		return false
	}
	s.strikes = 0
	g.graylistLocked(id, now)
	g.mu.Unlock()
	if g.onGraylist != nil {
		g.onGraylist(id, reason)
	}
	return true
}

// graylist graylists id at once.
func (g *guard) graylist(id peer.ID, reason string) {
	g.mu.Lock()
	g.graylistLocked(id, g.now())
	g.mu.Unlock()
	if g.onGraylist != nil {
		g.onGraylist(id, reason)
	}
}

func (g *guard) graylistLocked(id peer.ID, now time.Time) {
	if len(g.gray) >= maxGraylisted {
		var first peer.ID
		var until time.Time
		for pid, u := range g.gray {
			if !now.Before(u) {
				delete(g.gray, pid)
				continue
			}
			if first == "" || u.Before(until) {
				first, until = pid, u
			}
		}
		if len(g.gray) >= maxGraylisted {
			delete(g.gray, first)
		}
	}
	g.gray[id] = now.Add(time.Duration(g.cfg.GraylistFor))
}

// graylisted reports whether id is graylisted now.
func (g *guard) graylisted(id peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.gray[id]
	if ok && !g.now().Before(until) {
		delete(g.gray, id)
		return false
	}
	return ok
}

// list returns the graylisted peers and until when, soonest to expire first.
func (g *guard) list() []api.P2PGraylisted {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	out := []api.P2PGraylisted{}
	for id, until := range g.gray {
		if now.Before(until) {
			out = append(out, api.P2PGraylisted{ID: id.String(), Until: until.UTC()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Until.Before(out[j].Until) })
	return out
}

// count is the number of graylisted peers.
func (g *guard) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	n := 0
	for _, until := range g.gray {
		if now.Before(until) {
			n++
		}
	}
	return n
}

// The connection gater: graylisted peers are refused once their identity is known
// (inbound) and never dialled.

func (g *guard) InterceptPeerDial(id peer.ID) bool { return !g.refuse(id) }

func (g *guard) InterceptAddrDial(id peer.ID, _ ma.Multiaddr) bool { return !g.refuse(id) }

func (g *guard) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *guard) InterceptSecured(_ network.Direction, id peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.refuse(id)
}

func (g *guard) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

func (g *guard) refuse(id peer.ID) bool {
	if !g.graylisted(id) {
		return false
	}
	if g.refusedConns != nil {
		g.refusedConns()
	}
	return true
}

// protocolLimits scopes the resource manager per protocol: the streams and memory the
// offer and market-sync protocols may use in all and per peer. An offer is one small
// request and answer and a sync one answer, so a peer needs few at a time; past the
// limits the resource manager resets the stream before its handler runs.
func protocolLimits(l *rcmgr.ScalingLimitConfig) {
	l.AddProtocolLimit(OfferProtocol,
		rcmgr.BaseLimit{Streams: 256, StreamsInbound: 128, StreamsOutbound: 128, Memory: 16 << 20},
		rcmgr.BaseLimitIncrease{})
	l.AddProtocolPeerLimit(OfferProtocol,
		rcmgr.BaseLimit{Streams: 8, StreamsInbound: 4, StreamsOutbound: 4, Memory: 1 << 20},
		rcmgr.BaseLimitIncrease{})
	l.AddProtocolLimit(SyncProtocol,
		rcmgr.BaseLimit{Streams: 32, StreamsInbound: 16, StreamsOutbound: maxConcurrentSyncs, Memory: 32 << 20},
		rcmgr.BaseLimitIncrease{})
	l.AddProtocolPeerLimit(SyncProtocol,
		rcmgr.BaseLimit{Streams: 4, StreamsInbound: 2, StreamsOutbound: 2, Memory: 4 << 20},
		rcmgr.BaseLimitIncrease{})
}

// graylisted disconnects a peer that was just graylisted; the gater refuses it from now
// on.
func (n *Network) graylisted(id peer.ID, reason string) {
	n.metrics.grayed.WithLabelValues(reason).Inc()
	n.log.Warn("peer graylisted: disconnected, its connections refused", "peer", id, "reason", reason, "for", time.Duration(n.cfg.GraylistFor))
	if n.host != nil {
		go n.host.Network().ClosePeer(id) // not from inside the peer's own stream handler
	}
}
