package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// OfferProtocol is the direct offer protocol: one length-prefixed JSON Offer from the
// researcher or pool, one length-prefixed JSON Decision back, then the stream closes.
const OfferProtocol protocol.ID = "/gpunode/offer/1.0.0"

// OfferVersion is the Offer and Decision format version.
const OfferVersion = 1

// MaxOfferSize bounds an offer or a decision on the wire.
const MaxOfferSize = 4 << 10

// Offer proposes a job to one node.
type Offer struct {
	Version int `json:"v"`
	// ID is chosen by the sender to match the answer to its request.
	ID string `json:"id"`
	// ManifestCID is the job manifest on IPFS.
	ManifestCID string `json:"manifest_cid"`
	// GPUs is how many GPUs the job needs (0: a CPU job).
	GPUs int `json:"gpus"`
	// PricePerGPUHour is the offered price in wei per GPU-hour, a decimal integer.
	PricePerGPUHour string `json:"price_per_gpu_hour"`
	// MaxDurationSeconds bounds the job's run time.
	MaxDurationSeconds int64 `json:"max_duration_s"`
	// JobID is the job's on-chain id, if it is already posted (0x-hex or decimal).
	JobID string `json:"job_id,omitempty"`
	// ExpiresAt (unix seconds) is when the offer lapses.
	ExpiresAt int64 `json:"expires_at"`
}

// Decision answers an offer.
type Decision struct {
	Version  int    `json:"v"`
	ID       string `json:"id"`
	Accepted bool   `json:"accepted"`
	// Reason says why, in words for the sender's log.
	Reason string `json:"reason"`
}

// Check validates an offer's fields.
func (o *Offer) Check() error {
	if o.Version != OfferVersion {
		return fmt.Errorf("version %d: want %d", o.Version, OfferVersion)
	}
	if o.ID == "" || len(o.ID) > 64 || !printableASCII(o.ID) {
		return errors.New("id: want 1..64 printable ASCII characters")
	}
	if len(o.ManifestCID) > 128 {
		return errors.New("manifest_cid: too long")
	}
	if _, err := cid.Decode(o.ManifestCID); err != nil {
		return fmt.Errorf("manifest_cid: %w", err)
	}
	if o.GPUs < 0 || o.GPUs > 1024 {
		return fmt.Errorf("gpus: %d out of range 0..1024", o.GPUs)
	}
	if _, ok := parseWei(o.PricePerGPUHour); !ok {
		return fmt.Errorf("price_per_gpu_hour: %q is not a decimal integer of wei", o.PricePerGPUHour)
	}
	if o.MaxDurationSeconds < 1 || o.MaxDurationSeconds > 366*24*3600 {
		return fmt.Errorf("max_duration_s: %d out of range", o.MaxDurationSeconds)
	}
	if len(o.JobID) > 80 || !printableASCII(o.JobID) {
		return errors.New("job_id: too long or not printable")
	}
	if o.ExpiresAt <= 0 {
		return errors.New("expires_at: must be set")
	}
	return nil
}

// DecodeOffer parses an offer strictly: one JSON object, no unknown fields, checked.
func DecodeOffer(b []byte) (Offer, error) {
	var o Offer
	if len(b) > MaxOfferSize {
		return o, fmt.Errorf("offer: %d bytes, at most %d", len(b), MaxOfferSize)
	}
	if err := decodeStrict(b, &o); err != nil {
		return Offer{}, fmt.Errorf("offer: %w", err)
	}
	if err := o.Check(); err != nil {
		return Offer{}, fmt.Errorf("offer: %w", err)
	}
	return o, nil
}

// ReadOffer reads one framed offer from r.
func ReadOffer(r io.Reader) (Offer, error) {
	b, err := readFrame(r, MaxOfferSize)
	if err != nil {
		return Offer{}, fmt.Errorf("offer: %w", err)
	}
	return DecodeOffer(b)
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// readFrame reads one uvarint-length-prefixed frame of at most limit bytes.
func readFrame(r io.Reader, limit uint64) ([]byte, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = bufio.NewReaderSize(r, 16)
		r = br.(io.Reader)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("read length: %w", err)
	}
	if n > limit {
		return nil, fmt.Errorf("frame of %d bytes, at most %d", n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	return b, nil
}

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxOfferSize {
		return fmt.Errorf("frame of %d bytes, at most %d", len(b), MaxOfferSize)
	}
	return writeRaw(w, b)
}

func writeRaw(w io.Writer, b []byte) error {
	_, err := w.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...))
	return err
}

func parseWei(s string) (*big.Int, bool) {
	if s == "" || len(s) > 78 || (len(s) > 1 && s[0] == '0') {
		return nil, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return nil, false
		}
	}
	return new(big.Int).SetString(s, 10)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// OfferHandler decides an offer that passed the built-in checks (well-formed, not
// expired, enough free GPUs, price at or above the ask). ctx ends at the offer timeout.
type OfferHandler func(ctx context.Context, from peer.ID, o Offer) Decision

