package challenge

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/gpunode/gpunode/benchmark"
)

func sampleChallenge(t testing.TB) *Challenge {
	ch, err := NewChallenge(Params{N: 16, Precision: benchmark.FP32, Count: 1, Deadline: time.Second}, "rig", "challenger", time.UnixMilli(1_700_000_000_000))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func sampleExchange(t testing.TB) (*Challenge, *Commitment, *Query, *Answer) {
	ch := sampleChallenge(t)
	s, cm, err := Commit(t.Context(), cpuProver(t), ch)
	if err != nil {
		t.Fatal(err)
	}
	q := NewQuery(ch.N, 3)
	a, err := s.Answer(q)
	if err != nil {
		t.Fatal(err)
	}
	return ch, cm, q, a
}

// TestRoundTrip: every message decodes to what was encoded, and re-encodes identically.
func TestRoundTrip(t *testing.T) {
	ch, cm, q, a := sampleExchange(t)
	ch2, err := DecodeChallenge(ch.Encode())
	if err != nil || !bytes.Equal(ch2.Encode(), ch.Encode()) || !ch2.CheckStamp() {
		t.Errorf("challenge: %v", err)
	}
	cm2, err := DecodeCommitment(cm.Encode())
	if err != nil || !bytes.Equal(cm2.Encode(), cm.Encode()) {
		t.Errorf("commitment: %v", err)
	}
	q2, err := DecodeQuery(q.Encode())
	if err != nil || !bytes.Equal(q2.Encode(), q.Encode()) {
		t.Errorf("query: %v", err)
	}
	ab := a.Encode()
	if len(ab) != AnswerSize(ch.N, ch.Count, len(q.Rows)) {
		t.Errorf("answer of %d bytes, AnswerSize says %d", len(ab), AnswerSize(ch.N, ch.Count, len(q.Rows)))
	}
	a2, err := DecodeAnswer(ab)
	if err != nil || !bytes.Equal(a2.Encode(), ab) {
		t.Errorf("answer: %v", err)
	}
	if r := Verify(ch2, cm2, q2, a2, Timing{Elapsed: time.Millisecond}, 0); !r.Passed {
		t.Errorf("decoded exchange does not verify: %s", r.Reason)
	}
	f, err := DecodeRefusal((&Refusal{Reason: "busy: job 7 holds the GPUs"}).Encode())
	if err != nil || f.Reason != "busy: job 7 holds the GPUs" {
		t.Errorf("refusal: %+v %v", f, err)
	}
}

// TestDecodersReject: malformed messages are errors wrapping ErrBadMessage.
func TestDecodersReject(t *testing.T) {
	ch, cm, q, a := sampleExchange(t)
	mut := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	chb, ab := ch.Encode(), a.Encode()
	bigN := bytes.Clone(chb)
	bigN[34] = 0xff // n's low byte: not a power of two
	nanY := bytes.Clone(ab)
	copy(nanY[9:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f}) // y[0] = NaN
	cases := []struct {
		name   string
		decode func([]byte) error
		b      []byte
	}{
		{"challenge empty", decodeC, nil},
		{"challenge truncated", decodeC, chb[:len(chb)-1]},
		{"challenge trailing", decodeC, append(bytes.Clone(chb), 0)},
		{"challenge version", decodeC, mut(chb, 0, 2)},
		{"challenge type", decodeC, mut(chb, 1, typeQuery)},
		{"challenge n", decodeC, bigN},
		{"challenge precision", decodeC, mut(chb, 38, 9)},
		{"challenge count 0", decodeC, mut(chb, 39, 0)},
		{"challenge oversized", decodeC, make([]byte, MaxChallengeSize+1)},
		{"commitment no roots", decodeCm, mut(cm.Encode(), 2, 0)},
		{"commitment truncated", decodeCm, cm.Encode()[:10]},
		{"query no rows", decodeQ, append(q.Encode()[:34], 0, 0)},
		{"query trailing", decodeQ, append(q.Encode(), 1)},
		{"answer truncated", decodeA, ab[:len(ab)-1]},
		{"answer NaN", decodeA, nanY},
		{"answer count", decodeA, mut(ab, 6, 9)},
		{"refusal long", decodeR, append([]byte{Version, typeRefusal, 0xff, 0xff}, make([]byte, 0xffff)...)},
		{"refusal not utf-8", decodeR, []byte{Version, typeRefusal, 1, 0, 0xff}},
	}
	for _, c := range cases {
		if err := c.decode(c.b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v, want ErrBadMessage", c.name, err)
		}
	}
}

func decodeC(b []byte) error  { _, err := DecodeChallenge(b); return err }
func decodeCm(b []byte) error { _, err := DecodeCommitment(b); return err }
func decodeQ(b []byte) error  { _, err := DecodeQuery(b); return err }
func decodeA(b []byte) error  { _, err := DecodeAnswer(b); return err }
func decodeR(b []byte) error  { _, err := DecodeRefusal(b); return err }

// roundTrips checks that whatever a decoder accepts re-encodes to the same bytes: the
// format has one encoding per message.
func FuzzDecodeChallenge(f *testing.F) {
	f.Add(sampleChallenge(f).Encode())
	f.Add([]byte{Version, typeChallenge})
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := DecodeChallenge(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error not ErrBadMessage: %v", err)
			}
			return
		}
		if err := ch.Params.Validate(); err != nil {
			t.Fatalf("accepted invalid params: %v", err)
		}
		if !bytes.Equal(ch.Encode(), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzDecodeCommitment(f *testing.F) {
	_, cm, _, _ := sampleExchange(f)
	f.Add(cm.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		cm, err := DecodeCommitment(b)
		if err == nil && !bytes.Equal(cm.Encode(), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzDecodeQuery(f *testing.F) {
	_, _, q, _ := sampleExchange(f)
	f.Add(q.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := DecodeQuery(b)
		if err == nil && !bytes.Equal(q.Encode(), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzDecodeAnswer decodes arbitrary answers and verifies what decodes against a real
// challenge: nothing panics, and a mutated answer never passes.
func FuzzDecodeAnswer(f *testing.F) {
	ch, cm, q, a := sampleExchange(f)
	good := a.Encode()
	f.Add(good)
	f.Add(good[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAnswer(b)
		if err != nil {
			return
		}
		if !bytes.Equal(a.Encode(), b) {
			t.Fatal("re-encoding differs")
		}
		r := Verify(ch, cm, q, a, Timing{Elapsed: time.Millisecond}, 0)
		if r.Passed && !bytes.Equal(b, good) {
			// Only changes no check can see may pass: none are possible except in y's
			// last bits of float64 slack; require the rows to be the committed ones.
			for k, row := range a.Products[0].Rows {
				for j, v := range row.Values {
					if math.Float32bits(v) != math.Float32bits(sampleRow(good, ch, q, k, j)) {
						t.Fatalf("answer with a changed row %d passed", row.Index)
					}
				}
			}
		}
	})
}

// sampleRow reads opened row k's value j from an encoded good answer.
func sampleRow(good []byte, ch *Challenge, q *Query, k, j int) float32 {
	a, _ := DecodeAnswer(good)
	return a.Products[0].Rows[k].Values[j]
}

func FuzzDecodeRefusal(f *testing.F) {
	f.Add((&Refusal{Reason: "busy"}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRefusal(b)
		if err == nil && !bytes.Equal(r.Encode(), b) {
			t.Fatal("re-encoding differs")
		}
	})
}
