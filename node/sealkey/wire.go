package sealkey

import (
	"crypto/ecdsa"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/job/seal"
)

// Version is the wire format version of requests and responses.
const Version = 1

// Sizes on the wire: a request is exactly RequestSize bytes; a response is at most
// MaxResponseSize.
const (
	RequestSize     = 1 + 32 + 20 + 32 + 8 + crypto.SignatureLength
	MaxReasonLen    = 255
	MaxResponseSize = 2 + max(seal.WrappedKeySize, 1+MaxReasonLen)

	requestDomain = "gpunode/sealkey/v1 request"
)

// Status is a response's outcome.
type Status byte

// Statuses. Only StatusOK carries a key; every other status carries a reason.
const (
	StatusOK          Status = 0
	StatusNotDrawn    Status = 1 // the signer is not a drawn validator of the job
	StatusUnknownJob  Status = 2 // this node holds no sealed checkpoint for the job
	StatusBad         Status = 3 // the request does not decode, is for another contract, or its signature does not check
	StatusExpired     Status = 4 // the request's expiry is past, or too far ahead
	StatusLimited     Status = 5 // the peer asked too often, or the node is busy
	StatusUnavailable Status = 6 // the node could not check the draw now: ask again later
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotDrawn:
		return "not_drawn"
	case StatusUnknownJob:
		return "unknown_job"
	case StatusBad:
		return "bad_request"
	case StatusExpired:
		return "expired"
	case StatusLimited:
		return "rate_limited"
	case StatusUnavailable:
		return "unavailable"
	}
	return fmt.Sprintf("status(%d)", byte(s))
}

// Request asks a provider for a job's key. It is signed by the validator's chain key
// over the job, the expiry and both peer IDs, so it cannot be replayed by another peer
// or to another provider, and the provider learns the validator's public key from the
// signature to wrap the key to.
type Request struct {
	ChainID  *big.Int
	Contract common.Address
	JobID    *big.Int
	// Expires is when the request lapses (unix seconds).
	Expires int64
	Sig     [crypto.SignatureLength]byte
}

func (r *Request) body() []byte {
	b := make([]byte, 0, RequestSize)
	b = append(b, Version)
	b = append(b, common.LeftPadBytes(r.ChainID.Bytes(), 32)...)
	b = append(b, r.Contract[:]...)
	b = append(b, common.LeftPadBytes(r.JobID.Bytes(), 32)...)
	return binary.BigEndian.AppendUint64(b, uint64(r.Expires))
}

// Digest is what the validator signs: keccak256 of the domain, the request's fields,
// the requester's and the provider's peer IDs.
func (r *Request) Digest(requester, provider peer.ID) []byte {
	return crypto.Keccak256([]byte(requestDomain), r.body()[1:], []byte(requester), []byte(provider))
}

// Sign fills r.Sig with priv's signature for a request from requester to provider.
func (r *Request) Sign(priv *ecdsa.PrivateKey, requester, provider peer.ID) error {
	if err := r.check(); err != nil {
		return err
	}
	sig, err := crypto.Sign(r.Digest(requester, provider), priv)
	if err != nil {
		return fmt.Errorf("sign key request: %w", err)
	}
	copy(r.Sig[:], sig)
	return nil
}

// Signer recovers the public key that signed r for requester and provider. A signature
// with a high S or a bad recovery id is refused (no malleated copies).
func (r *Request) Signer(requester, provider peer.ID) (*ecdsa.PublicKey, error) {
	sig := r.Sig[:]
	v := sig[64]
	rr, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:64])
	if !crypto.ValidateSignatureValues(v, rr, s, true) {
		return nil, errors.New("signature values out of range")
	}
	pub, err := crypto.SigToPub(r.Digest(requester, provider), sig)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return pub, nil
}

func (r *Request) check() error {
	for _, f := range []struct {
		name string
		v    *big.Int
	}{{"chain id", r.ChainID}, {"job id", r.JobID}} {
		if f.v == nil || f.v.Sign() < 0 || f.v.BitLen() > 256 {
			return fmt.Errorf("key request: %s must be a 256-bit unsigned integer", f.name)
		}
	}
	if r.Expires <= 0 {
		return errors.New("key request: expiry must be set")
	}
	return nil
}

