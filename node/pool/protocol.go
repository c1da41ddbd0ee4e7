package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// The pool's protocols: members report to the coordinator on HeartbeatProtocol, the
// coordinator assigns jobs on DispatchProtocol, members hand a dispatched job's outcome
// back on ResultProtocol. Each stream carries one signed message and one signed Ack back.
const (
	HeartbeatProtocol protocol.ID = "/gpunode/pool/heartbeat/1.0.0"
	DispatchProtocol  protocol.ID = "/gpunode/pool/dispatch/1.0.0"
	ResultProtocol    protocol.ID = "/gpunode/pool/result/1.0.0"
)

// ResultHandler decides whether the coordinator takes a member's result (checked for
// signature, sender, pool and replay already): its answer is the Ack's Accepted and
// Reason. It runs while the member waits, so it must be quick (record, do not fetch).
type ResultHandler func(ctx context.Context, from peer.ID, r Result) (accepted bool, reason string)

// streamTimeout bounds one exchange.
const streamTimeout = 10 * time.Second

// MemberInfo is what the coordinator knows of a member.
type MemberInfo struct {
	Heartbeat
	// LastSeen is when its last heartbeat arrived; Alive says whether that is within the
	// heartbeat bound.
	LastSeen time.Time `json:"last_seen"`
	Alive    bool      `json:"alive"`
}

// Coordinator is the pool coordinator's side of the protocols: it keeps the members'
// heartbeats and dispatches jobs to them.
type Coordinator struct {
	h     host.Host
	key   crypto.PrivKey
	bound time.Duration
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	members map[peer.ID]*MemberInfo
	seq     uint64
	refused *prometheus.CounterVec
	// results takes members' results; lastResult is each member's last result taken
	// (seq, time) against replays.
	results    ResultHandler
	lastResult map[peer.ID][2]int64
	// sends orders the dispatches and cancels sent to each member (order.go).
	sends peerLocks
}

// NewCoordinator serves heartbeats on h, whose identity key is key. A member whose last
// heartbeat is older than bound is not alive: its jobs are to be reassigned.
func NewCoordinator(h host.Host, key crypto.PrivKey, bound time.Duration, log *slog.Logger, reg prometheus.Registerer) (*Coordinator, error) {
	if bound <= 0 {
		return nil, errors.New("pool coordinator: the heartbeat bound must be positive")
	}
	if id, err := peer.IDFromPrivateKey(key); err != nil || id != h.ID() {
		return nil, errors.New("pool coordinator: the key is not the host's identity")
	}
	c := &Coordinator{h: h, key: key, bound: bound, log: log.With("component", "pool"), now: time.Now,
		members: map[peer.ID]*MemberInfo{}, lastResult: map[peer.ID][2]int64{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_pool_messages_refused_total",
			Help: "Pool messages refused, by kind and reason (malformed, forged, other_pool, replayed).",
		}, []string{"kind", "reason"}),
	}
	if reg != nil {
		if err := reg.Register(c.refused); err != nil {
			return nil, fmt.Errorf("pool metrics: %w", err)
		}
	}
	h.SetStreamHandler(HeartbeatProtocol, c.handleHeartbeat)
	h.SetStreamHandler(ResultProtocol, c.handleResult)
	return c, nil
}

// SetResultHandler sets what takes members' results. Until it is set, every result is
// refused ("this coordinator takes no results").
func (c *Coordinator) SetResultHandler(fn ResultHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results = fn
}

// Close stops serving heartbeats and results.
func (c *Coordinator) Close() {
	c.h.RemoveStreamHandler(HeartbeatProtocol)
	c.h.RemoveStreamHandler(ResultProtocol)
}

// ID is the coordinator's peer ID, which members name as their coordinator.
func (c *Coordinator) ID() peer.ID { return c.h.ID() }

func reason(err error) string {
	switch {
	case errors.Is(err, ErrForged):
		return "forged"
	case errors.Is(err, errOtherPool):
		return "other_pool"
	case errors.Is(err, errReplayed):
		return "replayed"
	}
	return "malformed"
}

var (
	errOtherPool = errors.New("message for another pool")
	errReplayed  = errors.New("message older than one already seen")
)

func (c *Coordinator) handleHeartbeat(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(streamTimeout))
	from := st.Conn().RemotePeer()
	hb, err := c.acceptHeartbeat(st, from)
	ack := Ack{Version: Version, From: c.h.ID().String(), Seq: hb.Seq, Accepted: err == nil}
	if err != nil {
		c.refused.WithLabelValues(KindHeartbeat, reason(err)).Inc()
		c.log.Warn("heartbeat refused", "peer", from, "err", err)
		ack.Reason = err.Error()
	}
	s, serr := Sign(c.key, KindAck, ack)
	if serr != nil || WriteFrame(st, s) != nil {
		st.Reset()
	}
}

