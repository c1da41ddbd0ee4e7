package p2p

import (
	"fmt"
	"os"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// tracer prints what gossipsub drops or rejects, and what the test's bad peers send,
// when GPUNODE_P2P_TRACE is set: the first place to look when a propagation test fails.
type tracer struct{ bad bool }

func (tracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (tracer) OnClosedOutboundStream(peer.ID)           {}
func (tracer) Join(string)                              {}
func (tracer) Leave(string)                             {}
func (tracer) Graft(peer.ID, string)                    {}
func (tracer) Prune(peer.ID, string)                    {}
func (tracer) ValidateMessage(*pubsub.Message)          {}
func (tracer) DeliverMessage(*pubsub.Message)           {}
func (tracer) DuplicateMessage(*pubsub.Message)         {}
func (tracer) UndeliverableMessage(*pubsub.Message)     {}
func (tracer) RecvRPC(*pubsub.RPC)                      {}

func (tracer) RejectMessage(msg *pubsub.Message, reason string) {
	fmt.Fprintln(os.Stderr, "trace: reject from", msg.ReceivedFrom, reason)
}

func (tracer) ThrottlePeer(p peer.ID) { fmt.Fprintln(os.Stderr, "trace: throttle", p) }

func (tracer) DropRPC(_ *pubsub.RPC, p peer.ID) { fmt.Fprintln(os.Stderr, "trace: drop rpc to", p) }

func (t tracer) SendRPC(rpc *pubsub.RPC, p peer.ID) {
	if t.bad && len(rpc.GetPublish()) > 0 {
		m := rpc.GetPublish()[0]
		fmt.Fprintln(os.Stderr, "trace: bad peer sends", len(m.GetData()), "bytes from", peer.ID(m.GetFrom()), "to", p)
	}
}

func init() {
	if os.Getenv("GPUNODE_P2P_TRACE") != "" {
		testPubsubOptions = func(peer.ID) []pubsub.Option { return []pubsub.Option{pubsub.WithRawTracer(tracer{})} }
	}
}
