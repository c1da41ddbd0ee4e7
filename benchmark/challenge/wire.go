package challenge

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"time"
	"unicode/utf8"
)

// Message types (the second byte of every message; the first is Version).
const (
	typeChallenge   = 1
	typeCommitment  = 2
	typeQuery       = 3
	typeAnswer      = 4
	typeRefusal     = 5
	typePing        = 6
	typePong        = 7
	typeAttestation = 8
)

// Message size limits.
const (
	MaxChallengeSize  = 2 + 32 + 4 + 1 + 1 + 4 + 8 + 1 + MaxPeerIDLen + 1 + MaxPeerIDLen + 8
	MaxCommitmentSize = 2 + 1 + 32*MaxCount + 1 + MaxDeviceLen + 4
	MaxQuerySize      = 2 + 32 + 2 + 4*MaxRows
	MaxRefusalSize    = 2 + 2 + MaxReasonLen
	pingSize          = 2 + 8
)

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, a...))
}

// reader consumes a message strictly: every read is bounds-checked and the message must
// be used up exactly.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = bad("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (r *reader) hash() (h [32]byte) {
	copy(h[:], r.take(32))
	return h
}

func (r *reader) header(typ byte) {
	v, t := r.u8(), r.u8()
	if r.err == nil && v != Version {
		r.err = bad("version %d, want %d", v, Version)
	}
	if r.err == nil && t != typ {
		r.err = bad("message type %d, want %d", t, typ)
	}
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = bad("%d trailing bytes", len(r.b))
	}
	return r.err
}

func (r *reader) shortString(max int, what string) string {
	n := int(r.u8())
	s := string(r.take(n))
	if r.err == nil && (n > max || !utf8.ValidString(s)) {
		r.err = bad("%s: %d bytes or not UTF-8 (at most %d)", what, n, max)
	}
	return s
}

func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

func appendShort(b []byte, s string) []byte { return append(append(b, byte(len(s))), s...) }

// body encodes the challenge without its nonce: what the stamp covers.
func (c *Challenge) body() []byte {
	b := []byte{Version, typeChallenge}
	b = append(b, c.Seed[:]...)
	b = appendU32(b, uint32(c.N))
	b = append(b, precisionCode[c.Precision], byte(c.Count))
	b = appendU32(b, uint32(c.Deadline/time.Millisecond))
	b = appendU64(b, uint64(c.Issued.UnixMilli()))
	b = appendShort(b, c.Rig)
	b = appendShort(b, c.Challenger)
	return b
}

// Encode returns the challenge's wire form. The challenge must be valid.
func (c *Challenge) Encode() []byte { return appendU64(c.body(), c.Nonce) }

// DecodeChallenge parses a challenge strictly: every field in range, nothing left over.
// It does not check the stamp (CheckStamp) or the time (Guard).
func DecodeChallenge(b []byte) (*Challenge, error) {
	if len(b) > MaxChallengeSize {
		return nil, bad("challenge of %d bytes, at most %d", len(b), MaxChallengeSize)
	}
	r := &reader{b: b}
	r.header(typeChallenge)
	c := &Challenge{}
	c.Seed = r.hash()
	c.N = int(r.u32())
	pc, count := r.u8(), r.u8()
	c.Count = int(count)
	c.Deadline = time.Duration(r.u32()) * time.Millisecond
	ms := r.u64()
	c.Rig = r.shortString(MaxPeerIDLen, "rig peer ID")
	c.Challenger = r.shortString(MaxPeerIDLen, "challenger peer ID")
	c.Nonce = r.u64()
	if err := r.done(); err != nil {
		return nil, err
	}
	p, ok := precisionOf(pc)
	if !ok {
		return nil, bad("precision code %d", pc)
	}
	c.Precision = p
	if ms > math.MaxInt64/2 {
		return nil, bad("issue time %d ms", ms)
	}
	c.Issued = time.UnixMilli(int64(ms))
	if c.Rig == "" || c.Challenger == "" {
		return nil, bad("empty peer ID")
	}
	if err := c.Params.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return c, nil
}

