package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// SyncProtocol hands a peer every live record this node holds, as the signed envelopes
// it received. Gossip only carries records published after a node joined; a new node
// pulls the rest from the peers it meets instead of waiting a republish interval.
// Each envelope is verified exactly like a gossiped one, so a peer cannot forge
// records through it, only withhold them.
const SyncProtocol protocol.ID = "/gpunode/market-sync/1.0.0"

const (
	// maxInvalidSync is how many forged or malformed records one sync answer may hold
	// before its peer is graylisted: an honest peer only passes on records it verified.
	// Records too old or from the future do not count: clocks differ.
	maxInvalidSync = 16
	// maxConcurrentSyncs bounds the pulls in flight.
	maxConcurrentSyncs = 4
	syncTimeout        = 20 * time.Second
)

func (n *Network) handleSync(s network.Stream) {
	if !n.guard.allowSync(s.Conn().RemotePeer()) {
		n.metrics.syncs.Inc()
		s.Reset()
		return
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	entries := n.market.List(n.now())
	if len(entries) > n.cfg.MaxSyncRecords {
		entries = entries[:n.cfg.MaxSyncRecords]
	}
	for _, e := range entries {
		if err := writeRaw(s, e.Envelope); err != nil {
			s.Reset()
			return
		}
	}
}

// syncFrom pulls the records of peer id in the background, unless enough pulls are
// already running (the next join or anti-entropy round will catch up). It reports
// whether it started the pull.
func (n *Network) syncFrom(ctx context.Context, id peer.ID) bool {
	select {
	case n.syncSlots <- struct{}{}:
	default:
		return false
	}
	go func() {
		defer func() { <-n.syncSlots }()
		if err := n.pull(ctx, id); err != nil && ctx.Err() == nil {
			n.log.Debug("market sync", "peer", id, "err", err)
		}
	}()
	return true
}

func (n *Network) pull(ctx context.Context, id peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, id, SyncProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	_ = s.CloseWrite()
	r := bufio.NewReader(s)
	invalid := 0
	for i := 0; i < n.cfg.MaxSyncRecords; i++ {
		b, err := readFrame(r, capacity.MaxSize)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			s.Reset()
			return err
		}
		if n.market.holds(b) {
			continue // the usual case: a record this node has, verified when it came
		}
		rec, err := capacity.Open(b, n.now(), time.Duration(n.cfg.RecordTTL), maxSkew)
		if err != nil {
			reason := capacity.ReasonOf(err)
			n.metrics.invalid.WithLabelValues(string(reason)).Inc()
			if reason == capacity.ReasonTooOld || reason == capacity.ReasonFuture {
				continue // clocks differ, and a record may expire on its way: not forged
			}
			if invalid++; invalid > maxInvalidSync {
				s.Reset()
				n.guard.graylist(id, syncAbuse)
				return fmt.Errorf("more than %d invalid records in one answer", maxInvalidSync)
			}
			continue
		}
		pid, _ := peer.Decode(rec.PeerID)
		n.admit(pid, rec, b, false)
	}
	s.Reset()
	return nil
}

// antiEntropy pulls from one random topic peer every republish interval, repairing
// whatever gossip lost; it runs a few extra rounds soon after start, when the mesh is
// still forming and fresh connections lose messages.
func (n *Network) antiEntropy(ctx context.Context) error {
	early := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i := 0; ; i++ {
		wait := time.Duration(n.cfg.RepublishInterval)
		if i < len(early) && early[i] < wait {
			wait = early[i]
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if peers := n.topic.ListPeers(); len(peers) > 0 {
			n.syncFrom(ctx, peers[rand.IntN(len(peers))])
		}
	}
}
