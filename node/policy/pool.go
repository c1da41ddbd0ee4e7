package policy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Pool policy errors.
var (
	// ErrBadSignature: the envelope's signature does not verify.
	ErrBadSignature = errors.New("pool policy: bad signature")
	// ErrWrongPool: the envelope is signed by another pool's key.
	ErrWrongPool = errors.New("pool policy: signed by another pool")
	// ErrStale: the envelope's sequence number is not newer than the policy in force.
	ErrStale = errors.New("pool policy: not newer than the policy in force")
)

// signDomain separates pool policy signatures from every other use of an Ed25519 key.
const signDomain = "gpunode/pool-policy/v1\x00"

// MaxEnvelopeBytes bounds a signed pool policy.
const MaxEnvelopeBytes = MaxPolicyBytes*4/3 + 4096

// Envelope is a signed pool policy as stored in a file or sent on the pool's topic.
type Envelope struct {
	// Version is the envelope format; 1.
	Version int `json:"version"`
	// PoolKey is the pool's Ed25519 public key.
	PoolKey []byte `json:"pool_key"`
	// Seq orders a pool's policies: a node replaces its policy only with a higher Seq.
	Seq uint64 `json:"seq"`
	// Policy is the policy file, byte for byte.
	Policy []byte `json:"policy"`
	// Signature signs the domain string, PoolKey, Seq and Policy.
	Signature []byte `json:"signature"`
}

func signedBytes(pub []byte, seq uint64, policy []byte) []byte {
	var b bytes.Buffer
	b.WriteString(signDomain)
	b.Write(pub)
	_ = binary.Write(&b, binary.BigEndian, seq)
	b.Write(policy)
	return b.Bytes()
}

// GenerateKey makes a new pool key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// Key text prefixes make a key file say what it is.
const (
	pubPrefix  = "gpunode-pool-pub:"
	privPrefix = "gpunode-pool-key:"
)

// EncodePublicKey writes a pool public key as text, the form node configs use.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return pubPrefix + base64.RawURLEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a key written by EncodePublicKey.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, pubPrefix)
	if !ok {
		return nil, fmt.Errorf("pool public key: must start with %q", pubPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("pool public key: want %d bytes of unpadded base64url", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// EncodePrivateKey writes a pool private key as text for a 0600 key file.
func EncodePrivateKey(priv ed25519.PrivateKey) string {
	return privPrefix + base64.RawURLEncoding.EncodeToString(priv.Seed())
}

// ParsePrivateKey reads a key written by EncodePrivateKey.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), privPrefix)
	if !ok {
		return nil, fmt.Errorf("pool private key: must start with %q", privPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("pool private key: want a %d-byte seed in unpadded base64url", ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// Topic is the pubsub topic on which the pool identified by pub publishes its policies.
func Topic(pub ed25519.PublicKey) string {
	return "/gpunode/pool/" + base64.RawURLEncoding.EncodeToString(pub) + "/policy/1"
}

// Sign checks that policy parses and returns the signed envelope, as JSON.
func Sign(priv ed25519.PrivateKey, seq uint64, policy []byte) ([]byte, error) {
	if _, err := Parse(policy); err != nil {
		return nil, fmt.Errorf("pool policy: refusing to sign: %w", err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	env := Envelope{Version: 1, PoolKey: pub, Seq: seq, Policy: policy,
		Signature: ed25519.Sign(priv, signedBytes(pub, seq, policy))}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Verified is a pool policy whose signature checked out.
type Verified struct {
	Seq    uint64
	Policy *Policy
	Raw    []byte // the envelope as received
}

// Verify decodes a signed envelope, checks it is signed by pool, and parses its policy.
func Verify(pool ed25519.PublicKey, signed []byte) (*Verified, error) {
	if len(signed) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("pool policy: envelope larger than %d bytes", MaxEnvelopeBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(signed))
	dec.DisallowUnknownFields()
	var env Envelope
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("pool policy: envelope: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("pool policy: envelope: trailing data")
	}
	if env.Version != 1 {
		return nil, fmt.Errorf("pool policy: envelope version %d, want 1", env.Version)
	}
	if !bytes.Equal(env.PoolKey, pool) {
		return nil, fmt.Errorf("%w: %s, this node's pool is %s", ErrWrongPool, safeKey(env.PoolKey), EncodePublicKey(pool))
	}
	if len(env.Signature) != ed25519.SignatureSize || !ed25519.Verify(pool, signedBytes(pool, env.Seq, env.Policy), env.Signature) {
		return nil, fmt.Errorf("%w (seq %d)", ErrBadSignature, env.Seq)
	}
	p, err := Parse(env.Policy)
	if err != nil {
		return nil, fmt.Errorf("pool policy seq %d: %w", env.Seq, err)
	}
	return &Verified{Seq: env.Seq, Policy: p, Raw: signed}, nil
}

func safeKey(b []byte) string {
	if len(b) != ed25519.PublicKeySize {
		return fmt.Sprintf("a %d-byte key", len(b))
	}
	return EncodePublicKey(b)
}
