package pool

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// CancelProtocol is where the coordinator takes a job back from a member: the job was
// reassigned (the member was gone, its heartbeats stopped listing the job, another rank
// of a multi-rig job lost it), given back on chain, or is not the pool's at all. The
// member stops running it, so its rig is not held until max_duration or the dispatch's
// deadline.
const CancelProtocol protocol.ID = "/gpunode/pool/cancel/1.0.0"

// KindCancel is the kind of a Cancel message.
const KindCancel = "cancel"

// Cancel takes a dispatched job back from a member.
type Cancel struct {
	Version     int    `json:"version"`
	Coordinator string `json:"coordinator"`
	Member      string `json:"member"`
	// Seq increases with every dispatch and cancel of a coordinator's run; Time is when
	// it was sent (unix ms).
	Seq  uint64 `json:"seq"`
	Time int64  `json:"time"`
	// JobID is the job's on-chain ID; Reason says why the pool takes it back.
	JobID  string `json:"job_id"`
	Reason string `json:"reason"`
}

// Validate checks a cancel's fields (not its signature).
func (c Cancel) Validate() error {
	if c.Version != Version {
		return fmt.Errorf("%w: cancel version %d, want %d", ErrMalformed, c.Version, Version)
	}
	if _, err := checkPeer("coordinator", c.Coordinator); err != nil {
		return err
	}
	if _, err := checkPeer("member", c.Member); err != nil {
		return err
	}
	switch {
	case !runtimeValidJobID(c.JobID):
		return fmt.Errorf("%w: job id %q", ErrMalformed, c.JobID)
	case c.Reason == "":
		return fmt.Errorf("%w: a cancel without a reason", ErrMalformed)
	case len(c.Reason) > 512:
		return fmt.Errorf("%w: reason of %d bytes", ErrMalformed, len(c.Reason))
	}
	return nil
}

// CancelHandler stops a job the coordinator takes back (checked for signature, sender,
// member and replay already): its answer is the Ack's Accepted and Reason. It runs while
// the coordinator waits, so it must be quick (record the cancel; stop the job after).
type CancelHandler func(ctx context.Context, c Cancel) (ok bool, reason string)

// cancels is the member's side of CancelProtocol.
type cancels struct {
	handler CancelHandler
	// lastSeq and lastTime are the coordinator's last cancel taken, against replays.
	lastSeq  uint64
	lastTime int64
}

// Cancel takes job jobID back from member, saying why, and returns the member's answer.
// The member need not be alive (a member the job was taken from for silence may be back,
// or not): an error says the message did not get there.
func (c *Coordinator) Cancel(ctx context.Context, member peer.ID, jobID, reason string) (Ack, error) {
	if len(reason) > 512 {
		reason = truncateUTF8(reason, 512)
	}
	defer c.sends.lock(member)()
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	msg := Cancel{Version: Version, Coordinator: c.h.ID().String(), Member: member.String(), Seq: seq,
		Time: c.now().UnixMilli(), JobID: jobID, Reason: reason}
	if err := msg.Validate(); err != nil {
		return Ack{}, fmt.Errorf("cancel job %s: %w", jobID, err)
	}
	s, err := Sign(c.key, KindCancel, msg)
	if err != nil {
		return Ack{}, err
	}
	ack, err := exchange(ctx, c.h, member, CancelProtocol, s)
	if err != nil {
		return Ack{}, fmt.Errorf("cancel job %s on %s: %w", jobID, member, err)
	}
	if ack.Seq != msg.Seq || ack.JobID != msg.JobID {
		return Ack{}, fmt.Errorf("cancel job %s on %s: %w: the answer is for job %q seq %d", jobID, member, ErrMalformed, ack.JobID, ack.Seq)
	}
	return ack, nil
}

// SetCancelHandler sets what stops the jobs the coordinator takes back. Until it is set,
// every cancel is refused ("this member takes no cancels").
func (m *Member) SetCancelHandler(fn CancelHandler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cancels.handler = fn
}

func (m *Member) handleCancel(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(streamTimeout))
	from := st.Conn().RemotePeer()
	c, err := m.openCancel(st, from)
	ack := Ack{Version: Version, From: m.h.ID().String(), Seq: c.Seq, JobID: c.JobID}
	if err != nil {
		m.cancelsRefused.WithLabelValues(reason(err)).Inc()
		m.log.Warn("cancel refused", "peer", from, "err", err)
		ack.Reason = err.Error()
		if !runtimeValidJobID(ack.JobID) {
			ack.JobID = ""
		}
	} else {
		m.mu.Lock()
		fn := m.cancels.handler
		m.mu.Unlock()
		if fn == nil {
			ack.Reason = "this member takes no cancels"
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), streamTimeout/2)
			ack.Accepted, ack.Reason = fn(ctx, c)
			cancel()
		}
	}
	if len(ack.Reason) > 512 {
		ack.Reason = truncateUTF8(ack.Reason, 512)
	}
	s, serr := Sign(m.key, KindAck, ack)
	if serr != nil || WriteFrame(st, s) != nil {
		st.Reset()
	}
}

func (m *Member) openCancel(st network.Stream, from peer.ID) (Cancel, error) {
	s, err := ReadFrame(st)
	if err != nil {
		return Cancel{}, err
	}
	// Only the coordinator takes jobs back: a stream from anyone else is refused before
	// its content is looked at.
	if from != m.coordinator {
		return Cancel{}, fmt.Errorf("%w: %s is not this pool's coordinator", errOtherPool, from)
	}
	var c Cancel
	if err := s.Open(KindCancel, from, &c); err != nil {
		return Cancel{}, err
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	if c.Coordinator != from.String() || c.Member != m.h.ID().String() {
		return c, fmt.Errorf("%w: cancel from %s for %s", ErrForged, c.Coordinator, c.Member)
	}
	if err := checkTime(c.Time, m.now()); err != nil {
		return c, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.Seq <= m.cancels.lastSeq && c.Time <= m.cancels.lastTime {
		return c, fmt.Errorf("%w: cancel seq %d after %d", errReplayed, c.Seq, m.cancels.lastSeq)
	}
	m.cancels.lastSeq, m.cancels.lastTime = c.Seq, c.Time
	return c, nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
