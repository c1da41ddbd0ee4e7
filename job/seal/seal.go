// Package seal encrypts a job's checkpoint for the fair exchange of JobMarket v2: the
// provider publishes the checkpoint sealed with a fresh key K and commits keccak256(K) on
// chain; the job's drawn validators receive K wrapped to their chain keys, and the
// sponsor receives it when the provider is paid. Until then nobody else can read the
// checkpoint, and a sealed checkpoint names the chain, contract, job and provider it was
// made for, so that copying it to another job is useless.
//
// A sealed stream is a 160-byte header followed by chunks. The header holds the magic
// "GPNSEAL", the format version, the binding (chain id, contract, job id, provider), the
// chunk size, a random nonce prefix and a key check (HMAC-SHA256 of the header under K,
// which makes a wrong key a clear error and commits the stream to one key). Each chunk is
// XChaCha20-Poly1305 over at most ChunkSize bytes of plaintext, with the whole header as
// associated data and a nonce of prefix ‖ counter ‖ last-flag, so that chunks cannot be
// reordered, dropped, truncated or moved to another stream. Every chunk but the last is
// full; the last one, possibly empty, ends the stream.
package seal

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/crypto/ecies"
	"golang.org/x/crypto/chacha20poly1305"
)

// Version is the sealed format this package writes and reads.
const Version = 1

// FileName is the sealed checkpoint's name in the directory a provider publishes.
const FileName = "checkpoint.sealed"

const (
	// HeaderSize is the size of a sealed stream's header.
	HeaderSize = 160
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize = 64 << 10
	// KeySize is the size of a key.
	KeySize = chacha20poly1305.KeySize
	// WrappedKeySize is the size of a key wrapped to a secp256k1 public key.
	WrappedKeySize = 65 + 16 + KeySize + 32

	magic       = "GPNSEAL"
	chunkLog    = 16 // log2(ChunkSize), written in the header
	prefixSize  = 15
	overhead    = chacha20poly1305.Overhead
	wrapContext = "gpunode/seal/v1 key wrap"
	checkLabel  = "gpunode/seal/v1 key check"
)

// Errors a reader returns; each is wrapped with the detail.
var (
	// ErrFormat: not a sealed stream this package reads (magic, version, chunk size).
	ErrFormat = errors.New("not a sealed checkpoint")
	// ErrBinding: sealed for another chain, contract, job or provider.
	ErrBinding = errors.New("sealed checkpoint made for another job")
	// ErrWrongKey: the key does not open this stream.
	ErrWrongKey = errors.New("wrong key for the sealed checkpoint")
	// ErrCorrupt: a chunk failed authentication, or the stream was cut short.
	ErrCorrupt = errors.New("sealed checkpoint corrupt or truncated")
	// ErrTooLarge: more plaintext than the reader was allowed.
	ErrTooLarge = errors.New("sealed checkpoint larger than allowed")
)

// Key is a checkpoint's symmetric key, fresh for every job.
type Key [KeySize]byte

// NewKey returns a fresh random key.
func NewKey() (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand.Reader, k[:]); err != nil {
		return Key{}, fmt.Errorf("seal key: %w", err)
	}
	return k, nil
}

// Commitment is keccak256(K), the value the provider commits on chain.
func (k Key) Commitment() common.Hash { return crypto.Keccak256Hash(k[:]) }

// Matches reports whether k is the key committed as c.
func (k Key) Matches(c common.Hash) bool {
	got := k.Commitment()
	return subtle.ConstantTimeCompare(got[:], c[:]) == 1
}

// Binding names what a sealed checkpoint was made for. It is written in the header and
// authenticated with every chunk.
type Binding struct {
	ChainID  *big.Int
	Contract common.Address
	JobID    *big.Int
	Provider common.Address
}

// Check reports a binding that cannot be encoded.
func (b Binding) Check() error {
	for _, f := range []struct {
		name string
		v    *big.Int
	}{{"chain id", b.ChainID}, {"job id", b.JobID}} {
		if f.v == nil || f.v.Sign() < 0 || f.v.BitLen() > 256 {
			return fmt.Errorf("seal binding: %s must be a 256-bit unsigned integer", f.name)
		}
	}
	return nil
}

// Equal reports whether two bindings name the same job.
func (b Binding) Equal(o Binding) bool {
	return b.Check() == nil && o.Check() == nil && b.ChainID.Cmp(o.ChainID) == 0 &&
		b.JobID.Cmp(o.JobID) == 0 && b.Contract == o.Contract && b.Provider == o.Provider
}

func (b Binding) String() string {
	if b.Check() != nil {
		return "invalid binding"
	}
	return fmt.Sprintf("job %s of contract %s on chain %s, provider %s", b.JobID, b.Contract.Hex(), b.ChainID, b.Provider.Hex())
}

