package challenge

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"time"
)

// deadliner is what a libp2p stream or a net.Conn offers to bound a read.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// maxPings bounds the round-trip probes a challenger may send before its challenge.
const maxPings = 8

// lateGrace is how long past the deadline a challenger still waits for a commitment, to
// report it as late rather than as silence.
const lateGrace = 5 * time.Second

// Serve answers one challenge exchange on rw from peer (as the transport authenticated
// it): pings, then a challenge, refused with busy's reason while the rig is busy or with
// the guard's reason, else committed and answered; last, the challenger may send its
// signed attestation of the outcome. It returns the challenge it answered (nil if none),
// the attestation (nil if none came; the caller checks whom it names) and the error that
// ended the exchange.
func Serve(ctx context.Context, rw io.ReadWriter, peer string, be Backend, g *Guard, busy func() string) (*Challenge, *Attestation, error) {
	ch, br, err := serve(ctx, rw, peer, be, g, busy)
	if err != nil || ch == nil {
		return ch, nil, err
	}
	if d, ok := rw.(deadliner); ok {
		d.SetReadDeadline(time.Now().Add(time.Minute))
	}
	b, err := ReadFrame(br, 2+MaxAttestationSize)
	if err != nil {
		return ch, nil, nil // the challenger sent none: not an error of the exchange
	}
	if messageType(b) != typeAttestation {
		return ch, nil, bad("message type %d after the answer, want an attestation", messageType(b))
	}
	a, err := DecodeAttestation(b[2:])
	return ch, a, err
}

// SendAttestation sends the challenger's attestation to the rig, the last message of an
// exchange.
func SendAttestation(w io.Writer, a *Attestation) error {
	return WriteFrame(w, append([]byte{Version, typeAttestation}, a.Encode()...))
}

func serve(ctx context.Context, rw io.ReadWriter, peer string, be Backend, g *Guard, busy func() string) (*Challenge, *bufio.Reader, error) {
	br := bufio.NewReader(rw)
	var msg []byte
	for pings := 0; ; pings++ {
		b, err := ReadFrame(br, MaxChallengeSize)
		if err != nil {
			return nil, nil, fmt.Errorf("read challenge: %w", err)
		}
		if messageType(b) != typePing {
			msg = b
			break
		}
		if pings >= maxPings || len(b) != pingSize {
			return nil, nil, bad("more than %d pings, or a bad one", maxPings)
		}
		b[1] = typePong
		if err := WriteFrame(rw, b); err != nil {
			return nil, nil, err
		}
	}
	ch, err := DecodeChallenge(msg)
	if err != nil {
		return nil, nil, err
	}
	refuse := func(reason string) (*Challenge, *bufio.Reader, error) {
		WriteFrame(rw, (&Refusal{Reason: reason}).Encode())
		return ch, nil, fmt.Errorf("%w: %s", ErrRefused, reason)
	}
	if busy != nil {
		if why := busy(); why != "" {
			return refuse(why)
		}
	}
	if err := g.Admit(peer, ch); err != nil {
		return refuse(err.Error())
	}
	cctx, cancel := context.WithTimeout(ctx, ch.Deadline+lateGrace)
	defer cancel()
	s, cm, err := Commit(cctx, be, ch)
	if err != nil {
		return refuse("prover failed: " + err.Error())
	}
	if err := WriteFrame(rw, cm.Encode()); err != nil {
		return ch, nil, err
	}
	if d, ok := rw.(deadliner); ok {
		d.SetReadDeadline(time.Now().Add(time.Minute))
	}
	b, err := ReadFrame(br, MaxQuerySize)
	if err != nil {
		return ch, nil, fmt.Errorf("read query: %w", err)
	}
	q, err := DecodeQuery(b)
	if err != nil {
		return ch, nil, err
	}
	ans, err := s.Answer(q)
	if err != nil {
		return ch, nil, err
	}
	return ch, br, WriteFrame(rw, ans.Encode())
}

