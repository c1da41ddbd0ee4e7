package poolpay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"regexp"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/gpunode/gpunode/node/pool"
)

// Protocol is how a member asks its coordinator for its payouts: one signed Request, one
// signed Answer, in node/pool's framing. A member learns only its own shares and payouts:
// the coordinator answers for the payout account the asking peer reports in its
// heartbeats, and refuses a peer that is not its member.
const Protocol protocol.ID = "/gpunode/pool/payouts/1.0.0"

// Kinds of the protocol's messages.
const (
	KindRequest = "payouts_request"
	KindAnswer  = "payouts"
)

// Page sizes: an answer stays well inside pool.MaxFrame (a proof is at most 14 hashes for
// pool.MaxMembers members).
const (
	maxSharesPerAnswer  = 40
	maxPayoutsPerAnswer = 6
	maxProof            = 32
	maxPages            = 10_000
)

// Request asks the coordinator for the sender's payouts, a page at a time.
type Request struct {
	Version     int    `json:"version"`
	Coordinator string `json:"coordinator"`
	Member      string `json:"member"`
	// Time is when it was sent (unix ms).
	Time int64 `json:"time"`
	// FromShare and FromEpoch page the answer: the member's shares from this index
	// (oldest first), its payouts from this epoch.
	FromShare int    `json:"from_share"`
	FromEpoch uint64 `json:"from_epoch"`
}

// WireShare is a member's share of one job.
type WireShare struct {
	JobID      string  `json:"job_id"`
	Wei        string  `json:"wei"`
	GPUSeconds float64 `json:"gpu_seconds"`
	Score      float64 `json:"score"`
	BookedAt   int64   `json:"booked_at"` // unix seconds
	// Epoch pays it; nil while only booked.
	Epoch *uint64 `json:"epoch,omitempty"`
}

// WirePayout is the member's claim in one published epoch.
type WirePayout struct {
	Epoch   uint64        `json:"epoch"`
	Wei     string        `json:"wei"`
	Proof   []common.Hash `json:"proof"`
	Claimed bool          `json:"claimed"`
}

// Answer is one page of a member's payouts, or the coordinator's refusal.
type Answer struct {
	Version     int    `json:"version"`
	Coordinator string `json:"coordinator"`
	Member      string `json:"member"`
	Time        int64  `json:"time"`
	// Refused says why the coordinator gives the peer nothing (not its member, …).
	Refused string `json:"refused,omitempty"`
	// Account is the member's payout address, Contract the pool's PoolPayouts.
	Account  common.Address `json:"account"`
	Contract common.Address `json:"contract"`
	FeeBPS   uint32         `json:"fee_bps"`
	// NextPublish is when the coordinator publishes booked shares next (unix s, 0: none due).
	NextPublish int64        `json:"next_publish,omitempty"`
	Shares      []WireShare  `json:"shares,omitempty"`
	MoreShares  bool         `json:"more_shares,omitempty"`
	Payouts     []WirePayout `json:"payouts,omitempty"`
	// NextEpoch is where the next page of payouts starts, when MorePayouts.
	MorePayouts bool   `json:"more_payouts,omitempty"`
	NextEpoch   uint64 `json:"next_epoch,omitempty"`
}

const maxClockSkew = 5 * time.Minute

var (
	jobIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	weiRe   = regexp.MustCompile(`^(0|[1-9][0-9]{0,77})$`)
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", pool.ErrMalformed, fmt.Sprintf(format, args...))
}

func checkPeers(coordinator, member string) error {
	if _, err := peer.Decode(coordinator); err != nil {
		return malformed("coordinator %q: %v", coordinator, err)
	}
	if _, err := peer.Decode(member); err != nil {
		return malformed("member %q: %v", member, err)
	}
	return nil
}

func checkTime(ms int64, now time.Time) error {
	if d := time.UnixMilli(ms).Sub(now); d > maxClockSkew || d < -maxClockSkew {
		return malformed("sent %s from this clock", d.Round(time.Second))
	}
	return nil
}

// Validate checks a request's fields (not its signature).
func (r Request) Validate(now time.Time) error {
	if r.Version != pool.Version {
		return malformed("payouts request version %d, want %d", r.Version, pool.Version)
	}
	if err := checkPeers(r.Coordinator, r.Member); err != nil {
		return err
	}
	if r.FromShare < 0 || r.FromShare > math.MaxInt32 {
		return malformed("from_share %d", r.FromShare)
	}
	return checkTime(r.Time, now)
}

