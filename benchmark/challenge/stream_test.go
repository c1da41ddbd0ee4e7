package challenge

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/benchmark"
)

// exchange runs Run against Serve over an in-memory connection.
func exchange(t *testing.T, be Backend, g *Guard, busy func() string, p Params, from string) (*Exchange, error, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	served := make(chan error, 1)
	go func() {
		_, _, err := Serve(t.Context(), b, from, be, g, busy)
		b.Close()
		served <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ex, err := Run(ctx, a, p, "rig", from, Options{})
	a.Close()
	return ex, err, <-served
}

var quick = Params{N: 64, Precision: benchmark.FP32, Count: 1, Deadline: 10 * time.Second}

// TestServeRun: a challenge over a connection passes, with a positive verified figure.
func TestServeRun(t *testing.T) {
	ex, err, serr := exchange(t, cpuProver(t), NewGuard(DefaultGuard("rig"), nil), nil, quick, "challenger")
	if err != nil || serr != nil {
		t.Fatalf("run: %v; serve: %v", err, serr)
	}
	if !ex.Result.Passed || ex.Result.TFLOPS <= 0 || ex.Result.RTT <= 0 || ex.StampHashes == 0 {
		t.Fatalf("%+v", ex.Result)
	}
}

// relay answers from "a faster machine elsewhere": correct products that arrive after
// the extra round trip to it.
type relay struct {
	CPU
	delay time.Duration
}

func (r relay) Compute(ctx context.Context, seed [32]byte, p Params) ([][]float32, error) {
	select {
	case <-time.After(r.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return r.CPU.Compute(ctx, seed, p)
}

// TestRelayLate: correct products that arrive past the deadline fail as late.
func TestRelayLate(t *testing.T) {
	p := quick
	p.Deadline = 50 * time.Millisecond
	ex, err, _ := exchange(t, relay{cpuProver(t), 200 * time.Millisecond}, NewGuard(DefaultGuard("rig"), nil), nil, p, "challenger")
	if err != nil {
		t.Fatal(err)
	}
	if ex.Result.Passed || ex.Result.Failed != CheckLate {
		t.Fatalf("late relay: %+v", ex.Result)
	}
}

// TestBusyRefused: a rig whose GPUs a job holds says so.
func TestBusyRefused(t *testing.T) {
	_, err, serr := exchange(t, cpuProver(t), NewGuard(DefaultGuard("rig"), nil), func() string { return "busy: job 7 holds the GPUs" }, quick, "challenger")
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "busy: job 7 holds the GPUs") || !errors.Is(serr, ErrRefused) {
		t.Fatalf("run: %v; serve: %v", err, serr)
	}
}

// TestFloodRefused: a peer challenging faster than the per-peer rate is refused before
// the rig computes anything; so are replays, bad stamps, stale or misaddressed
// challenges and oversized problems.
func TestFloodRefused(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	g := NewGuard(DefaultGuard("rig"), clock)
	mk := func(from string) *Challenge {
		ch, err := NewChallenge(quick, "rig", from, now)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	for i := range 2 {
		if err := g.Admit("a", mk("a")); err != nil {
			t.Fatalf("challenge %d within the burst: %v", i, err)
		}
	}
	if err := g.Admit("a", mk("a")); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("third challenge at once: %v", err)
	}
	if err := g.Admit("b", mk("b")); err != nil {
		t.Fatalf("another peer: %v", err)
	}
	now = now.Add(time.Minute)
	if err := g.Admit("a", mk("a")); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
	bad := []struct {
		name string
		from string
		edit func(*Challenge)
		want string
	}{
		{"spoofed challenger", "d", func(c *Challenge) { c.Challenger = "e"; c.Stamp() }, "came from"},
		{"other rig", "d", func(c *Challenge) { c.Rig = "other"; c.Stamp() }, "another rig"},
		{"stale", "d", func(c *Challenge) { c.Issued = now.Add(-time.Hour); c.Stamp() }, "clock"},
		{"replay", "d", nil, "replayed"},
	}
	g2 := NewGuard(GuardConfig{Self: "rig", PeerEvery: time.Nanosecond, PeerBurst: 100, TotalEvery: time.Nanosecond, TotalBurst: 100, MaxN: 32, MaxCount: 1, MaxPeers: 2}, clock)
	small := Params{N: 32, Precision: benchmark.FP32, Count: 1, Deadline: time.Second}
	first, err := NewChallenge(small, "rig", "d", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Admit("d", first); err != nil {
		t.Fatal(err)
	}
	for _, c := range bad {
		ch := *first
		if c.edit != nil {
			ch.Seed[1]++
			c.edit(&ch)
		}
		if err := g2.Admit(c.from, &ch); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A stamp short of its difficulty (n=1024: 4 bits).
	stamped, err := NewChallenge(Params{N: 1024, Precision: benchmark.FP32, Count: 1, Deadline: time.Second}, "rig", "s", now)
	if err != nil || stamped.StampBits() != 4 {
		t.Fatalf("%v, %d bits", err, stamped.StampBits())
	}
	for stamped.Nonce++; stamped.CheckStamp(); stamped.Nonce++ {
	}
	if err := NewGuard(DefaultGuard("rig"), clock).Admit("s", stamped); err == nil || !strings.Contains(err.Error(), "stamp") {
		t.Errorf("bad stamp: %v", err)
	}
	big, _ := NewChallenge(quick, "rig", "d", now)
	if err := g2.Admit("d", big); err == nil || !strings.Contains(err.Error(), "n ≤ 32") {
		t.Errorf("oversized: %v", err)
	}
	// Over the connection: the refusal reaches the challenger as ErrRefused.
	g3 := NewGuard(DefaultGuard("rig"), nil)
	for i := range 3 {
		_, err, _ := exchange(t, cpuProver(t), g3, nil, Params{N: 16, Precision: benchmark.FP32, Count: 1, Deadline: 10 * time.Second}, "flooder")
		if i < 2 && err != nil {
			t.Fatalf("challenge %d: %v", i, err)
		}
		if i == 2 && !errors.Is(err, ErrRefused) {
			t.Fatalf("third challenge: %v, want a refusal", err)
		}
	}
}

// TestStampCost: the stamp's difficulty grows with the work, one hash per 2^27 FLOPs.
func TestStampCost(t *testing.T) {
	for _, c := range []struct {
		p    Params
		bits int
	}{
		{Params{N: 16, Count: 1}, 0},
		{Params{N: 4096, Count: 1}, 10},
		{Params{N: 8192, Count: 2}, 14},
	} {
		if b := c.p.StampBits(); b != c.bits {
			t.Errorf("n=%d count=%d: %d bits, want %d", c.p.N, c.p.Count, b, c.bits)
		}
	}
}

// TestAttestation: a signed attestation verifies, survives encoding, and any change to
// it or a signature by another key fails.
func TestAttestation(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rigKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	rig, _ := peer.IDFromPrivateKey(rigKey)
	res := &Result{Passed: true, Device: "cpu", Params: quick, TFLOPS: 0.5}
	a, err := NewAttestation(key, rig, res, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b := a.Encode()
	got, err := DecodeAttestation(b)
	if err != nil || got.TFLOPS != 0.5 || got.Rig != rig.String() {
		t.Fatalf("decode: %+v %v", got, err)
	}
	tampered := *got
	tampered.TFLOPS = 5
	if tampered.Verify() == nil {
		t.Error("a changed figure verified")
	}
	forged := *got
	forged.Challenger = rig.String()
	if forged.Verify() == nil {
		t.Error("a signature under another peer's name verified")
	}
	for _, s := range []string{`{"version":1}`, strings.Replace(string(b), `"version":1`, `"version":1,"extra":1`, 1), string(b) + "{}", strings.Repeat(" ", MaxAttestationSize+1)} {
		if _, err := DecodeAttestation([]byte(s)); err == nil {
			t.Errorf("accepted %.60q", s)
		}
	}
}

func FuzzDecodeAttestation(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	rig, _ := peer.IDFromPrivateKey(key)
	a, err := NewAttestation(key, rig, &Result{Passed: true, Device: "cpu", Params: quick, TFLOPS: 1}, time.Unix(1_800_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	good := a.Encode()
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeAttestation(b)
		if err == nil && got.Verify() != nil {
			t.Fatal("decoded an attestation that does not verify")
		}
	})
}
