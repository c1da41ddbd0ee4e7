package pool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/runtime"
)

// Wire format of the pool protocols: one frame per message, a 4-byte big-endian length
// then a JSON Signed of at most MaxFrame bytes. A Signed carries the message's kind, its
// JSON body and the sender's libp2p signature over domain‖kind‖body. The sender is named
// in the body (Member, Coordinator) and must be both the key that signed and the peer at
// the other end of the stream: a member cannot speak for another, nor a peer for the
// coordinator.

// Version is the wire format version of every message.
const Version = 1

// MaxFrame bounds one message on the wire.
const MaxFrame = 16 << 10

const signDomain = "gpunode/pool/v1\x00"

// Kinds of message.
const (
	KindHeartbeat = "heartbeat"
	KindDispatch  = "dispatch"
	KindAck       = "ack"
	KindResult    = "result"
)

// Signed is a message and its sender's signature.
type Signed struct {
	Kind string          `json:"kind"`
	Body json.RawMessage `json:"body"`
	Sig  []byte          `json:"sig"`
}

// Errors a receiver refuses a message with.
var (
	ErrMalformed = errors.New("malformed pool message")
	ErrForged    = errors.New("pool message not signed by the peer it names")
)

// Heartbeat is a member's inventory, sent to the coordinator every heartbeat interval.
type Heartbeat struct {
	Version int `json:"version"`
	// Pool is the coordinator's peer ID: the pool the member reports to.
	Pool string `json:"pool"`
	// Member is the sender's peer ID, Account its payout address.
	Member  string         `json:"member"`
	Account common.Address `json:"account"`
	// Seq increases with every heartbeat of a member's run; Time is when it was sent (unix ms).
	Seq  uint64 `json:"seq"`
	Time int64  `json:"time"`
	// GPUs and FreeGPUs count the member's GPUs, GPUModel names them; Score is its
	// benchmark's DL hashrate (TFLOPS), Verified its challenge-verified one (0 = none).
	GPUs     int     `json:"gpus"`
	FreeGPUs int     `json:"free_gpus"`
	GPUModel string  `json:"gpu_model,omitempty"`
	Score    float64 `json:"score"`
	Verified float64 `json:"verified,omitempty"`
	// Admission is the member's admission state: active, cordoned, draining, drained.
	Admission string `json:"admission"`
	// Running lists the dispatched jobs it runs now.
	Running []string `json:"running,omitempty"`
	// Datasets are the tags of the local datasets the member's policy shares (never
	// their paths): the coordinator dispatches a job that mounts one only to a member
	// that has it, and that member's policy still decides whether this sponsor may.
	Datasets []string `json:"datasets,omitempty"`
}

// MaxDatasets bounds the dataset tags of a heartbeat.
const MaxDatasets = 64

// Dispatch assigns a job the pool accepted on chain to a member.
type Dispatch struct {
	Version     int    `json:"version"`
	Coordinator string `json:"coordinator"`
	Member      string `json:"member"`
	// Seq increases with every dispatch of a coordinator's run; Time is when it was sent (unix ms).
	Seq  uint64 `json:"seq"`
	Time int64  `json:"time"`
	// JobID is the job's on-chain ID; ManifestCID and ManifestHash name its manifest.
	JobID        string `json:"job_id"`
	ManifestCID  string `json:"manifest_cid"`
	ManifestHash string `json:"manifest_hash"`
	// Deadline is when the result must be back with the coordinator (unix seconds).
	Deadline int64 `json:"deadline"`
	// Cluster is the member's place in a multi-rig job; nil for one rig.
	Cluster *runtime.Cluster `json:"cluster,omitempty"`
}

// Statuses of a Result.
const (
	// ResultDone: the member ran the job to its end; rank 0 of the job published its
	// checkpoint (CID, Hash), any other rank publishes nothing.
	ResultDone = "done"
	// ResultFailed: the member started the job and gives it back (Reason says why).
	ResultFailed = "failed"
	// ResultDeclined: the member acked the dispatch but then would not run the job
	// (its policy, a dry run…); the coordinator reassigns it at once.
	ResultDeclined = "declined"
)

// Result is a member's report on a job dispatched to it, sent to the coordinator on
// ResultProtocol. The coordinator answers with an Ack saying whether it took it.
type Result struct {
	Version     int    `json:"version"`
	Coordinator string `json:"coordinator"`
	Member      string `json:"member"`
	// Seq increases with every result of a member's run; Time is when it was sent (unix ms).
	Seq  uint64 `json:"seq"`
	Time int64  `json:"time"`
	// JobID is the job's on-chain ID; DispatchSeq the Seq of the dispatch it answers.
	JobID       string `json:"job_id"`
	DispatchSeq uint64 `json:"dispatch_seq"`
	// Status is done, failed or declined.
	Status string `json:"status"`
	// CID and Hash name the published checkpoint and its tree hash (rank 0, done).
	CID  string `json:"cid,omitempty"`
	Hash string `json:"hash,omitempty"`
	// Rank is the member's node rank in a multi-rig job (0 for one rig).
	Rank int `json:"rank"`
	// WallSeconds is how long the job ran on the member, GPUs how many it used.
	WallSeconds float64 `json:"wall_seconds"`
	GPUs        int     `json:"gpus"`
	// Reason says why a job failed or was declined.
	Reason string `json:"reason,omitempty"`
}

