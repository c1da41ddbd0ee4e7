package p2p

import (
	"fmt"
	"os"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

type tracer struct{ bad bool }

func (tracer) OnNewOutboundStream(p peer.ID, proto protocol.ID) {}
func (tracer) OnClosedOutboundStream(p peer.ID)                 {}

func (tracer) Join(topic string)             {}
func (tracer) Leave(topic string)            {}
func (tracer) Graft(p peer.ID, topic string) {}
func (tracer) Prune(p peer.ID, topic string) {}
func (t tracer) ValidateMessage(msg *pubsub.Message) {
	if t.bad && msg.Local {
		fmt.Fprintln(os.Stderr, "BADVALIDATEMESSAGE", len(msg.GetData()))
	}
}
func (t tracer) DeliverMessage(msg *pubsub.Message) {
	if t.bad && msg.ReceivedFrom == peer.ID(msg.GetFrom()) {
		fmt.Fprintln(os.Stderr, "BADDELIVERMESSAGE", len(msg.GetData()))
	}
}
func (tracer) RejectMessage(msg *pubsub.Message, reason string) {
	fmt.Fprintln(os.Stderr, "REJECT", msg.ReceivedFrom, reason)
}
func (t tracer) DuplicateMessage(msg *pubsub.Message) {
	if t.bad && msg.Local {
		fmt.Fprintln(os.Stderr, "BADDUPLICATEMESSAGE", len(msg.GetData()))
	}
}
func (tracer) ThrottlePeer(p peer.ID) { fmt.Fprintln(os.Stderr, "THROTTLE", p) }
func (tracer) RecvRPC(rpc *pubsub.RPC) {
	if len(rpc.GetPublish()) > 0 {
		fmt.Fprintln(os.Stderr, "RECV", len(rpc.GetPublish()), peer.ID(rpc.GetPublish()[0].GetFrom()))
	}
}
func (t tracer) SendRPC(rpc *pubsub.RPC, p peer.ID) {
	if t.bad && len(rpc.GetPublish()) > 0 {
		fmt.Fprintln(os.Stderr, "BADSEND", p, len(rpc.GetPublish()[0].GetData()), peer.ID(rpc.GetPublish()[0].GetFrom()))
	}
}
func (tracer) DropRPC(rpc *pubsub.RPC, p peer.ID) { fmt.Fprintln(os.Stderr, "DROPRPC", p) }
func (t tracer) UndeliverableMessage(msg *pubsub.Message) {
	if t.bad && msg.Local {
		fmt.Fprintln(os.Stderr, "BADUNDELIVERABLEMESSAGE", len(msg.GetData()))
	}
}

func init() {
	if os.Getenv("GPUNODE_P2P_TRACE") != "" {
		testPubsubOptions = append(testPubsubOptions, pubsub.WithRawTracer(tracer{}))
	}
}
