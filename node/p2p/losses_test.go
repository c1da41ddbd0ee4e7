package p2p

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// lossCounter is a gossipsub tracer shared by a benchmark's nodes: it counts the
// messages gossipsub loses on their way (a full validation queue, a full outbound
// queue, a full subscription) and the ones validation ignored, so that the benchmark
// can say where records went missing.
type lossCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func newLossCounter() *lossCounter { return &lossCounter{counts: map[string]int{}} }

func (l *lossCounter) add(kind string) {
	l.mu.Lock()
	l.counts[kind]++
	l.mu.Unlock()
}

// take returns the counts so far, sorted, and starts over.
func (l *lossCounter) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, v := range l.counts {
		out = append(out, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(out)
	l.counts = map[string]int{}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func (l *lossCounter) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (l *lossCounter) OnClosedOutboundStream(peer.ID)           {}
func (l *lossCounter) Join(string)                              {}
func (l *lossCounter) Leave(string)                             {}
func (l *lossCounter) Graft(peer.ID, string)                    {}
func (l *lossCounter) Prune(peer.ID, string)                    {}
func (l *lossCounter) ValidateMessage(*pubsub.Message)          {}
func (l *lossCounter) DeliverMessage(*pubsub.Message)           {}
func (l *lossCounter) DuplicateMessage(*pubsub.Message)         {}
func (l *lossCounter) RecvRPC(*pubsub.RPC)                      {}
func (l *lossCounter) SendRPC(*pubsub.RPC, peer.ID)             {}
func (l *lossCounter) ThrottlePeer(peer.ID)                     { l.add("peer throttled") }
func (l *lossCounter) UndeliverableMessage(*pubsub.Message)     { l.add("subscription full") }
func (l *lossCounter) RejectMessage(_ *pubsub.Message, reason string) {
	l.add(reason)
}

func (l *lossCounter) DropRPC(rpc *pubsub.RPC, _ peer.ID) {
	if n := len(rpc.GetPublish()); n > 0 {
		l.mu.Lock()
		l.counts["outbound queue full"] += n
		l.mu.Unlock()
	}
}