// bytes is the binding's fixed 104-byte encoding: chain id, contract, job id, provider.
func (b Binding) bytes() []byte {
	out := make([]byte, 0, 104)
	out = append(out, common.LeftPadBytes(b.ChainID.Bytes(), 32)...)
	out = append(out, b.Contract[:]...)
	out = append(out, common.LeftPadBytes(b.JobID.Bytes(), 32)...)
	return append(out, b.Provider[:]...)
}

func parseBinding(p []byte) Binding {
	return Binding{
		ChainID:  new(big.Int).SetBytes(p[0:32]),
		Contract: common.BytesToAddress(p[32:52]),
		JobID:    new(big.Int).SetBytes(p[52:84]),
		Provider: common.BytesToAddress(p[84:104]),
	}
}

// Header is a sealed stream's parsed header.
type Header struct {
	Version int
	Binding Binding
	raw     [HeaderSize]byte
}

// ReadHeader reads and parses a sealed stream's header without a key: what the stream
// says it was made for. It checks the format only; NewReader checks the rest.
func ReadHeader(r io.Reader) (Header, error) {
	var h Header
	if _, err := io.ReadFull(r, h.raw[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, fmt.Errorf("%w: shorter than its %d-byte header", ErrFormat, HeaderSize)
		}
		return Header{}, fmt.Errorf("sealed checkpoint: read header: %w", err)
	}
	raw := h.raw[:]
	if string(raw[0:7]) != magic {
		return Header{}, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	if raw[7] != Version {
		return Header{}, fmt.Errorf("%w: version %d, this node reads version %d", ErrFormat, raw[7], Version)
	}
	if raw[112] != chunkLog {
		return Header{}, fmt.Errorf("%w: chunk size 2^%d, want 2^%d", ErrFormat, raw[112], chunkLog)
	}
	h.Version = Version
	h.Binding = parseBinding(raw[8:112])
	return h, nil
}

func keyCheck(k Key, head []byte) []byte {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(checkLabel))
	m.Write(head)
	return m.Sum(nil)
}

// nonce builds the nonce of chunk i.
func nonce(dst *[chacha20poly1305.NonceSizeX]byte, prefix []byte, i uint64, last bool) {
	copy(dst[:prefixSize], prefix)
	binary.BigEndian.PutUint64(dst[prefixSize:prefixSize+8], i)
	dst[23] = 0
	if last {
		dst[23] = 1
	}
}

// Writer seals a stream. Close writes the last chunk: a stream without it does not open.
type Writer struct {
	w    io.Writer
	aead interface {
		Seal(dst, nonce, plaintext, ad []byte) []byte
	}
	head   []byte
	prefix []byte
	buf    []byte
	out    []byte
	n      uint64
	closed bool
	err    error
}

// NewWriter writes the header of a stream sealed with k for b to w and returns the
// writer of its plaintext.
func NewWriter(w io.Writer, k Key, b Binding) (*Writer, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return nil, err
	}
	head := make([]byte, HeaderSize)
	copy(head, magic)
	head[7] = Version
	copy(head[8:112], b.bytes())
	head[112] = chunkLog
	if _, err := io.ReadFull(rand.Reader, head[113:128]); err != nil {
		return nil, fmt.Errorf("seal nonce: %w", err)
	}
	copy(head[128:], keyCheck(k, head[:128]))
	if _, err := w.Write(head); err != nil {
		return nil, fmt.Errorf("sealed checkpoint: write header: %w", err)
	}
	return &Writer{w: w, aead: aead, head: head, prefix: head[113:128],
		buf: make([]byte, 0, ChunkSize), out: make([]byte, 0, ChunkSize+overhead)}, nil
}

// Write seals p. A chunk is written once it is full and more plaintext follows, so that
// the last chunk is always the one Close writes.
func (s *Writer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errors.New("sealed checkpoint: write after close")
	}
	n := 0
	for len(p) > 0 {
		if len(s.buf) == ChunkSize {
			if err := s.flush(false); err != nil {
				return n, err
			}
		}
		c := copy(s.buf[len(s.buf):ChunkSize], p)
		s.buf = s.buf[:len(s.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

func (s *Writer) flush(last bool) error {
	var nb [chacha20poly1305.NonceSizeX]byte
	nonce(&nb, s.prefix, s.n, last)
	s.out = s.aead.Seal(s.out[:0], nb[:], s.buf, s.head)
	if _, err := s.w.Write(s.out); err != nil {
		s.err = fmt.Errorf("sealed checkpoint: write chunk %d: %w", s.n, err)
		return s.err
	}
	s.n++
	s.buf = s.buf[:0]
	return nil
}

// Close writes the last chunk. It does not close the underlying writer.
func (s *Writer) Close() error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return nil
	}
	s.closed = true
	return s.flush(true)
}

// Reader opens a sealed stream. It returns plaintext only from chunks that authenticated,
// and io.EOF only after the last chunk did.
type Reader struct {
	r    *bufio.Reader
	aead interface {
		Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
	}
	head   []byte
	prefix []byte
	in     []byte
	plain  []byte
	n      uint64
	total  int64
	max    int64
	done   bool
	err    error
}

// NewReader reads the header of a sealed stream from r and checks that it is made for
// want and opens with k. The returned reader yields at most max bytes of plaintext
// (max must be positive) and fails with ErrCorrupt on any tampering or truncation.
func NewReader(r io.Reader, k Key, want Binding, max int64) (*Reader, error) {
	if max <= 0 {
		return nil, errors.New("sealed checkpoint: the plaintext limit must be positive")
	}
	if err := want.Check(); err != nil {
		return nil, err
	}
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	if !h.Binding.Equal(want) {
		return nil, fmt.Errorf("%w: it is sealed for %s, not %s", ErrBinding, h.Binding, want)
	}
	if !hmac.Equal(keyCheck(k, h.raw[:128]), h.raw[128:]) {
		return nil, ErrWrongKey
	}
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return nil, err
	}
	head := h.raw[:]
	return &Reader{r: bufio.NewReaderSize(r, ChunkSize+overhead+1), aead: aead, head: head, prefix: head[113:128],
		in: make([]byte, ChunkSize+overhead), max: max}, nil
}