// stampDomain separates stamp hashes from other SHA-256 uses.
const stampDomain = "gpunode/challenge/1 stamp"

func stampPrefix(c *Challenge) [32]byte {
	return sha256.Sum256(append([]byte(stampDomain), c.body()...))
}

func stampOK(prefix [32]byte, nonce uint64, need int) bool {
	var b [40]byte
	copy(b[:], prefix[:])
	binary.LittleEndian.PutUint64(b[32:], nonce)
	h := sha256.Sum256(b[:])
	z := 0
	for _, x := range h {
		if x != 0 {
			z += bits.LeadingZeros8(x)
			break
		}
		z += 8
	}
	return z >= need
}

// Stamp finds a nonce for the challenge: the challenger's proof of work, StampBits leading
// zero bits of SHA-256(SHA-256(domain ‖ challenge without nonce) ‖ nonce). It returns the
// hashes tried.
func (c *Challenge) Stamp() uint64 {
	prefix, need := stampPrefix(c), c.StampBits()
	for n := uint64(0); ; n++ {
		if stampOK(prefix, n, need) {
			c.Nonce = n
			return n + 1
		}
	}
}

// CheckStamp reports whether the challenge carries a valid stamp.
func (c *Challenge) CheckStamp() bool { return stampOK(stampPrefix(c), c.Nonce, c.StampBits()) }

// Encode returns the commitment's wire form.
func (m *Commitment) Encode() []byte {
	b := []byte{Version, typeCommitment, byte(len(m.Roots))}
	for _, r := range m.Roots {
		b = append(b, r[:]...)
	}
	b = appendShort(b, m.Device)
	return appendU32(b, m.ProverMS)
}

// DecodeCommitment parses a commitment strictly.
func DecodeCommitment(b []byte) (*Commitment, error) {
	if len(b) > MaxCommitmentSize {
		return nil, bad("commitment of %d bytes, at most %d", len(b), MaxCommitmentSize)
	}
	r := &reader{b: b}
	r.header(typeCommitment)
	n := int(r.u8())
	if r.err == nil && (n < 1 || n > MaxCount) {
		return nil, bad("%d roots, want 1 to %d", n, MaxCount)
	}
	m := &Commitment{}
	for range n {
		m.Roots = append(m.Roots, r.hash())
	}
	m.Device = r.shortString(MaxDeviceLen, "device")
	m.ProverMS = r.u32()
	if err := r.done(); err != nil {
		return nil, err
	}
	return m, nil
}

// Encode returns the query's wire form.
func (q *Query) Encode() []byte {
	b := []byte{Version, typeQuery}
	b = append(b, q.VectorSeed[:]...)
	b = appendU16(b, uint16(len(q.Rows)))
	for _, i := range q.Rows {
		b = appendU32(b, i)
	}
	return b
}