func (c *Coordinator) acceptHeartbeat(st network.Stream, from peer.ID) (Heartbeat, error) {
	s, err := ReadFrame(st)
	if err != nil {
		return Heartbeat{}, err
	}
	var hb Heartbeat
	// Signed by the peer at the other end of the stream, and naming it.
	if err := s.Open(KindHeartbeat, from, &hb); err != nil {
		return Heartbeat{}, err
	}
	if hb.Member != from.String() {
		return hb, fmt.Errorf("%w: peer %s sent a heartbeat for %s", ErrForged, from, hb.Member)
	}
	if err := hb.Validate(); err != nil {
		return hb, err
	}
	if hb.Pool != c.h.ID().String() {
		return hb, fmt.Errorf("%w: %s", errOtherPool, hb.Pool)
	}
	now := c.now()
	if err := checkTime(hb.Time, now); err != nil {
		return hb, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.members[from]; ok && hb.Seq <= m.Seq && hb.Time <= m.Time {
		return hb, fmt.Errorf("%w: seq %d after %d", errReplayed, hb.Seq, m.Seq)
	}
	c.members[from] = &MemberInfo{Heartbeat: hb, LastSeen: now}
	return hb, nil
}

func (c *Coordinator) handleResult(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(streamTimeout))
	from := st.Conn().RemotePeer()
	r, err := c.openResult(st, from)
	ack := Ack{Version: Version, From: c.h.ID().String(), Seq: r.Seq, JobID: r.JobID}
	if err != nil {
		c.refused.WithLabelValues(KindResult, reason(err)).Inc()
		c.log.Warn("result refused", "peer", from, "err", err)
		ack.Reason = err.Error()
		if !runtimeValidJobID(ack.JobID) {
			ack.JobID = ""
		}
	} else {
		c.mu.Lock()
		fn := c.results
		c.mu.Unlock()
		if fn == nil {
			ack.Reason = "this coordinator takes no results"
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), streamTimeout/2)
			ack.Accepted, ack.Reason = fn(ctx, from, r)
			cancel()
		}
	}
	if len(ack.Reason) > 512 {
		ack.Reason = ack.Reason[:512]
	}
	s, serr := Sign(c.key, KindAck, ack)
	if serr != nil || WriteFrame(st, s) != nil {
		st.Reset()
	}
}

