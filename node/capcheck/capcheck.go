// Package capcheck is the daemon's side of verifiable capacity: it answers challenges on
// the libp2p protocol /gpunode/challenge/1.0.0 while the rig is idle (never while a job
// holds the GPUs, and it says so), challenges other rigs on request, signs attestations
// of the outcomes and keeps the attestations it receives. The protocol itself is
// benchmark/challenge.
package capcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/challenge"
	"github.com/gpunode/gpunode/node/api"
)

// Config configures challenges, both ways.
type Config struct {
	// Answer is whether the rig answers other peers' challenges.
	Answer bool `toml:"answer"`
	// N, Precision, Count and DeadlineSeconds are the problem this node poses when a
	// request leaves them out.
	N               int     `toml:"n"`
	Precision       string  `toml:"precision"`
	Count           int     `toml:"count"`
	DeadlineSeconds float64 `toml:"deadline_s"`
	// MaxN is the largest n this rig answers.
	MaxN int `toml:"max_n"`
	// PeerEverySeconds is how often one peer may challenge this rig (bursts of two).
	PeerEverySeconds float64 `toml:"peer_every_s"`
}

// Default answers challenges of n ≤ 8192 once a minute per peer, and poses fp32 n=2048
// with two minutes to commit.
func Default() Config {
	return Config{Answer: true, N: 2048, Precision: "fp32", Count: 1, DeadlineSeconds: 120, MaxN: challenge.MaxN, PeerEverySeconds: 60}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if err := c.params(api.ChallengeRequest{}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxN < challenge.MinN || c.MaxN > challenge.MaxN {
		errs = append(errs, fmt.Errorf("max_n: %d, want %d to %d", c.MaxN, challenge.MinN, challenge.MaxN))
	}
	if !(c.PeerEverySeconds > 0) {
		errs = append(errs, fmt.Errorf("peer_every_s: %g, want > 0", c.PeerEverySeconds))
	}
	return errs
}

func (c Config) params(r api.ChallengeRequest) challenge.Params {
	p := challenge.Params{N: c.N, Precision: benchmark.Precision(c.Precision), Count: c.Count, Deadline: time.Duration(c.DeadlineSeconds * float64(time.Second))}
	if r.N != 0 {
		p.N = r.N
	}
	if r.Precision != "" {
		p.Precision = benchmark.Precision(r.Precision)
	}
	if r.Count != 0 {
		p.Count = r.Count
	}
	if r.DeadlineMS != 0 {
		p.Deadline = time.Duration(r.DeadlineMS) * time.Millisecond
	}
	return p
}

// Deps are what the service runs on.
type Deps struct {
	Host host.Host
	// Prover computes challenges on the rig's device.
	Prover challenge.Backend
	// Busy says why the rig cannot answer now ("busy: job X holds the GPUs"), or "".
	Busy func() string
	// Claimed is a peer's own claimed score (TFLOPS) from its capacity record, 0 if none.
	Claimed    func(peer.ID) float64
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// maxReceived bounds the attestations a rig keeps: the newest per challenger.
const maxReceived = 8

// Service answers and poses challenges.
type Service struct {
	cfg     Config
	deps    Deps
	self    peer.ID
	guard   *challenge.Guard
	metrics *metrics
	log     *slog.Logger

	answering sync.Mutex // one challenge computed at a time: it holds the device

	mu       sync.Mutex
	verdicts map[peer.ID]api.ChallengeResult    // this node's challenges, last per rig
	received map[peer.ID]*challenge.Attestation // about this rig, last per challenger
}

// New starts answering challenges on deps.Host (if cfg.Answer) and returns the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Busy == nil {
		deps.Busy = func() string { return "" }
	}
	if deps.Claimed == nil {
		deps.Claimed = func(peer.ID) float64 { return 0 }
	}
	self := deps.Host.ID()
	gc := challenge.DefaultGuard(self.String())
	gc.PeerEvery = time.Duration(cfg.PeerEverySeconds * float64(time.Second))
	gc.MaxN = cfg.MaxN
	s := &Service{cfg: cfg, deps: deps, self: self, guard: challenge.NewGuard(gc, nil), log: deps.Log.With("component", "challenge"),
		verdicts: map[peer.ID]api.ChallengeResult{}, received: map[peer.ID]*challenge.Attestation{}}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if cfg.Answer {
		deps.Host.SetStreamHandler(protocol.ID(challenge.Protocol), s.handle)
	}
	return s, nil
}