// Validate checks an answer's fields (not its signature).
func (a Answer) Validate(now time.Time) error {
	if a.Version != pool.Version {
		return malformed("payouts answer version %d, want %d", a.Version, pool.Version)
	}
	if err := checkPeers(a.Coordinator, a.Member); err != nil {
		return err
	}
	if err := checkTime(a.Time, now); err != nil {
		return err
	}
	if len(a.Refused) > 512 {
		return malformed("refusal of %d bytes", len(a.Refused))
	}
	if a.Refused != "" {
		return nil
	}
	switch {
	case a.Account == (common.Address{}) || a.Contract == (common.Address{}):
		return malformed("answer without account or contract")
	case a.FeeBPS > pool.MaxBPS:
		return malformed("fee %d", a.FeeBPS)
	case len(a.Shares) > maxSharesPerAnswer || len(a.Payouts) > maxPayoutsPerAnswer:
		return malformed("%d shares, %d payouts in one answer", len(a.Shares), len(a.Payouts))
	case a.NextPublish < 0:
		return malformed("next publish %d", a.NextPublish)
	}
	for _, s := range a.Shares {
		switch {
		case !jobIDRe.MatchString(s.JobID):
			return malformed("share of job %q", s.JobID)
		case !weiRe.MatchString(s.Wei):
			return malformed("job %s: share %q", s.JobID, s.Wei)
		case math.IsNaN(s.GPUSeconds) || math.IsInf(s.GPUSeconds, 0) || s.GPUSeconds < 0,
			math.IsNaN(s.Score) || math.IsInf(s.Score, 0) || s.Score < 0:
			return malformed("job %s: work %v × %v", s.JobID, s.GPUSeconds, s.Score)
		case s.BookedAt < 0:
			return malformed("job %s: booked at %d", s.JobID, s.BookedAt)
		}
	}
	last := int64(-1)
	for _, p := range a.Payouts {
		switch {
		case !weiRe.MatchString(p.Wei) || p.Wei == "0":
			return malformed("epoch %d: payout %q", p.Epoch, p.Wei)
		case len(p.Proof) > maxProof:
			return malformed("epoch %d: proof of %d hashes", p.Epoch, len(p.Proof))
		case p.Epoch > math.MaxInt64 || int64(p.Epoch) <= last:
			return malformed("epochs out of order at %d", p.Epoch)
		}
		last = int64(p.Epoch)
	}
	if a.MorePayouts && a.NextEpoch <= uint64(last) {
		return malformed("next epoch %d does not advance", a.NextEpoch)
	}
	return nil
}

// Members tells the coordinator which payout account a peer reports in its heartbeats;
// false for a peer that is not its member.
type Members func(peer.ID) (common.Address, bool)

// Server answers members' payout requests on the coordinator's host.
type Server struct {
	h       host.Host
	key     crypto.PrivKey
	view    *View
	members Members
	log     *slog.Logger
	now     func() time.Time
}

// Serve answers Protocol on h (whose identity key is key) from view, for the peers
// members knows.
func Serve(h host.Host, key crypto.PrivKey, view *View, members Members, log *slog.Logger) (*Server, error) {
	if id, err := peer.IDFromPrivateKey(key); err != nil || id != h.ID() {
		return nil, errors.New("pool payouts: the key is not the host's identity")
	}
	s := &Server{h: h, key: key, view: view, members: members, log: log.With("component", "poolpay"), now: time.Now}
	h.SetStreamHandler(Protocol, s.handle)
	return s, nil
}

// Close stops answering.
func (s *Server) Close() { s.h.RemoveStreamHandler(Protocol) }

const streamTimeout = 20 * time.Second

func (s *Server) handle(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(streamTimeout))
	from := st.Conn().RemotePeer()
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	a := s.answer(ctx, st, from)
	signed, err := pool.Sign(s.key, KindAnswer, a)
	if err == nil {
		err = pool.WriteFrame(st, signed)
	}
	if err != nil {
		s.log.Warn("payouts answer not sent", "peer", from, "err", err)
		st.Reset()
	}
}

// answer reads and checks the request on st from peer from, and builds its answer.
func (s *Server) answer(ctx context.Context, st network.Stream, from peer.ID) Answer {
	now := s.now()
	a := Answer{Version: pool.Version, Coordinator: s.h.ID().String(), Member: from.String(), Time: now.UnixMilli()}
	req, err := s.open(st, from, now)
	if err != nil {
		s.log.Warn("payouts request refused", "peer", from, "err", err)
		a.Refused = err.Error()
		return a
	}
	account, ok := s.members(from)
	if !ok {
		s.log.Warn("payouts request refused: not a member", "peer", from)
		a.Refused = "not a member of this pool: no heartbeat from " + from.String()
		return a
	}
	page, err := s.view.memberPage(ctx, account, req.FromShare, req.FromEpoch)
	if err != nil {
		s.log.Warn("payouts request: ledger", "peer", from, "err", err)
		a.Refused = "the coordinator cannot read its ledger now: " + err.Error()
		return a
	}
	page.Version, page.Coordinator, page.Member, page.Time = a.Version, a.Coordinator, a.Member, a.Time
	return page
}

// open reads one request and checks that from signed it, for this coordinator.
func (s *Server) open(st network.Stream, from peer.ID, now time.Time) (Request, error) {
	signed, err := pool.ReadFrame(st)
	if err != nil {
		return Request{}, err
	}
	return OpenRequest(signed, from, s.h.ID(), now)
}

