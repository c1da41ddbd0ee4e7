package p2p

import (
	"bytes"
	"crypto/sha256"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// Market is this node's view of the network's capacity: the newest live record of
// every peer, each expiring RecordTTL after its timestamp, at most max peers. Peer IDs
// cost nothing to make, so past max a new peer's record is dropped rather than one of
// the records already known: a flood of fresh identities can fill the free places but
// not evict anyone, and its records expire like any other.
type Market struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[peer.ID]*Entry
	// held indexes the entries by the digest of their envelope, so that a market-sync
	// answer's envelopes already held are skipped without verifying them again.
	held   map[[sha256.Size]byte]peer.ID
	purged time.Time
}

// Entry is one peer's record as this node knows it.
type Entry struct {
	Record capacity.Record
	// Envelope is the signed record as received, so that it can be passed on to a
	// peer that joins later: it verifies on its own.
	Envelope []byte

	Received time.Time
	Expires  time.Time

	sum [sha256.Size]byte
	// relayed is set once gossipsub has passed the record on from this node.
	relayed bool
}

func newMarket(ttl time.Duration, max int) *Market {
	return &Market{ttl: ttl, max: max, entries: make(map[peer.ID]*Entry), held: make(map[[sha256.Size]byte]peer.ID)}
}

const droppedMarketFull = "market_full"

// fullLocked reports whether a record of id would be dropped for want of room.
// Expired entries are forgotten first, at most once a second.
func (m *Market) fullLocked(id peer.ID, now time.Time) bool {
	if _, ok := m.entries[id]; ok || len(m.entries) < m.max {
		return false
	}
	if now.Sub(m.purged) >= time.Second {
		m.purged = now
		for pid, e := range m.entries {
			if !now.Before(e.Expires) {
				m.deleteLocked(pid, e)
			}
		}
	}
	return len(m.entries) >= m.max
}

func (m *Market) deleteLocked(id peer.ID, e *Entry) {
	delete(m.entries, id)
	if m.held[e.sum] == id {
		delete(m.held, e.sum)
	}
}

// holds reports whether env is byte for byte the envelope of a record in the view.
func (m *Market) holds(env []byte) bool {
	sum := sha256.Sum256(env)
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.held[sum]
	return ok && bytes.Equal(m.entries[id].Envelope, env)
}

// admission is what the view made of a verified record.
type admission int

const (
	admitted   admission = iota // newer than what was known of its peer: stored
	admitRelay                  // the record held, until now only known from market sync: pass it on
	admitStale                  // not newer than what is known of its peer
	admitFull                   // a new peer, and the view is at max
)

// admit stores rec, a verified record of id, unless a newer one is already known or
// the view is full. gossiped says it came through gossipsub, which forwards the records
// it is told to accept: a record already held is accepted again (passed on) only if it
// came through market sync and was never relayed, so that a gossip copy arriving after
// the sync copy still travels on, and a replayed copy does not.
func (m *Market) admit(id peer.ID, rec *capacity.Record, env []byte, now time.Time, gossiped bool) admission {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[id]; ok && rec.Seq <= e.Record.Seq {
		if gossiped && rec.Seq == e.Record.Seq && !e.relayed && bytes.Equal(env, e.Envelope) {
			e.relayed = true
			return admitRelay
		}
		return admitStale
	}
	if m.fullLocked(id, now) {
		return admitFull
	}
	if e, ok := m.entries[id]; ok {
		m.deleteLocked(id, e)
	}
	e := &Entry{Record: *rec, Envelope: env, Received: now, Expires: rec.Time().Add(m.ttl),
		sum: sha256.Sum256(env), relayed: gossiped}
	m.entries[id] = e
	m.held[e.sum] = id
	return admitted
}

// Get returns id's live record.
func (m *Market) Get(id peer.ID, now time.Time) (Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok || !now.Before(e.Expires) {
		return Entry{}, false
	}
	return *e, true
}

// List returns the live records sorted by peer ID and forgets expired ones.
func (m *Market) List(now time.Time) []Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Entry, 0, len(m.entries))
	for id, e := range m.entries {
		if !now.Before(e.Expires) {
			m.deleteLocked(id, e)
			continue
		}
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Record.PeerID < out[j].Record.PeerID })
	return out
}

// Len counts the live records.
func (m *Market) Len(now time.Time) int { return len(m.List(now)) }
