package capacity

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	recpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/proto"
)

// Reason says why a record was refused; it is a metric label.
type Reason string

// Reasons a record is refused.
const (
	ReasonTooLarge     Reason = "too_large"
	ReasonMalformed    Reason = "malformed"
	ReasonWrongDomain  Reason = "wrong_domain"
	ReasonBadSignature Reason = "bad_signature"
	ReasonPeerMismatch Reason = "peer_mismatch"
	ReasonBadBinding   Reason = "bad_binding"
	ReasonTooOld       Reason = "too_old"
	ReasonFuture       Reason = "future"
	ReasonStaleSeq     Reason = "stale_seq"
)

// Reasons lists every Reason, so that metrics can pre-create their series.
var Reasons = []Reason{ReasonTooLarge, ReasonMalformed, ReasonWrongDomain, ReasonBadSignature,
	ReasonPeerMismatch, ReasonBadBinding, ReasonTooOld, ReasonFuture, ReasonStaleSeq}

// Error is a refused record.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("capacity record: %s: %v", e.Reason, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the Reason of an error from Open, or "" for other errors.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// BindingHash is what the Ethereum key signs to bind its address to a peer ID.
func BindingHash(id peer.ID) []byte {
	return crypto.Keccak256([]byte(BindingDomain), []byte(id))
}

// Bind signs the binding of key's address to id.
func Bind(id peer.ID, key *ecdsa.PrivateKey) (address, signature string, err error) {
	sig, err := crypto.Sign(BindingHash(id), key)
	if err != nil {
		return "", "", fmt.Errorf("bind peer %s to ethereum key: %w", id, err)
	}
	return crypto.PubkeyToAddress(key.PublicKey).Hex(), hexutil.Encode(sig), nil
}

// VerifyBinding checks that signature was made by address over id's binding hash.
func VerifyBinding(id peer.ID, address, signature string) error {
	sig, err := hexutil.Decode(signature)
	if err != nil || len(sig) != crypto.SignatureLength {
		return errors.New("signature is not 65 hex bytes")
	}
	if sig[64] > 1 {
		return errors.New("signature recovery id is not 0 or 1")
	}
	if !common.IsHexAddress(address) {
		return fmt.Errorf("address %q is not an ethereum address", address)
	}
	pub, err := crypto.SigToPub(BindingHash(id), sig)
	if err != nil {
		return fmt.Errorf("recover signer: %w", err)
	}
	if got := crypto.PubkeyToAddress(*pub); got != common.HexToAddress(address) {
		return fmt.Errorf("signed by %s, not by %s", got.Hex(), address)
	}
	return nil
}

// Seal signs rec with the peer's libp2p key and returns the marshalled envelope.
func Seal(rec *Record, key lcrypto.PrivKey) ([]byte, error) {
	env, err := record.Seal(rec, key)
	if err != nil {
		return nil, fmt.Errorf("seal capacity record: %w", err)
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal capacity envelope: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("capacity record is %d bytes, at most %d", len(b), MaxSize)
	}
	return b, nil
}

// otherDomains are signature domains of other records a peer signs with the same key;
// an envelope that verifies under one of them is a replay onto the wrong topic.
var otherDomains = []string{"libp2p-routing-state", OfferDomain}

// OfferDomain is reserved for signed offers; listed here so that a replayed offer
// envelope is reported as a wrong domain.
const OfferDomain = "gpunode-offer"

// Open decodes and verifies a marshalled envelope received at now. It checks, in
// order: size, envelope structure, payload type, envelope signature under Domain, the
// payload, that the signer is the record's peer, the Ethereum binding, and the age
// (older than maxAge, or more than maxSkew in the future). Every error is an *Error.
func Open(data []byte, now time.Time, maxAge, maxSkew time.Duration) (*Record, error) {
	if len(data) > MaxSize {
		return nil, refuse(ReasonTooLarge, "%d bytes, at most %d", len(data), MaxSize)
	}
	var env recpb.Envelope
	if err := proto.Unmarshal(data, &env); err != nil {
		return nil, refuse(ReasonMalformed, "envelope: %v", err)
	}
	pub, err := lcrypto.PublicKeyFromProto(env.GetPublicKey())
	if err != nil {
		return nil, refuse(ReasonMalformed, "envelope public key: %v", err)
	}
	if !bytes.Equal(env.GetPayloadType(), PayloadType) {
		return nil, refuse(ReasonWrongDomain, "payload type %q, want %q", trim(env.GetPayloadType()), PayloadType)
	}
	if !verify(pub, Domain, &env) {
		for _, d := range otherDomains {
			if verify(pub, d, &env) {
				return nil, refuse(ReasonWrongDomain, "signed for domain %q", d)
			}
		}
		return nil, refuse(ReasonBadSignature, "envelope signature does not verify")
	}
	var rec Record
	if err := rec.UnmarshalRecord(env.GetPayload()); err != nil {
		return nil, refuse(ReasonMalformed, "payload: %v", err)
	}
	signer, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return nil, refuse(ReasonMalformed, "envelope public key: %v", err)
	}
	if signer.String() != rec.PeerID {
		return nil, refuse(ReasonPeerMismatch, "record of %s signed by %s", rec.PeerID, signer)
	}
	if err := VerifyBinding(signer, rec.EthAddress, rec.EthSignature); err != nil {
		return nil, refuse(ReasonBadBinding, "eth address %s: %v", rec.EthAddress, err)
	}
	t := rec.Time()
	if age := now.Sub(t); age > maxAge {
		return nil, refuse(ReasonTooOld, "record is %s old, at most %s", age.Round(time.Second), maxAge)
	}
	if t.Sub(now) > maxSkew {
		return nil, refuse(ReasonFuture, "record is %s in the future", t.Sub(now).Round(time.Second))
	}
	return &rec, nil
}

// verify checks the envelope signature the way go-libp2p's record package builds the
// signed bytes (length-prefixed domain, payload type, payload), so that the domain can
// be told apart from a bad signature.
func verify(pub lcrypto.PubKey, domain string, env *recpb.Envelope) bool {
	var buf []byte
	for _, f := range [][]byte{[]byte(domain), env.GetPayloadType(), env.GetPayload()} {
		buf = binary.AppendUvarint(buf, uint64(len(f)))
		buf = append(buf, f...)
	}
	ok, err := pub.Verify(buf, env.GetSignature())
	return err == nil && ok
}

func trim(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}