// OpenRequest checks a signed request from peer from to coordinator, and decodes it.
func OpenRequest(signed pool.Signed, from, coordinator peer.ID, now time.Time) (Request, error) {
	var r Request
	if err := signed.Open(KindRequest, from, &r); err != nil {
		return Request{}, err
	}
	if err := r.Validate(now); err != nil {
		return Request{}, err
	}
	if r.Member != from.String() {
		return Request{}, fmt.Errorf("%w: request names member %s, sent by %s", pool.ErrForged, r.Member, from)
	}
	if r.Coordinator != coordinator.String() {
		return Request{}, fmt.Errorf("%w: request for coordinator %s", pool.ErrMalformed, r.Coordinator)
	}
	return r, nil
}

// OpenAnswer checks a signed answer from coordinator to member, and decodes it.
func OpenAnswer(signed pool.Signed, coordinator, member peer.ID, now time.Time) (Answer, error) {
	var a Answer
	if err := signed.Open(KindAnswer, coordinator, &a); err != nil {
		return Answer{}, err
	}
	if err := a.Validate(now); err != nil {
		return Answer{}, err
	}
	if a.Coordinator != coordinator.String() || a.Member != member.String() {
		return Answer{}, fmt.Errorf("%w: answer from %s to %s", pool.ErrForged, a.Coordinator, a.Member)
	}
	return a, nil
}

// ErrRefused means the coordinator refused to answer.
var ErrRefused = errors.New("the coordinator refused")

// Fetch asks coordinator (over h, whose identity key is key) for every page of this
// member's payouts and returns them as one answer.
func Fetch(ctx context.Context, h host.Host, key crypto.PrivKey, coordinator peer.ID) (Answer, error) {
	var all Answer
	req := Request{Version: pool.Version, Coordinator: coordinator.String(), Member: h.ID().String()}
	sharesDone, payoutsDone := false, false
	for page := 0; ; page++ {
		if page == maxPages {
			return Answer{}, fmt.Errorf("pool payouts: more than %d pages from %s", maxPages, coordinator)
		}
		req.Time = time.Now().UnixMilli()
		a, err := ask(ctx, h, key, coordinator, req)
		if err != nil {
			return Answer{}, err
		}
		if page == 0 {
			all = a
			all.Shares, all.Payouts, all.MoreShares, all.MorePayouts, all.NextEpoch = nil, nil, false, false, 0
		} else if a.Account != all.Account || a.Contract != all.Contract {
			return Answer{}, fmt.Errorf("pool payouts: %s changed account or contract between pages", coordinator)
		}
		if !sharesDone {
			all.Shares = append(all.Shares, a.Shares...)
			req.FromShare += len(a.Shares)
			sharesDone = !a.MoreShares || len(a.Shares) == 0
		}
		if !payoutsDone {
			all.Payouts = append(all.Payouts, a.Payouts...)
			req.FromEpoch = a.NextEpoch
			payoutsDone = !a.MorePayouts
		}
		if sharesDone && payoutsDone {
			return all, nil
		}
	}
}

// ask sends one request and reads its answer.
func ask(ctx context.Context, h host.Host, key crypto.PrivKey, coordinator peer.ID, req Request) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	st, err := h.NewStream(ctx, coordinator, Protocol)
	if err != nil {
		return Answer{}, fmt.Errorf("pool payouts: reach coordinator %s: %w", coordinator, err)
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	signed, err := pool.Sign(key, KindRequest, req)
	if err != nil {
		return Answer{}, err
	}
	if err := pool.WriteFrame(st, signed); err != nil {
		st.Reset()
		return Answer{}, fmt.Errorf("pool payouts: send to %s: %w", coordinator, err)
	}
	resp, err := pool.ReadFrame(st)
	if err != nil {
		return Answer{}, fmt.Errorf("pool payouts: answer from %s: %w", coordinator, err)
	}
	a, err := OpenAnswer(resp, coordinator, h.ID(), time.Now())
	if err != nil {
		return Answer{}, fmt.Errorf("pool payouts: answer from %s: %w", coordinator, err)
	}
	if a.Refused != "" {
		return Answer{}, fmt.Errorf("%w: %s", ErrRefused, a.Refused)
	}
	return a, nil
}

// Owed sums a member's answer: booked (unpublished), published unclaimed, claimed.
func (a Answer) Owed() (booked, published, claimed *big.Int) {
	booked, published, claimed = new(big.Int), new(big.Int), new(big.Int)
	for _, s := range a.Shares {
		if s.Epoch == nil {
			if v, ok := new(big.Int).SetString(s.Wei, 10); ok {
				booked.Add(booked, v)
			}
		}
	}
	for _, p := range a.Payouts {
		v, ok := new(big.Int).SetString(p.Wei, 10)
		if !ok {
			continue
		}
		if p.Claimed {
			claimed.Add(claimed, v)
		} else {
			published.Add(published, v)
		}
	}
	return booked, published, claimed
}