func (c *Coordinator) openResult(st network.Stream, from peer.ID) (Result, error) {
	s, err := ReadFrame(st)
	if err != nil {
		return Result{}, err
	}
	var r Result
	// Signed by the peer at the other end of the stream, and naming it.
	if err := s.Open(KindResult, from, &r); err != nil {
		return Result{}, err
	}
	if r.Member != from.String() {
		return r, fmt.Errorf("%w: peer %s sent a result for %s", ErrForged, from, r.Member)
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	if r.Coordinator != c.h.ID().String() {
		return r, fmt.Errorf("%w: %s", errOtherPool, r.Coordinator)
	}
	if err := checkTime(r.Time, c.now()); err != nil {
		return r, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if last, ok := c.lastResult[from]; ok && int64(r.Seq) <= last[0] && r.Time <= last[1] {
		return r, fmt.Errorf("%w: result seq %d after %d", errReplayed, r.Seq, last[0])
	}
	c.lastResult[from] = [2]int64{int64(r.Seq), r.Time}
	return r, nil
}

// Members lists the members that ever reported, by peer ID, saying which are alive.
func (c *Coordinator) Members() []MemberInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	out := make([]MemberInfo, 0, len(c.members))
	for _, m := range c.members {
		mi := *m
		mi.Alive = now.Sub(m.LastSeen) <= c.bound
		out = append(out, mi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Member < out[j].Member })
	return out
}

// Gone lists the members whose heartbeat is older than the bound: their jobs are to be
// reassigned or given back.
func (c *Coordinator) Gone() []peer.ID {
	var out []peer.ID
	for _, m := range c.Members() {
		if !m.Alive {
			id, _ := peer.Decode(m.Member)
			out = append(out, id)
		}
	}
	return out
}

// Dispatch assigns a job to a member and returns its answer. The member must be alive.
func (c *Coordinator) Dispatch(ctx context.Context, member peer.ID, d Dispatch) (Ack, error) {
	alive := false
	for _, m := range c.Members() {
		if m.Member == member.String() {
			alive = m.Alive
		}
	}
	if !alive {
		return Ack{}, fmt.Errorf("dispatch job %s: member %s is not alive (no heartbeat within %s)", d.JobID, member, c.bound)
	}
	defer c.sends.lock(member)()
	c.mu.Lock()
	c.seq++
	d.Seq = c.seq
	c.mu.Unlock()
	d.Version, d.Coordinator, d.Member, d.Time = Version, c.h.ID().String(), member.String(), c.now().UnixMilli()
	if err := d.Validate(); err != nil {
		return Ack{}, fmt.Errorf("dispatch job %s: %w", d.JobID, err)
	}
	s, err := Sign(c.key, KindDispatch, d)
	if err != nil {
		return Ack{}, err
	}
	ack, err := exchange(ctx, c.h, member, DispatchProtocol, s)
	if err != nil {
		return Ack{}, fmt.Errorf("dispatch job %s to %s: %w", d.JobID, member, err)
	}
	if ack.Seq != d.Seq || ack.JobID != d.JobID {
		return Ack{}, fmt.Errorf("dispatch job %s to %s: %w: the answer is for job %q seq %d", d.JobID, member, ErrMalformed, ack.JobID, ack.Seq)
	}
	return ack, nil
}

// exchange sends one signed message to p and reads its signed Ack.
func exchange(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, s Signed) (Ack, error) {
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	st, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return Ack{}, err
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if err := WriteFrame(st, s); err != nil {
		st.Reset()
		return Ack{}, err
	}
	if err := st.CloseWrite(); err != nil {
		return Ack{}, err
	}
	r, err := ReadFrame(st)
	if err != nil {
		return Ack{}, err
	}
	var ack Ack
	if err := r.Open(KindAck, p, &ack); err != nil {
		return Ack{}, err
	}
	if ack.From != p.String() {
		return Ack{}, fmt.Errorf("%w: %s answered as %s", ErrForged, p, ack.From)
	}
	if err := ack.Validate(); err != nil {
		return Ack{}, err
	}
	return ack, nil
}

// Inventory is what a member reports of itself.
type Inventory func() Heartbeat

// Accepter decides whether a member takes a dispatched job (and starts it if so).
type Accepter func(ctx context.Context, d Dispatch) (ok bool, reason string)

// Member is a pool member's side: it sends heartbeats to its coordinator and takes the
// jobs the coordinator, and only it, dispatches.
type Member struct {
	h           host.Host
	key         crypto.PrivKey
	coordinator peer.ID
	inventory   Inventory
	accept      Accepter
	log         *slog.Logger
	now         func() time.Time

	mu  sync.Mutex
	seq uint64
	// rseq counts the results sent; sendMu orders them (order.go).
	rseq   uint64
	sendMu sync.Mutex
	// lastSeq and lastTime are the coordinator's last dispatch taken: a copy of an old
	// one has both no greater (a restarted coordinator counts from 1 again, later).
	lastSeq  uint64
	lastTime int64
	refused  *prometheus.CounterVec
	// cancels takes the coordinator's cancels (cancel.go); cancelsRefused counts the
	// refused ones.
	cancels        cancels
	cancelsRefused *prometheus.CounterVec
}

// NewMember takes dispatches on h (identity key) from coordinator alone, answering with
// accept, and reports inventory in its heartbeats.
func NewMember(h host.Host, key crypto.PrivKey, coordinator peer.ID, inventory Inventory, accept Accepter, log *slog.Logger, reg prometheus.Registerer) (*Member, error) {
	if id, err := peer.IDFromPrivateKey(key); err != nil || id != h.ID() {
		return nil, errors.New("pool member: the key is not the host's identity")
	}
	if coordinator == "" || coordinator == h.ID() {
		return nil, errors.New("pool member: the coordinator must be another peer")
	}
	m := &Member{h: h, key: key, coordinator: coordinator, inventory: inventory, accept: accept,
		log: log.With("component", "pool"), now: time.Now,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_pool_dispatches_refused_total",
			Help: "Dispatch messages this member refused, by reason (malformed, forged, other_pool, replayed).",
		}, []string{"reason"}),
		cancelsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_pool_cancels_refused_total",
			Help: "Cancel messages this member refused, by reason (malformed, forged, other_pool, replayed).",
		}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.refused, m.cancelsRefused} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("pool metrics: %w", err)
			}
		}
	}
	h.SetStreamHandler(DispatchProtocol, m.handleDispatch)
	h.SetStreamHandler(CancelProtocol, m.handleCancel)
	return m, nil
}