// Read returns authenticated plaintext.
func (s *Reader) Read(p []byte) (int, error) {
	for len(s.plain) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			return 0, io.EOF
		}
		s.err = s.next()
	}
	n := copy(p, s.plain)
	s.plain = s.plain[n:]
	return n, nil
}

// next reads and opens one chunk.
func (s *Reader) next() error {
	n, err := io.ReadFull(s.r, s.in)
	last := false
	switch {
	case err == nil:
		// A full chunk is the last one if nothing follows it.
		if _, perr := s.r.Peek(1); errors.Is(perr, io.EOF) {
			last = true
		} else if perr != nil {
			return fmt.Errorf("sealed checkpoint: read chunk %d: %w", s.n, perr)
		}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		last = true
		if n < overhead {
			return fmt.Errorf("%w: chunk %d cut short", ErrCorrupt, s.n)
		}
	default:
		return fmt.Errorf("sealed checkpoint: read chunk %d: %w", s.n, err)
	}
	var nb [chacha20poly1305.NonceSizeX]byte
	nonce(&nb, s.prefix, s.n, last)
	plain, oerr := s.aead.Open(s.in[:0], nb[:], s.in[:n], s.head)
	if oerr != nil {
		return fmt.Errorf("%w: chunk %d does not authenticate", ErrCorrupt, s.n)
	}
	s.total += int64(len(plain))
	if s.total > s.max {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.max)
	}
	s.n++
	s.plain = plain
	s.done = last
	return nil
}

// Seal writes all of r to w sealed with k for b.
func Seal(w io.Writer, r io.Reader, k Key, b Binding) error {
	sw, err := NewWriter(w, k, b)
	if err != nil {
		return err
	}
	if _, err := io.Copy(sw, r); err != nil {
		return err
	}
	return sw.Close()
}

// WrapKey encrypts k to a secp256k1 public key (a validator's or the sponsor's chain
// key) with ECIES, the binding fed into the MAC: the wrapped key opens only with the
// matching private key and only for the job it names.
func WrapKey(k Key, to *ecdsa.PublicKey, b Binding) ([]byte, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	if to == nil || to.Curve != crypto.S256() {
		return nil, errors.New("seal: wrap key: not a secp256k1 public key")
	}
	out, err := ecies.Encrypt(rand.Reader, ecies.ImportECDSAPublic(to), k[:], []byte(wrapContext), b.bytes())
	if err != nil {
		return nil, fmt.Errorf("seal: wrap key: %w", err)
	}
	if len(out) != WrappedKeySize {
		return nil, fmt.Errorf("seal: wrap key: %d bytes, want %d", len(out), WrappedKeySize)
	}
	return out, nil
}

// UnwrapKey opens a key wrapped by WrapKey for b with the private key it was wrapped to.
func UnwrapKey(wrapped []byte, priv *ecdsa.PrivateKey, b Binding) (Key, error) {
	if err := b.Check(); err != nil {
		return Key{}, err
	}
	if len(wrapped) != WrappedKeySize {
		return Key{}, fmt.Errorf("seal: wrapped key of %d bytes, want %d", len(wrapped), WrappedKeySize)
	}
	if priv == nil || priv.Curve != crypto.S256() {
		return Key{}, errors.New("seal: unwrap key: not a secp256k1 private key")
	}
	m, err := ecies.ImportECDSA(priv).Decrypt(wrapped, []byte(wrapContext), b.bytes())
	if err != nil {
		return Key{}, fmt.Errorf("seal: unwrap key: %w", err)
	}
	if len(m) != KeySize {
		return Key{}, fmt.Errorf("seal: unwrapped key of %d bytes", len(m))
	}
	var k Key
	copy(k[:], m)
	return k, nil
}