// Encode returns the request's wire form.
func (r *Request) Encode() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return append(r.body(), r.Sig[:]...), nil
}

// DecodeRequest parses exactly RequestSize bytes.
func DecodeRequest(b []byte) (Request, error) {
	if len(b) != RequestSize {
		return Request{}, fmt.Errorf("key request: %d bytes, want %d", len(b), RequestSize)
	}
	if b[0] != Version {
		return Request{}, fmt.Errorf("key request: version %d, want %d", b[0], Version)
	}
	exp := binary.BigEndian.Uint64(b[85:93])
	if exp == 0 || exp > 1<<62 {
		return Request{}, fmt.Errorf("key request: expiry %d out of range", exp)
	}
	r := Request{
		ChainID:  new(big.Int).SetBytes(b[1:33]),
		Contract: common.BytesToAddress(b[33:53]),
		JobID:    new(big.Int).SetBytes(b[53:85]),
		Expires:  int64(exp),
	}
	copy(r.Sig[:], b[93:])
	return r, nil
}

// ReadRequest reads one request from r: exactly RequestSize bytes, then the end of the
// stream's write side (nothing more may follow).
func ReadRequest(r io.Reader) (Request, error) {
	b := make([]byte, RequestSize+1)
	n, err := io.ReadFull(r, b)
	switch {
	case err == nil:
		return Request{}, fmt.Errorf("key request: longer than %d bytes", RequestSize)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
	default:
		return Request{}, fmt.Errorf("key request: read: %w", err)
	}
	return DecodeRequest(b[:n])
}

// Response answers a request: a wrapped key, or a status and its reason.
type Response struct {
	Status Status
	// Wrapped is the job's key wrapped to the requester's chain key (StatusOK only).
	Wrapped []byte
	// Reason says why there is no key, for the requester's log.
	Reason string
}

// Encode returns the response's wire form.
func (r Response) Encode() ([]byte, error) {
	if r.Status == StatusOK {
		if len(r.Wrapped) != seal.WrappedKeySize {
			return nil, fmt.Errorf("key response: wrapped key of %d bytes, want %d", len(r.Wrapped), seal.WrappedKeySize)
		}
		return append([]byte{Version, byte(StatusOK)}, r.Wrapped...), nil
	}
	reason := []byte(r.Reason)
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	return append([]byte{Version, byte(r.Status), byte(len(reason))}, reason...), nil
}

// DecodeResponse parses a response strictly: the exact length its status implies, a
// known status, a printable reason.
func DecodeResponse(b []byte) (Response, error) {
	if len(b) < 2 {
		return Response{}, errors.New("key response: too short")
	}
	if b[0] != Version {
		return Response{}, fmt.Errorf("key response: version %d, want %d", b[0], Version)
	}
	s := Status(b[1])
	if s == StatusOK {
		if len(b) != 2+seal.WrappedKeySize {
			return Response{}, fmt.Errorf("key response: %d bytes with a key, want %d", len(b), 2+seal.WrappedKeySize)
		}
		return Response{Status: s, Wrapped: append([]byte(nil), b[2:]...)}, nil
	}
	if s > StatusUnavailable {
		return Response{}, fmt.Errorf("key response: unknown status %d", b[1])
	}
	if len(b) < 3 || len(b) != 3+int(b[2]) {
		return Response{}, errors.New("key response: reason length does not match")
	}
	for _, c := range b[3:] {
		if c < 0x20 || c > 0x7e {
			return Response{}, errors.New("key response: reason is not printable ASCII")
		}
	}
	return Response{Status: s, Reason: string(b[3:])}, nil
}

// ReadResponse reads one response, at most MaxResponseSize bytes, to the end of r.
func ReadResponse(r io.Reader) (Response, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxResponseSize+1))
	if err != nil {
		return Response{}, fmt.Errorf("key response: read: %w", err)
	}
	if len(b) > MaxResponseSize {
		return Response{}, fmt.Errorf("key response: longer than %d bytes", MaxResponseSize)
	}
	return DecodeResponse(b)
}

// expiry returns the expiry of a request made at now.
func expiry(now time.Time, ttl time.Duration) int64 { return now.Add(ttl).Unix() }
