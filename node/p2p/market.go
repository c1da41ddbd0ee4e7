package p2p

import (
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
	purged  time.Time
}

// Entry is one peer's record as this node knows it.
type Entry struct {
	Record capacity.Record
	// Envelope is the signed record as received, so that it can be passed on to a
	// peer that joins later: it verifies on its own.
	Envelope []byte

	Received time.Time
	Expires  time.Time
}

func newMarket(ttl time.Duration, max int) *Market {
	return &Market{ttl: ttl, max: max, entries: make(map[peer.ID]*Entry)}
}

const droppedMarketFull = "market_full"

// full reports whether a record of id would be dropped for want of room. Expired
// entries are forgotten first, at most once a second.
func (m *Market) full(id peer.ID, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fullLocked(id, now)
}

func (m *Market) fullLocked(id peer.ID, now time.Time) bool {
	if _, ok := m.entries[id]; ok || len(m.entries) < m.max {
		return false
	}
	if now.Sub(m.purged) >= time.Second {
		m.purged = now
		for pid, e := range m.entries {
			if !now.Before(e.Expires) {
				delete(m.entries, pid)
			}
		}
	}
	return len(m.entries) >= m.max
}

// stale reports whether seq is not newer than what is known of id.
func (m *Market) stale(id peer.ID, seq uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	return ok && seq <= e.Record.Seq
}

// put stores rec unless a newer one is already known or the view is full; it reports
// whether it did, and if not, the reason.
func (m *Market) put(id peer.ID, rec *capacity.Record, env []byte, now time.Time) (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[id]; ok && rec.Seq <= e.Record.Seq {
		return false, string(capacity.ReasonStaleSeq)
	}
	if m.fullLocked(id, now) {
		return false, droppedMarketFull
	}
	m.entries[id] = &Entry{Record: *rec, Envelope: env, Received: now, Expires: rec.Time().Add(m.ttl)}
	return true, ""
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
			delete(m.entries, id)
			continue
		}
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Record.PeerID < out[j].Record.PeerID })
	return out
}

// Len counts the live records.
func (m *Market) Len(now time.Time) int { return len(m.List(now)) }