// Close stops taking dispatches and cancels.
func (m *Member) Close() {
	m.h.RemoveStreamHandler(DispatchProtocol)
	m.h.RemoveStreamHandler(CancelProtocol)
}

// Beat sends one heartbeat and returns the coordinator's answer.
func (m *Member) Beat(ctx context.Context) error {
	hb := m.inventory()
	m.mu.Lock()
	m.seq++
	hb.Seq = m.seq
	m.mu.Unlock()
	hb.Version, hb.Pool, hb.Member, hb.Time = Version, m.coordinator.String(), m.h.ID().String(), m.now().UnixMilli()
	if err := hb.Validate(); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	s, err := Sign(m.key, KindHeartbeat, hb)
	if err != nil {
		return err
	}
	ack, err := exchange(ctx, m.h, m.coordinator, HeartbeatProtocol, s)
	if err != nil {
		return fmt.Errorf("heartbeat to %s: %w", m.coordinator, err)
	}
	if !ack.Accepted {
		return fmt.Errorf("heartbeat to %s refused: %s", m.coordinator, ack.Reason)
	}
	return nil
}

// SendResult reports a dispatched job's outcome to the coordinator and returns its
// answer: Accepted false with a Reason when it refuses the result (the job was
// reassigned, …). An error means the result did not get there, or the answer is not the
// coordinator's.
func (m *Member) SendResult(ctx context.Context, r Result) (Ack, error) {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	m.mu.Lock()
	m.rseq++
	r.Seq = m.rseq
	m.mu.Unlock()
	r.Version, r.Coordinator, r.Member, r.Time = Version, m.coordinator.String(), m.h.ID().String(), m.now().UnixMilli()
	if err := r.Validate(); err != nil {
		return Ack{}, fmt.Errorf("result of job %s: %w", r.JobID, err)
	}
	s, err := Sign(m.key, KindResult, r)
	if err != nil {
		return Ack{}, err
	}
	ack, err := exchange(ctx, m.h, m.coordinator, ResultProtocol, s)
	if err != nil {
		return Ack{}, fmt.Errorf("result of job %s to %s: %w", r.JobID, m.coordinator, err)
	}
	if ack.Seq != r.Seq || ack.JobID != r.JobID {
		return Ack{}, fmt.Errorf("result of job %s to %s: %w: the answer is for job %q seq %d", r.JobID, m.coordinator, ErrMalformed, ack.JobID, ack.Seq)
	}
	return ack, nil
}

// Run sends a heartbeat every interval until ctx ends.
func (m *Member) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := m.Beat(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (m *Member) handleDispatch(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(streamTimeout))
	from := st.Conn().RemotePeer()
	d, err := m.openDispatch(st, from)
	ack := Ack{Version: Version, From: m.h.ID().String(), Seq: d.Seq, JobID: d.JobID}
	if err != nil {
		m.refused.WithLabelValues(reason(err)).Inc()
		m.log.Warn("dispatch refused", "peer", from, "err", err)
		ack.Reason = err.Error()
		if !runtimeValidJobID(ack.JobID) {
			ack.JobID = ""
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), streamTimeout/2)
		ack.Accepted, ack.Reason = m.accept(ctx, d)
		cancel()
	}
	if len(ack.Reason) > 512 {
		ack.Reason = ack.Reason[:512]
	}
	s, serr := Sign(m.key, KindAck, ack)
	if serr != nil || WriteFrame(st, s) != nil {
		st.Reset()
	}
}

func (m *Member) openDispatch(st network.Stream, from peer.ID) (Dispatch, error) {
	s, err := ReadFrame(st)
	if err != nil {
		return Dispatch{}, err
	}
	// Only the coordinator dispatches: a stream from anyone else is refused before its
	// content is looked at.
	if from != m.coordinator {
		return Dispatch{}, fmt.Errorf("%w: %s is not this pool's coordinator", errOtherPool, from)
	}
	var d Dispatch
	if err := s.Open(KindDispatch, from, &d); err != nil {
		return Dispatch{}, err
	}
	if err := d.Validate(); err != nil {
		return d, err
	}
	if d.Coordinator != from.String() || d.Member != m.h.ID().String() {
		return d, fmt.Errorf("%w: dispatch from %s for %s", ErrForged, d.Coordinator, d.Member)
	}
	if err := checkTime(d.Time, m.now()); err != nil {
		return d, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if d.Seq <= m.lastSeq && d.Time <= m.lastTime {
		return d, fmt.Errorf("%w: dispatch seq %d after %d", errReplayed, d.Seq, m.lastSeq)
	}
	m.lastSeq, m.lastTime = d.Seq, d.Time
	return d, nil
}
