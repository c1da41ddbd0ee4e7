// Package sealkey delivers a sealed checkpoint's key (job/seal) from the provider to the
// job's drawn validators over libp2p, protocol /gpunode/sealkey/1.0.0.
//
// A validator opens a stream to the provider and sends one fixed-size request for a job,
// signed by its chain key over the job, an expiry and both peer IDs. The provider
// recovers the signer, checks with the contract that it is a drawn validator of that job,
// and answers with the job's key wrapped to the signer's public key (ECIES), or with a
// status and a reason and no key. The validator unwraps the key and checks it against the
// keccak256(K) committed on chain. A peer that is not a drawn validator gets nothing; a
// request copied by another peer names the wrong peer and does not check; the wrapped key
// opens only with the validator's private key. Every peer is rate limited, the node as a
// whole bounds the requests in flight, and every stream has a deadline.
package sealkey

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/gpunode/gpunode/job/seal"
)

// Protocol is the key delivery protocol.
const Protocol protocol.ID = "/gpunode/sealkey/1.0.0"

// ErrUnknownJob is what Keys returns for a job this node did not seal.
var ErrUnknownJob = errors.New("no sealed checkpoint for this job")

// ErrRefused wraps a provider's answer without a key.
var ErrRefused = errors.New("key request refused")

// Keys holds the keys of the checkpoints this node sealed.
type Keys interface {
	// SealKey returns a job's key and binding, or an error wrapping ErrUnknownJob.
	SealKey(ctx context.Context, jobID *big.Int) (seal.Key, seal.Binding, error)
}

// Draw tells whether an account is a drawn validator of a job (the contract's draw).
type Draw interface {
	IsDrawn(ctx context.Context, jobID *big.Int, validator common.Address) (bool, error)
}

// Config bounds what peers may ask of the provider.
type Config struct {
	// Rate and Burst are the requests per second one peer may make, and its burst.
	Rate  float64
	Burst int
	// MaxInFlight bounds the requests being answered at once, for all peers.
	MaxInFlight int
	// Timeout bounds one stream, read to answer.
	Timeout time.Duration
	// MaxAhead is how far in the future a request's expiry may be.
	MaxAhead time.Duration
}

// Default returns limits a validator never reaches: it asks once per job.
func Default() Config {
	return Config{Rate: 0.5, Burst: 4, MaxInFlight: 16, Timeout: 10 * time.Second, MaxAhead: 5 * time.Minute}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.Rate <= 0 || c.Burst < 1 {
		errs = append(errs, errors.New("sealkey: rate and burst must be positive"))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, errors.New("sealkey: max in flight must be positive"))
	}
	if c.Timeout <= 0 || c.MaxAhead <= 0 {
		errs = append(errs, errors.New("sealkey: timeout and max ahead must be positive"))
	}
	return errs
}

// maxTrackedPeers bounds the per-peer buckets; past it, new peers share one bucket.
const maxTrackedPeers = 1024

// Server answers key requests on a host.
type Server struct {
	h     host.Host
	cfg   Config
	keys  Keys
	draw  Draw
	log   *slog.Logger
	now   func() time.Time
	slots chan struct{}

	mu       sync.Mutex
	peers    map[peer.ID]*rate.Limiter
	overflow *rate.Limiter

	answers *prometheus.CounterVec
}

// NewServer answers key requests on h from keys, checking requesters against draw. Its
// counters are registered with reg when it is not nil.
func NewServer(h host.Host, cfg Config, keys Keys, draw Draw, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Server{h: h, cfg: cfg, keys: keys, draw: draw, log: log.With("component", "sealkey"), now: time.Now,
		slots: make(chan struct{}, cfg.MaxInFlight), peers: map[peer.ID]*rate.Limiter{},
		overflow: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_sealkey_answers_total",
			Help: "Key requests answered by this provider, by status.",
		}, []string{"status"}),
	}
	if reg != nil {
		if err := reg.Register(s.answers); err != nil {
			return nil, fmt.Errorf("sealkey metrics: %w", err)
		}
	}
	h.SetStreamHandler(Protocol, s.handle)
	return s, nil
}

// Close stops answering.
func (s *Server) Close() { s.h.RemoveStreamHandler(Protocol) }

func (s *Server) allow(id peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.peers[id]
	if !ok {
		if len(s.peers) >= maxTrackedPeers {
			// Forget peers whose buckets have refilled: a new bucket is the same.
			for pid, pl := range s.peers {
				if pl.TokensAt(s.now()) >= float64(s.cfg.Burst) {
					delete(s.peers, pid)
				}
			}
		}
		if len(s.peers) >= maxTrackedPeers {
			l = s.overflow
		} else {
			l = rate.NewLimiter(rate.Limit(s.cfg.Rate), s.cfg.Burst)
			s.peers[id] = l
		}
	}
	return l.AllowN(s.now(), 1)
}

func (s *Server) handle(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(s.cfg.Timeout))
	from := st.Conn().RemotePeer()
	var resp Response
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
		if !s.allow(from) {
			resp = Response{Status: StatusLimited, Reason: fmt.Sprintf("rate limited: at most %g key requests per second from one peer; ask again later", s.cfg.Rate)}
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		resp = s.answer(ctx, st, from)
		cancel()
	default:
		resp = Response{Status: StatusLimited, Reason: "busy: too many key requests at once; ask again later"}
	}
	s.answers.WithLabelValues(resp.Status.String()).Inc()
	if resp.Status != StatusOK {
		s.log.Debug("key request refused", "peer", from, "status", resp.Status, "reason", resp.Reason)
	}
	b, err := resp.Encode()
	if err != nil {
		st.Reset()
		return
	}
	if _, err := st.Write(b); err != nil {
		st.Reset()
	}
}

