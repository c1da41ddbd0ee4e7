package challenge

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"
)

// NewChallenge draws a fresh seed for a challenge of p to rig from challenger, issued now,
// and stamps it (the challenger's proof of work).
func NewChallenge(p Params, rig, challenger string, now time.Time) (*Challenge, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if rig == "" || len(rig) > MaxPeerIDLen || challenger == "" || len(challenger) > MaxPeerIDLen {
		return nil, fmt.Errorf("challenge: peer IDs of %d and %d bytes, want 1 to %d", len(rig), len(challenger), MaxPeerIDLen)
	}
	ch := &Challenge{Params: p, Issued: time.UnixMilli(now.UnixMilli()), Rig: rig, Challenger: challenger}
	rand.Read(ch.Seed[:])
	ch.Stamp()
	return ch, nil
}

// NewQuery draws a fresh vector seed and m distinct rows below n (m ≤ min(n, MaxRows)),
// uniformly at random.
func NewQuery(n, m int) *Query {
	m = min(m, n, MaxRows)
	q := &Query{}
	rand.Read(q.VectorSeed[:])
	seen := map[uint32]bool{}
	var b [4]byte
	for len(q.Rows) < m {
		rand.Read(b[:])
		i := binary.LittleEndian.Uint32(b[:]) % uint32(n) // n is a power of two: uniform
		if !seen[i] {
			seen[i] = true
			q.Rows = append(q.Rows, i)
		}
	}
	return q
}