// Exchange is a challenger's record of one challenge: what it asked, what it paid for the
// stamp, and the verdict.
type Exchange struct {
	Challenge   *Challenge
	StampHashes uint64
	StampTime   time.Duration
	Result      *Result
}

// Options tune a challenger's exchange.
type Options struct {
	Rows int // rows opened per product; DefaultRows if 0
	Full int // opened rows recomputed in full; DefaultFull if 0
}

// Run challenges the rig at the other end of rw: measures the round trip, sends a
// stamped challenge, times the commitment, queries and verifies. A refusal is an error
// wrapping ErrRefused; a wrong or late answer is a Result that did not pass.
func Run(ctx context.Context, rw io.ReadWriter, p Params, rig, self string, opt Options) (*Exchange, error) {
	if opt.Rows <= 0 {
		opt.Rows = DefaultRows
	}
	br := bufio.NewReader(rw)
	setDeadline := func(t time.Time) {
		if d, ok := rw.(deadliner); ok {
			d.SetReadDeadline(t)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		setDeadline(dl)
	}
	rtt := time.Duration(1<<63 - 1)
	for range 3 {
		ping := make([]byte, pingSize)
		ping[0], ping[1] = Version, typePing
		rand.Read(ping[2:])
		t0 := time.Now()
		if err := WriteFrame(rw, ping); err != nil {
			return nil, fmt.Errorf("ping: %w", err)
		}
		b, err := ReadFrame(br, pingSize)
		if err != nil {
			return nil, fmt.Errorf("ping: %w", err)
		}
		if len(b) != pingSize || messageType(b) != typePong || string(b[2:]) != string(ping[2:]) {
			return nil, bad("pong does not echo the ping")
		}
		rtt = min(rtt, time.Since(t0))
	}
	t0 := time.Now()
	ch, err := NewChallenge(p, rig, self, t0)
	if err != nil {
		return nil, err
	}
	ex := &Exchange{Challenge: ch, StampHashes: ch.Nonce + 1, StampTime: time.Since(t0)}
	start := time.Now()
	if err := WriteFrame(rw, ch.Encode()); err != nil {
		return nil, fmt.Errorf("send challenge: %w", err)
	}
	setDeadline(start.Add(p.Deadline + lateGrace))
	b, err := ReadFrame(br, max(MaxCommitmentSize, MaxRefusalSize))
	elapsed := time.Since(start)
	if err != nil {
		if elapsed >= p.Deadline {
			ex.Result = (&Result{Params: p, Timing: Timing{Elapsed: elapsed, RTT: rtt}}).fail(CheckLate, "no commitment within the deadline %s (%v)", p.Deadline, err)
			return ex, nil
		}
		return nil, fmt.Errorf("read commitment: %w", err)
	}
	if messageType(b) == typeRefusal {
		f, err := DecodeRefusal(b)
		if err != nil {
			return nil, err
		}
		return ex, fmt.Errorf("%w: %s", ErrRefused, f.Reason)
	}
	cm, err := DecodeCommitment(b)
	if err != nil {
		return nil, err
	}
	tm := Timing{Elapsed: elapsed, RTT: rtt}
	if elapsed > p.Deadline {
		ex.Result = (&Result{Params: p, Timing: tm, Device: cm.Device}).fail(CheckLate, "commitment after %s, deadline %s", elapsed.Round(time.Millisecond), p.Deadline)
		return ex, nil
	}
	q := NewQuery(p.N, opt.Rows)
	setDeadline(time.Now().Add(time.Minute))
	if err := WriteFrame(rw, q.Encode()); err != nil {
		return nil, fmt.Errorf("send query: %w", err)
	}
	b, err = ReadFrame(br, AnswerSize(p.N, p.Count, len(q.Rows)))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	ans, err := DecodeAnswer(b)
	if err != nil {
		return nil, err
	}
	ex.Result = Verify(ch, cm, q, ans, tm, opt.Full)
	return ex, nil
}