func (s *Server) answer(ctx context.Context, st network.Stream, from peer.ID) Response {
	refuse := func(status Status, format string, a ...any) Response {
		return Response{Status: status, Reason: fmt.Sprintf(format, a...)}
	}
	req, err := ReadRequest(st)
	if err != nil {
		return refuse(StatusBad, "%v", err)
	}
	now := s.now()
	if exp := time.Unix(req.Expires, 0); exp.Before(now) {
		return refuse(StatusExpired, "request expired at %s", exp.UTC().Format(time.RFC3339))
	} else if exp.After(now.Add(s.cfg.MaxAhead)) {
		return refuse(StatusExpired, "request expiry %s is more than %s ahead", exp.UTC().Format(time.RFC3339), s.cfg.MaxAhead)
	}
	pub, err := req.Signer(from, s.h.ID())
	if err != nil {
		return refuse(StatusBad, "%v", err)
	}
	validator := crypto.PubkeyToAddress(*pub)
	k, b, err := s.keys.SealKey(ctx, req.JobID)
	if errors.Is(err, ErrUnknownJob) {
		return refuse(StatusUnknownJob, "no sealed checkpoint for job %s here", req.JobID)
	}
	if err != nil {
		s.log.Warn("key request: keys", "job_id", req.JobID.String(), "err", err)
		return refuse(StatusUnavailable, "key store unavailable; ask again later")
	}
	if b.ChainID.Cmp(req.ChainID) != 0 || b.Contract != req.Contract {
		return refuse(StatusBad, "job %s is on contract %s of chain %s", req.JobID, b.Contract.Hex(), b.ChainID)
	}
	drawn, err := s.draw.IsDrawn(ctx, req.JobID, validator)
	if err != nil {
		s.log.Warn("key request: draw", "job_id", req.JobID.String(), "validator", validator.Hex(), "err", err)
		return refuse(StatusUnavailable, "cannot check the draw now; ask again later")
	}
	if !drawn {
		return refuse(StatusNotDrawn, "%s is not a drawn validator of job %s", validator.Hex(), req.JobID)
	}
	w, err := seal.WrapKey(k, pub, b)
	if err != nil {
		return refuse(StatusUnavailable, "wrap key: %v", err)
	}
	s.log.Info("sealed checkpoint key delivered", "job_id", req.JobID.String(), "validator", validator.Hex(), "peer", from)
	return Response{Status: StatusOK, Wrapped: w}
}

// Fetch asks provider, over h, for the key of the job b names, as the validator whose
// chain key is priv, and checks it against the commitment on chain. A refusal wraps
// ErrRefused with the provider's status and reason; a key that does not match the
// commitment wraps seal.ErrWrongKey.
func Fetch(ctx context.Context, h host.Host, provider peer.ID, b seal.Binding, commitment common.Hash, priv *ecdsa.PrivateKey) (seal.Key, error) {
	if err := b.Check(); err != nil {
		return seal.Key{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, Default().Timeout)
	defer cancel()
	req := Request{ChainID: b.ChainID, Contract: b.Contract, JobID: b.JobID, Expires: expiry(time.Now(), time.Minute)}
	if err := req.Sign(priv, h.ID(), provider); err != nil {
		return seal.Key{}, err
	}
	wire, err := req.Encode()
	if err != nil {
		return seal.Key{}, err
	}
	st, err := h.NewStream(ctx, provider, Protocol)
	if err != nil {
		return seal.Key{}, fmt.Errorf("key of job %s from %s: %w", b.JobID, provider, err)
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if _, err := st.Write(wire); err != nil {
		st.Reset()
		return seal.Key{}, fmt.Errorf("key of job %s from %s: send: %w", b.JobID, provider, err)
	}
	_ = st.CloseWrite()
	resp, err := ReadResponse(st)
	if err != nil {
		st.Reset()
		return seal.Key{}, fmt.Errorf("key of job %s from %s: %w", b.JobID, provider, err)
	}
	if resp.Status != StatusOK {
		return seal.Key{}, fmt.Errorf("key of job %s from %s: %w: %s: %s", b.JobID, provider, ErrRefused, resp.Status, resp.Reason)
	}
	k, err := seal.UnwrapKey(resp.Wrapped, priv, b)
	if err != nil {
		return seal.Key{}, fmt.Errorf("key of job %s from %s: %w", b.JobID, provider, err)
	}
	if !k.Matches(commitment) {
		return seal.Key{}, fmt.Errorf("key of job %s from %s: %w: it does not match the commitment %s on chain", b.JobID, provider, seal.ErrWrongKey, commitment.Hex())
	}
	return k, nil
}

// Client asks providers for keys as one validator: its libp2p host and its chain key
// (validator.KeySource).
type Client struct {
	Host    host.Host
	Account *ecdsa.PrivateKey
}

// Key asks the provider at providerPeer for the key of the job b names and checks it
// against keyHash.
func (c Client) Key(ctx context.Context, providerPeer string, b seal.Binding, keyHash common.Hash) (seal.Key, error) {
	id, err := peer.Decode(providerPeer)
	if err != nil {
		return seal.Key{}, fmt.Errorf("provider peer %q: %w", providerPeer, err)
	}
	return Fetch(ctx, c.Host, id, b, keyHash, c.Account)
}
