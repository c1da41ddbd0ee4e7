package challenge

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// GuardConfig is a rig's admission policy for challenges.
type GuardConfig struct {
	// Self is the rig's own peer ID: a challenge addressed to another rig is refused.
	Self string
	// PeerEvery is how often one peer may challenge (PeerBurst at once).
	PeerEvery time.Duration
	PeerBurst int
	// TotalEvery bounds challenges from all peers together.
	TotalEvery time.Duration
	TotalBurst int
	// MaxN and MaxCount bound the work a challenge may ask for.
	MaxN, MaxCount int
	// MaxPeers bounds the peers tracked; beyond it the oldest are forgotten.
	MaxPeers int
}

// DefaultGuard is a rig's default policy: one challenge a minute per peer (two at once),
// one every ten seconds overall, the protocol's size limits.
func DefaultGuard(self string) GuardConfig {
	return GuardConfig{Self: self, PeerEvery: time.Minute, PeerBurst: 2, TotalEvery: 10 * time.Second, TotalBurst: 6,
		MaxN: MaxN, MaxCount: MaxCount, MaxPeers: 4096}
}

// ErrRateLimited: the peer, or all peers together, challenged too often.
var ErrRateLimited = errors.New("rate limited")

// Guard admits challenges at a rig: addressed to it, fresh, stamped, not replayed, within
// its size limits and rate limits.
type Guard struct {
	cfg   GuardConfig
	now   func() time.Time
	mu    sync.Mutex
	total *rate.Limiter
	peers map[string]*guardPeer
	seen  map[[32]byte]time.Time // seeds admitted within the clock-skew window
}

type guardPeer struct {
	lim  *rate.Limiter
	last time.Time
}

// NewGuard returns a guard; now is the clock (time.Now if nil).
func NewGuard(cfg GuardConfig, now func() time.Time) *Guard {
	if now == nil {
		now = time.Now
	}
	return &Guard{cfg: cfg, now: now, total: rate.NewLimiter(rate.Every(cfg.TotalEvery), cfg.TotalBurst),
		peers: map[string]*guardPeer{}, seen: map[[32]byte]time.Time{}}
}

// Admit decides on a challenge that peer (authenticated by the transport) sent. The
// error is the refusal's reason.
func (g *Guard) Admit(peer string, ch *Challenge) error {
	now := g.now()
	switch {
	case ch.Challenger != peer:
		return fmt.Errorf("challenge names challenger %q but came from %q", ch.Challenger, peer)
	case ch.Rig != g.cfg.Self:
		return errors.New("challenge addressed to another rig")
	case ch.Issued.Before(now.Add(-MaxClockSkew)) || ch.Issued.After(now.Add(MaxClockSkew)):
		return fmt.Errorf("challenge issued at %s, more than %s from this rig's clock %s", ch.Issued.UTC().Format(time.RFC3339), MaxClockSkew, now.UTC().Format(time.RFC3339))
	case ch.N > g.cfg.MaxN || ch.Count > g.cfg.MaxCount:
		return fmt.Errorf("challenge of n=%d count=%d: this rig takes n ≤ %d, count ≤ %d", ch.N, ch.Count, g.cfg.MaxN, g.cfg.MaxCount)
	case !ch.CheckStamp():
		return fmt.Errorf("challenge stamp does not have %d leading zero bits", ch.StampBits())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for s, at := range g.seen {
		if now.Sub(at) > 2*MaxClockSkew {
			delete(g.seen, s)
		}
	}
	if _, ok := g.seen[ch.Seed]; ok {
		return errors.New("challenge replayed: its seed was seen already")
	}
	p := g.peers[peer]
	if p == nil {
		if len(g.peers) >= g.cfg.MaxPeers {
			var oldest string
			for id, q := range g.peers {
				if oldest == "" || q.last.Before(g.peers[oldest].last) {
					oldest = id
				}
			}
			delete(g.peers, oldest)
		}
		p = &guardPeer{lim: rate.NewLimiter(rate.Every(g.cfg.PeerEvery), g.cfg.PeerBurst)}
		g.peers[peer] = p
	}
	p.last = now
	if !p.lim.AllowN(now, 1) {
		return fmt.Errorf("%w: at most one challenge per %s from one peer (bursts of %d)", ErrRateLimited, g.cfg.PeerEvery, g.cfg.PeerBurst)
	}
	if !g.total.AllowN(now, 1) {
		return fmt.Errorf("%w: at most one challenge per %s from all peers (bursts of %d)", ErrRateLimited, g.cfg.TotalEvery, g.cfg.TotalBurst)
	}
	g.seen[ch.Seed] = now
	return nil
}