// Ack is a member's answer to a dispatch, or the coordinator's to a heartbeat or result.
type Ack struct {
	Version int `json:"version"`
	// From is the sender's peer ID; Seq echoes the message answered.
	From     string `json:"from"`
	Seq      uint64 `json:"seq"`
	JobID    string `json:"job_id,omitempty"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

var (
	cidRe   = regexp.MustCompile(`^[a-zA-Z0-9]{8,128}$`)
	hashRe  = regexp.MustCompile(`^(0x)?[0-9a-fA-F]{64}$`)
	modelRe = regexp.MustCompile(`^[ -~]{0,64}$`)
)

// maxClockSkew is how far a message's time may be from the receiver's clock.
const maxClockSkew = 5 * time.Minute

func checkTime(ms int64, now time.Time) error {
	t := time.UnixMilli(ms)
	if d := t.Sub(now); d > maxClockSkew || d < -maxClockSkew {
		return fmt.Errorf("%w: sent at %s, %s from this clock", ErrMalformed, t.UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	return nil
}

func checkPeer(field, s string) (peer.ID, error) {
	id, err := peer.Decode(s)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: %v", ErrMalformed, field, s, err)
	}
	return id, nil
}

// Validate checks a heartbeat's fields (not its signature).
func (h Heartbeat) Validate() error {
	if h.Version != Version {
		return fmt.Errorf("%w: heartbeat version %d, want %d", ErrMalformed, h.Version, Version)
	}
	if _, err := checkPeer("pool", h.Pool); err != nil {
		return err
	}
	if _, err := checkPeer("member", h.Member); err != nil {
		return err
	}
	switch {
	case h.Account == (common.Address{}):
		return fmt.Errorf("%w: heartbeat without a payout account", ErrMalformed)
	case h.GPUs < 0 || h.GPUs > 1024 || h.FreeGPUs < 0 || h.FreeGPUs > h.GPUs:
		return fmt.Errorf("%w: gpus %d, free %d", ErrMalformed, h.GPUs, h.FreeGPUs)
	case math.IsNaN(h.Score) || math.IsInf(h.Score, 0) || h.Score < 0 || h.Score > 1e6,
		math.IsNaN(h.Verified) || math.IsInf(h.Verified, 0) || h.Verified < 0 || h.Verified > 1e6:
		return fmt.Errorf("%w: score %v, verified %v", ErrMalformed, h.Score, h.Verified)
	case !modelRe.MatchString(h.GPUModel):
		return fmt.Errorf("%w: gpu model %q", ErrMalformed, h.GPUModel)
	case len(h.Running) > 64:
		return fmt.Errorf("%w: %d running jobs", ErrMalformed, len(h.Running))
	case len(h.Datasets) > MaxDatasets:
		return fmt.Errorf("%w: %d datasets, at most %d", ErrMalformed, len(h.Datasets), MaxDatasets)
	}
	for _, tag := range h.Datasets {
		if !job.ValidDatasetTag(tag) {
			return fmt.Errorf("%w: dataset tag %q", ErrMalformed, tag)
		}
	}
	switch h.Admission {
	case "active", "cordoned", "draining", "drained":
	default:
		return fmt.Errorf("%w: admission %q", ErrMalformed, h.Admission)
	}
	for _, id := range h.Running {
		if !runtime.ValidJobID(id) {
			return fmt.Errorf("%w: running job %q", ErrMalformed, id)
		}
	}
	return nil
}

// Validate checks a dispatch's fields (not its signature).
func (d Dispatch) Validate() error {
	if d.Version != Version {
		return fmt.Errorf("%w: dispatch version %d, want %d", ErrMalformed, d.Version, Version)
	}
	if _, err := checkPeer("coordinator", d.Coordinator); err != nil {
		return err
	}
	if _, err := checkPeer("member", d.Member); err != nil {
		return err
	}
	switch {
	case !runtime.ValidJobID(d.JobID):
		return fmt.Errorf("%w: job id %q", ErrMalformed, d.JobID)
	case !cidRe.MatchString(d.ManifestCID):
		return fmt.Errorf("%w: manifest cid %q", ErrMalformed, d.ManifestCID)
	case !hashRe.MatchString(d.ManifestHash):
		return fmt.Errorf("%w: manifest hash %q", ErrMalformed, d.ManifestHash)
	case d.Deadline <= 0:
		return fmt.Errorf("%w: deadline %d", ErrMalformed, d.Deadline)
	}
	if d.Cluster != nil {
		if errs := d.Cluster.WithDefaults().Validate(); len(errs) > 0 {
			return fmt.Errorf("%w: %w", ErrMalformed, errors.Join(errs...))
		}
	}
	return nil
}

// Validate checks a result's fields (not its signature).
func (r Result) Validate() error {
	if r.Version != Version {
		return fmt.Errorf("%w: result version %d, want %d", ErrMalformed, r.Version, Version)
	}
	if _, err := checkPeer("coordinator", r.Coordinator); err != nil {
		return err
	}
	if _, err := checkPeer("member", r.Member); err != nil {
		return err
	}
	switch {
	case !runtime.ValidJobID(r.JobID):
		return fmt.Errorf("%w: job id %q", ErrMalformed, r.JobID)
	case r.Rank < 0 || r.Rank >= runtime.MaxNodes:
		return fmt.Errorf("%w: rank %d, want 0-%d", ErrMalformed, r.Rank, runtime.MaxNodes-1)
	case math.IsNaN(r.WallSeconds) || math.IsInf(r.WallSeconds, 0) || r.WallSeconds < 0 || r.WallSeconds > 1e9:
		return fmt.Errorf("%w: wall seconds %v", ErrMalformed, r.WallSeconds)
	case r.GPUs < 0 || r.GPUs > 1024:
		return fmt.Errorf("%w: gpus %d", ErrMalformed, r.GPUs)
	case len(r.Reason) > 512:
		return fmt.Errorf("%w: reason of %d bytes", ErrMalformed, len(r.Reason))
	case r.CID != "" && !cidRe.MatchString(r.CID):
		return fmt.Errorf("%w: cid %q", ErrMalformed, r.CID)
	case r.Hash != "" && !hashRe.MatchString(r.Hash):
		return fmt.Errorf("%w: hash %q", ErrMalformed, r.Hash)
	}
	switch r.Status {
	case ResultDone:
		if r.Rank == 0 && (r.CID == "" || r.Hash == "") {
			return fmt.Errorf("%w: a done result of rank 0 without its checkpoint's cid and hash", ErrMalformed)
		}
	case ResultFailed, ResultDeclined:
		if r.CID != "" || r.Hash != "" {
			return fmt.Errorf("%w: a %s result with a checkpoint", ErrMalformed, r.Status)
		}
		if r.Reason == "" {
			return fmt.Errorf("%w: a %s result without a reason", ErrMalformed, r.Status)
		}
	default:
		return fmt.Errorf("%w: status %q, want done, failed or declined", ErrMalformed, r.Status)
	}
	return nil
}

// Validate checks an ack's fields (not its signature).
func (a Ack) Validate() error {
	if a.Version != Version {
		return fmt.Errorf("%w: ack version %d, want %d", ErrMalformed, a.Version, Version)
	}
	if _, err := checkPeer("from", a.From); err != nil {
		return err
	}
	if a.JobID != "" && !runtime.ValidJobID(a.JobID) {
		return fmt.Errorf("%w: job id %q", ErrMalformed, a.JobID)
	}
	if len(a.Reason) > 512 {
		return fmt.Errorf("%w: reason of %d bytes", ErrMalformed, len(a.Reason))
	}
	return nil
}

func signingBytes(kind string, body []byte) []byte {
	return append([]byte(signDomain+kind+"\x00"), body...)
}

// Sign wraps a message as kind, signed with key.
func Sign(key crypto.PrivKey, kind string, msg any) (Signed, error) {
	body, err := json.Marshal(msg)
	if err != nil {
		return Signed{}, err
	}
	sig, err := key.Sign(signingBytes(kind, body))
	if err != nil {
		return Signed{}, err
	}
	return Signed{Kind: kind, Body: body, Sig: sig}, nil
}

// Open checks that s is of kind, signed by signer, and decodes its body strictly into v.
func (s Signed) Open(kind string, signer peer.ID, v any) error {
	if s.Kind != kind {
		return fmt.Errorf("%w: a %q message where a %q was expected", ErrMalformed, s.Kind, kind)
	}
	pub, err := signer.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: peer %s: no public key in its ID: %v", ErrForged, signer, err)
	}
	ok, err := pub.Verify(signingBytes(s.Kind, s.Body), s.Sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: %s", ErrForged, signer)
	}
	dec := json.NewDecoder(bytes.NewReader(s.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s body: %v", ErrMalformed, kind, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: %s body: trailing data", ErrMalformed, kind)
	}
	return nil
}

// WriteFrame writes one signed message.
func WriteFrame(w io.Writer, s Signed) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if len(b) > MaxFrame {
		return fmt.Errorf("pool message of %d bytes, at most %d", len(b), MaxFrame)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(append(hdr[:], b...)); err != nil {
		return err
	}
	return nil
}

// ReadFrame reads one signed message, refusing frames above MaxFrame before reading them.
func ReadFrame(r io.Reader) (Signed, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Signed{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxFrame {
		return Signed{}, fmt.Errorf("%w: frame of %d bytes, at most %d", ErrMalformed, n, MaxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return Signed{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var s Signed
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Signed{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(s.Sig) == 0 || len(s.Sig) > 1024 {
		return Signed{}, fmt.Errorf("%w: signature of %d bytes", ErrMalformed, len(s.Sig))
	}
	return s, nil
}

func runtimeValidJobID(id string) bool { return id != "" && runtime.ValidJobID(id) }