// Close stops answering challenges.
func (s *Service) Close() { s.deps.Host.RemoveStreamHandler(protocol.ID(challenge.Protocol)) }

func (s *Service) handle(st network.Stream) {
	defer st.Close()
	from := st.Conn().RemotePeer()
	st.SetDeadline(time.Now().Add(challenge.MaxDeadline + 2*time.Minute))
	var held bool
	busy := func() string {
		if why := s.deps.Busy(); why != "" {
			return why
		}
		if !s.answering.TryLock() {
			return "busy: answering another challenge"
		}
		held = true
		return ""
	}
	ch, att, err := challenge.Serve(context.Background(), st, from.String(), s.deps.Prover, s.guard, busy)
	if held {
		s.answering.Unlock()
	}
	switch {
	case errors.Is(err, challenge.ErrRefused):
		s.metrics.total.WithLabelValues("rig", "refused").Inc()
		s.log.Info("challenge refused", "peer_id", from, "err", err)
		return
	case err != nil:
		s.metrics.total.WithLabelValues("rig", "error").Inc()
		s.log.Warn("challenge ended early", "peer_id", from, "err", err)
		st.Reset()
		return
	case ch == nil:
		return
	}
	s.metrics.total.WithLabelValues("rig", "answered").Inc()
	if att == nil {
		return
	}
	if att.Rig != s.self.String() || att.Challenger != from.String() {
		s.log.Warn("attestation dropped: it names another rig or challenger", "peer_id", from)
		return
	}
	s.mu.Lock()
	s.received[from] = att
	if len(s.received) > maxReceived {
		var oldest peer.ID
		for id, a := range s.received {
			if oldest == "" || a.Time.Before(s.received[oldest].Time) {
				oldest = id
			}
		}
		delete(s.received, oldest)
	}
	s.mu.Unlock()
	if att.Passed {
		s.metrics.verified.WithLabelValues(string(att.Precision)).Set(att.TFLOPS)
	}
	s.log.Info("attestation received", "peer_id", from, "passed", att.Passed, "tflops", att.TFLOPS)
}