func (n *Network) handleOffer(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(time.Duration(n.cfg.OfferTimeout)))
	ctx, cancel := context.WithTimeout(n.ctx(), time.Duration(n.cfg.OfferTimeout))
	defer cancel()
	from := s.Conn().RemotePeer()
	if n.guard.graylisted(from) {
		n.metrics.refused.WithLabelValues(refusedGraylisted).Inc()
		s.Reset()
		return
	}
	o, err := ReadOffer(s)
	var d Decision
	var reason string
	switch {
	case err != nil:
		n.metrics.offers.WithLabelValues("invalid").Inc()
		n.log.Debug("invalid offer", "peer", from, "err", err)
		d, reason = Decision{Version: OfferVersion, Reason: err.Error()}, refusedInvalid
		n.guard.strike(from, refusedInvalid)
	default:
		// The bucket is checked after the read: the answer names the offer it refuses,
		// and reading at most MaxOfferSize bytes costs the node nothing worth saving.
		if reason = n.guard.allowOffer(from); reason != "" {
			d = Decision{Reason: refusal(reason, n.cfg)}
		} else {
			d, reason = n.decide(ctx, from, o)
		}
		label := "declined"
		if d.Accepted {
			label = "accepted"
		}
		n.metrics.offers.WithLabelValues(label).Inc()
		n.log.Debug("offer", "peer", from, "offer_id", o.ID, "manifest", o.ManifestCID, "accepted", d.Accepted, "reason", d.Reason)
	}
	if reason != "" {
		n.metrics.refused.WithLabelValues(reason).Inc()
	}
	d.Version, d.ID = OfferVersion, o.ID
	if len(d.Reason) > 512 {
		d.Reason = d.Reason[:512]
	}
	if err := writeFrame(s, d); err != nil {
		s.Reset()
	}
}

// refusal words a refusal that never reached evaluation.
func refusal(reason string, cfg Config) string {
	switch reason {
	case refusedRateLimited:
		return fmt.Sprintf("rate limited: this node evaluates at most %g offers per second from one peer (bursts of %d); offer again later", cfg.OfferRate, cfg.OfferBurst)
	case refusedBusy:
		return fmt.Sprintf("busy: this node evaluates at most %g offers per second in all; offer again later", cfg.OfferRateTotal)
	}
	return reason
}

// decide evaluates an offer, returning the decision and, if it is not accepted, the
// refusal reason for the metrics.
func (n *Network) decide(ctx context.Context, from peer.ID, o Offer) (Decision, string) {
	decline := func(reason, format string, args ...any) (Decision, string) {
		return Decision{Reason: fmt.Sprintf(format, args...)}, reason
	}
	if time.Unix(o.ExpiresAt, 0).Before(n.now()) {
		return decline(refusedExpired, "offer expired at %s", time.Unix(o.ExpiresAt, 0).UTC().Format(time.RFC3339))
	}
	c, err := n.deps.Snapshot(ctx)
	if err != nil {
		return decline(refusedCapacity, "capacity unknown: %v", err)
	}
	if o.GPUs > c.FreeGPUs {
		return decline(refusedCapacity, "offer needs %d GPUs, %d free", o.GPUs, c.FreeGPUs)
	}
	ask, ok1 := parseWei(c.PricePerGPUHour)
	bid, _ := parseWei(o.PricePerGPUHour)
	if ok1 && bid.Cmp(ask) < 0 {
		return decline(refusedPrice, "price %s wei/GPU-hour is below the ask of %s", o.PricePerGPUHour, c.PricePerGPUHour)
	}
	if n.deps.Offers == nil {
		return Decision{Accepted: true, Reason: "terms acceptable"}, ""
	}
	d := n.deps.Offers(ctx, from, o)
	if !d.Accepted {
		return d, refusedDeclined
	}
	return d, ""
}

// SendOffer sends o to peer id and waits for its decision, within the offer timeout.
func (n *Network) SendOffer(ctx context.Context, id peer.ID, o Offer) (Decision, error) {
	if err := o.Check(); err != nil {
		return Decision{}, fmt.Errorf("offer to %s: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.OfferTimeout))
	defer cancel()
	s, err := n.host.NewStream(ctx, id, OfferProtocol)
	if err != nil {
		return Decision{}, fmt.Errorf("offer to %s: %w", id, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := writeFrame(s, o); err != nil {
		s.Reset()
		return Decision{}, fmt.Errorf("offer to %s: send: %w", id, err)
	}
	_ = s.CloseWrite()
	b, err := readFrame(s, MaxOfferSize)
	if err != nil {
		s.Reset()
		return Decision{}, fmt.Errorf("offer to %s: answer: %w", id, err)
	}
	var d Decision
	if err := decodeStrict(b, &d); err != nil {
		return Decision{}, fmt.Errorf("offer to %s: answer: %w", id, err)
	}
	if d.Version != OfferVersion || d.ID != o.ID {
		return Decision{}, fmt.Errorf("offer to %s: answer for offer %q version %d", id, d.ID, d.Version)
	}
	return d, nil
}
