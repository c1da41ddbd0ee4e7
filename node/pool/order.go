package pool

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A receiver takes a message only if its seq or time is above the last it took from the
// sender (replays are refused), so the messages one side sends to one peer must arrive
// in the order they were numbered: each is numbered and sent under its peer's lock.
type peerLocks struct {
	mu sync.Mutex
	m  map[peer.ID]*sync.Mutex
}

// lock takes p's lock and returns its unlock.
func (l *peerLocks) lock(p peer.ID) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[peer.ID]*sync.Mutex{}
	}
	mu := l.m[p]
	if mu == nil {
		mu = &sync.Mutex{}
		l.m[p] = mu
	}
	l.mu.Unlock()
	mu.Lock()
	return mu.Unlock
}