// DecodeQuery parses a query strictly. Whether its rows fit the challenge is checked by
// the prover (Session.Answer).
func DecodeQuery(b []byte) (*Query, error) {
	if len(b) > MaxQuerySize {
		return nil, bad("query of %d bytes, at most %d", len(b), MaxQuerySize)
	}
	r := &reader{b: b}
	r.header(typeQuery)
	q := &Query{VectorSeed: r.hash()}
	m := int(r.u16())
	if r.err == nil && (m < 1 || m > MaxRows) {
		return nil, bad("%d rows, want 1 to %d", m, MaxRows)
	}
	for range m {
		q.Rows = append(q.Rows, r.u32())
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return q, nil
}

// AnswerSize is the exact size of an answer for n, count products and m opened rows.
func AnswerSize(n, count, m int) int {
	depth := bits.Len(uint(n)) - 1
	return 2 + 4 + 1 + 2 + count*(8*n+m*(4+4*n+32*depth))
}

// MaxAnswerSize bounds every answer.
var MaxAnswerSize = AnswerSize(MaxN, MaxElements/(MaxN*MaxN), MaxRows)

// Encode returns the answer's wire form.
func (a *Answer) Encode() []byte {
	m := 0
	if len(a.Products) > 0 {
		m = len(a.Products[0].Rows)
	}
	b := make([]byte, 0, AnswerSize(a.N, len(a.Products), m))
	b = append(b, Version, typeAnswer)
	b = appendU32(b, uint32(a.N))
	b = append(b, byte(len(a.Products)))
	b = appendU16(b, uint16(m))
	for _, p := range a.Products {
		for _, y := range p.Y {
			b = appendU64(b, math.Float64bits(y))
		}
		for _, row := range p.Rows {
			b = appendU32(b, row.Index)
			for _, v := range row.Values {
				b = appendU32(b, math.Float32bits(v))
			}
			for _, h := range row.Proof {
				b = append(b, h[:]...)
			}
		}
	}
	return b
}

// DecodeAnswer parses an answer strictly: n, count and rows in range, the exact size for
// them, every number finite.
func DecodeAnswer(b []byte) (*Answer, error) {
	r := &reader{b: b}
	r.header(typeAnswer)
	n, count, m := int(r.u32()), int(r.u8()), int(r.u16())
	if r.err != nil {
		return nil, r.err
	}
	if n < MinN || n > MaxN || bits.OnesCount(uint(n)) != 1 || count < 1 || count > MaxCount || count*n*n > MaxElements || m < 1 || m > MaxRows || m > n {
		return nil, bad("answer shape n=%d count=%d rows=%d out of range", n, count, m)
	}
	if want := AnswerSize(n, count, m); len(b) != want {
		return nil, bad("answer of %d bytes, want %d for n=%d count=%d rows=%d", len(b), want, n, count, m)
	}
	depth := bits.Len(uint(n)) - 1
	a := &Answer{N: n, Products: make([]ProductAnswer, count)}
	for t := range a.Products {
		p := &a.Products[t]
		p.Y = make([]float64, n)
		for j := range p.Y {
			p.Y[j] = math.Float64frombits(r.u64())
			if math.IsNaN(p.Y[j]) || math.IsInf(p.Y[j], 0) {
				return nil, bad("product %d: y[%d] not finite", t, j)
			}
		}
		p.Rows = make([]OpenRow, m)
		for k := range p.Rows {
			row := &p.Rows[k]
			row.Index = r.u32()
			row.Values = make([]float32, n)
			for j := range row.Values {
				v := math.Float32frombits(r.u32())
				if v != v || math.IsInf(float64(v), 0) {
					return nil, bad("product %d: row %d: value %d not finite", t, row.Index, j)
				}
				row.Values[j] = v
			}
			row.Proof = make([][32]byte, depth)
			for d := range row.Proof {
				row.Proof[d] = r.hash()
			}
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return a, nil
}

// Encode returns the refusal's wire form.
func (f *Refusal) Encode() []byte {
	s := f.Reason
	if len(s) > MaxReasonLen {
		s = s[:MaxReasonLen]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return append(appendU16([]byte{Version, typeRefusal}, uint16(len(s))), s...)
}

// DecodeRefusal parses a refusal strictly.
func DecodeRefusal(b []byte) (*Refusal, error) {
	if len(b) > MaxRefusalSize {
		return nil, bad("refusal of %d bytes, at most %d", len(b), MaxRefusalSize)
	}
	r := &reader{b: b}
	r.header(typeRefusal)
	n := int(r.u16())
	s := string(r.take(n))
	if err := r.done(); err != nil {
		return nil, err
	}
	if n > MaxReasonLen || !utf8.ValidString(s) {
		return nil, bad("refusal reason: %d bytes or not UTF-8", n)
	}
	return &Refusal{Reason: s}, nil
}

// messageType returns a message's type byte, or 0.
func messageType(b []byte) byte {
	if len(b) < 2 || b[0] != Version {
		return 0
	}
	return b[1]
}

// WriteFrame writes one uvarint-length-prefixed message.
func WriteFrame(w io.Writer, msg []byte) error {
	b := binary.AppendUvarint(make([]byte, 0, len(msg)+binary.MaxVarintLen64), uint64(len(msg)))
	_, err := w.Write(append(b, msg...))
	return err
}

// ReadFrame reads one uvarint-length-prefixed message of at most limit bytes.
func ReadFrame(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, bad("frame of %d bytes, at most %d", n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