// Challenge challenges the rig req.PeerID and returns the verdict, signed.
func (s *Service) Challenge(ctx context.Context, req api.ChallengeRequest) (api.ChallengeResult, error) {
	id, err := peer.Decode(req.PeerID)
	if err != nil {
		return api.ChallengeResult{}, api.WithClass(api.ErrInvalidArgument, fmt.Errorf("peer id %q: %w", req.PeerID, err))
	}
	if id == s.self {
		return api.ChallengeResult{}, api.WithClass(api.ErrInvalidArgument, errors.New("a node does not challenge itself"))
	}
	p := s.cfg.params(req)
	if err := p.Validate(); err != nil {
		return api.ChallengeResult{}, api.WithClass(api.ErrInvalidArgument, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.Deadline+3*time.Minute)
	defer cancel()
	st, err := s.deps.Host.NewStream(ctx, id, protocol.ID(challenge.Protocol))
	if err != nil {
		s.metrics.total.WithLabelValues("challenger", "error").Inc()
		return api.ChallengeResult{}, api.WithClass(api.ErrUnavailable, fmt.Errorf("challenge %s: %w", id, err))
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	out := api.ChallengeResult{PeerID: id.String(), Precision: string(p.Precision), N: p.N, Count: p.Count, ClaimedTFLOPS: s.deps.Claimed(id), At: time.Now().UTC()}
	ex, err := challenge.Run(ctx, st, p, id.String(), s.self.String(), challenge.Options{})
	if errors.Is(err, challenge.ErrRefused) {
		s.metrics.total.WithLabelValues("challenger", "refused").Inc()
		out.Verdict, out.Reason = "refused", err.Error()
		s.remember(id, out)
		return out, nil
	}
	if err != nil {
		st.Reset()
		s.metrics.total.WithLabelValues("challenger", "error").Inc()
		return api.ChallengeResult{}, api.WithClass(api.ErrUnavailable, fmt.Errorf("challenge %s: %w", id, err))
	}
	r := ex.Result
	out.Device, out.Passed, out.Failed, out.Reason = r.Device, r.Passed, string(r.Failed), r.Reason
	out.VerifiedTFLOPS, out.ElapsedMS, out.RTTMS = r.TFLOPS, ms(r.Elapsed), ms(r.RTT)
	out.VerifierMS, out.StampHashes = ms(r.Verify), ex.StampHashes
	out.Verdict = "failed"
	if r.Passed {
		out.Verdict = "passed"
	}
	s.metrics.total.WithLabelValues("challenger", out.Verdict).Inc()
	if key := s.deps.Host.Peerstore().PrivKey(s.self); key != nil {
		att, err := challenge.NewAttestation(key, id, r, out.At)
		if err == nil {
			out.Attestation = json.RawMessage(att.Encode())
			if err := challenge.SendAttestation(st, att); err != nil {
				s.log.Warn("attestation not delivered", "peer_id", id, "err", err)
			}
		}
	}
	s.remember(id, out)
	s.log.Info("challenge", "peer_id", id, "verdict", out.Verdict, "verified_tflops", out.VerifiedTFLOPS, "claimed_tflops", out.ClaimedTFLOPS, "failed", out.Failed)
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func (s *Service) remember(id peer.ID, r api.ChallengeResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verdicts[id] = r
	if len(s.verdicts) > 4096 {
		var oldest peer.ID
		for k, v := range s.verdicts {
			if oldest == "" || v.At.Before(s.verdicts[oldest].At) {
				oldest = k
			}
		}
		delete(s.verdicts, oldest)
	}
}

// Verified is what this node knows verified of a rig: its own last verdict on it (a
// refusal counts as nothing), or for this node itself the best attestation it received.
func (s *Service) Verified(peerID string) *api.P2PVerified {
	id, err := peer.Decode(peerID)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == s.self {
		var best *challenge.Attestation
		for _, a := range s.received {
			if a.Passed && (best == nil || a.TFLOPS > best.TFLOPS) {
				best = a
			}
		}
		if best == nil {
			return nil
		}
		return &api.P2PVerified{TFLOPS: best.TFLOPS, Passed: true, Precision: string(best.Precision), N: best.N, By: best.Challenger, At: best.Time}
	}
	v, ok := s.verdicts[id]
	if !ok || v.Verdict == "refused" {
		return nil
	}
	return &api.P2PVerified{TFLOPS: v.VerifiedTFLOPS, Passed: v.Passed, Failed: v.Failed, Precision: v.Precision, N: v.N, By: s.self.String(), At: v.At}
}

// Received are the attestations this rig holds about itself, newest first.
func (s *Service) Received() []*challenge.Attestation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*challenge.Attestation, 0, len(s.received))
	for _, a := range s.received {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out
}

type metrics struct {
	total    *prometheus.CounterVec
	verified *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpunode_challenges_total",
			Help: "Capacity challenges, as challenger (result passed, failed, refused, error) and as rig (answered, refused, error)."}, []string{"role", "result"}),
		verified: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpunode_verified_tflops",
			Help: "This rig's throughput as the last passing attestation a challenger sent it verified, in TFLOPS."}, []string{"precision"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.total, m.verified} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("challenge metrics: %w", err)
			}
		}
	}
	return m, nil
}
