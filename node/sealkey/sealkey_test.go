package sealkey

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/job/seal"
)

// keys is the provider's key store: one sealed job.
type keys struct {
	jobs map[string]struct {
		k seal.Key
		b seal.Binding
	}
	err error
}

func (k *keys) SealKey(_ context.Context, id *big.Int) (seal.Key, seal.Binding, error) {
	if k.err != nil {
		return seal.Key{}, seal.Binding{}, k.err
	}
	j, ok := k.jobs[id.String()]
	if !ok {
		return seal.Key{}, seal.Binding{}, fmt.Errorf("job %s: %w", id, ErrUnknownJob)
	}
	return j.k, j.b, nil
}

// draw is the contract's draw: the drawn validators of each job.
type draw struct {
	mu    sync.Mutex
	drawn map[string][]common.Address
	err   error
	calls int
}

func (d *draw) IsDrawn(_ context.Context, id *big.Int, v common.Address) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.err != nil {
		return false, d.err
	}
	for _, a := range d.drawn[id.String()] {
		if a == v {
			return true, nil
		}
	}
	return false, nil
}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.NoTransports, libp2p.DefaultTransports)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	if err := a.Connect(t.Context(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

type world struct {
	provider  host.Host
	server    *Server
	keys      *keys
	draw      *draw
	reg       *prometheus.Registry
	binding   seal.Binding
	key       seal.Key
	validator *ecdsa.PrivateKey
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newWorld(t *testing.T, cfg Config) *world {
	t.Helper()
	w := &world{provider: newHost(t), reg: prometheus.NewRegistry()}
	w.validator, _ = crypto.GenerateKey()
	w.key, _ = seal.NewKey()
	w.binding = seal.Binding{ChainID: big.NewInt(1337), Contract: common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
		JobID: big.NewInt(7), Provider: common.HexToAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")}
	w.keys = &keys{jobs: map[string]struct {
		k seal.Key
		b seal.Binding
	}{"7": {w.key, w.binding}}}
	w.draw = &draw{drawn: map[string][]common.Address{"7": {crypto.PubkeyToAddress(w.validator.PublicKey)}}}
	s, err := NewServer(w.provider, cfg, w.keys, w.draw, quiet(), w.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	w.server = s
	return w
}

// client returns a host connected to the provider.
func (w *world) client(t *testing.T) host.Host {
	h := newHost(t)
	connect(t, h, w.provider)
	return h
}

func (w *world) answers(status Status) float64 {
	return testutil.ToFloat64(w.server.answers.WithLabelValues(status.String()))
}

func TestDrawnValidatorGetsTheKey(t *testing.T) {
	w := newWorld(t, Default())
	got, err := Fetch(t.Context(), w.client(t), w.provider.ID(), w.binding, w.key.Commitment(), w.validator)
	if err != nil {
		t.Fatal(err)
	}
	if got != w.key {
		t.Fatal("the validator got another key than the job's")
	}
	// And the key opens the sealed checkpoint.
	var buf bytes.Buffer
	if err := seal.Seal(&buf, strings.NewReader("weights"), w.key, w.binding); err != nil {
		t.Fatal(err)
	}
	r, err := seal.NewReader(&buf, got, w.binding, 100)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "weights" {
		t.Fatalf("opened %q, %v", b, err)
	}
	if w.answers(StatusOK) != 1 {
		t.Fatalf("ok answers = %v, want 1", w.answers(StatusOK))
	}
}

func TestStrangersGetNothing(t *testing.T) {
	w := newWorld(t, Default())
	stranger, _ := crypto.GenerateKey()
	cases := []struct {
		name   string
		fetch  func(h host.Host) (seal.Key, error)
		status Status
	}{
		{"not a drawn validator", func(h host.Host) (seal.Key, error) {
			return Fetch(t.Context(), h, w.provider.ID(), w.binding, w.key.Commitment(), stranger)
		}, StatusNotDrawn},
		{"drawn for another job", func(h host.Host) (seal.Key, error) {
			w.keys.jobs["8"] = w.keys.jobs["7"]
			b := w.binding
			b.JobID = big.NewInt(8)
			return Fetch(t.Context(), h, w.provider.ID(), b, w.key.Commitment(), w.validator)
		}, StatusNotDrawn},
		{"job not sealed here", func(h host.Host) (seal.Key, error) {
			b := w.binding
			b.JobID = big.NewInt(9)
			return Fetch(t.Context(), h, w.provider.ID(), b, w.key.Commitment(), w.validator)
		}, StatusUnknownJob},
		{"other contract", func(h host.Host) (seal.Key, error) {
			b := w.binding
			b.Contract[0] ^= 1
			return Fetch(t.Context(), h, w.provider.ID(), b, w.key.Commitment(), w.validator)
		}, StatusBad},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testenv.Attack(t, "sealkey", c.name)
			k, err := c.fetch(w.client(t))
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.status.String()) {
				t.Fatalf("got %v, want a refusal with %s", err, c.status)
			}
			if k != (seal.Key{}) {
				t.Fatal("a refused request returned a key")
			}
		})
	}
	if w.answers(StatusOK) != 0 {
		t.Fatal("a key was delivered to a stranger")
	}
}

// send writes raw bytes as a request from h and returns the raw answer.
func send(t *testing.T, h host.Host, to peer.ID, b []byte) Response {
	t.Helper()
	st, err := h.NewStream(t.Context(), to, Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	st.Write(b)
	st.CloseWrite()
	resp, err := ReadResponse(st)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	return resp
}

func signed(t *testing.T, w *world, priv *ecdsa.PrivateKey, from peer.ID, expires time.Time) []byte {
	t.Helper()
	r := Request{ChainID: w.binding.ChainID, Contract: w.binding.Contract, JobID: w.binding.JobID, Expires: expires.Unix()}
	if err := r.Sign(priv, from, w.provider.ID()); err != nil {
		t.Fatal(err)
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForgedRequests(t *testing.T) {
	cfg := Default()
	cfg.Rate, cfg.Burst = 100, 100 // TestRateLimitPerPeer tests the limit
	w := newWorld(t, cfg)
	honest, attacker := w.client(t), w.client(t)
	good := signed(t, w, w.validator, honest.ID(), time.Now().Add(time.Minute))
	malleated := append([]byte(nil), good...)
	// The same signature with S negated modulo n: recovers the same key unless refused.
	sig := malleated[RequestSize-65:]
	s := new(big.Int).SetBytes(sig[32:64])
	copy(sig[32:64], common.LeftPadBytes(new(big.Int).Sub(crypto.S256().Params().N, s).Bytes(), 32))
	sig[64] ^= 1
	cases := []struct {
		name   string
		from   host.Host
		req    []byte
		status Status
	}{
		// A drawn validator's request, copied by another peer: it names the honest peer,
		// so the signer recovered for the attacker's stream is nobody drawn.
		{"replayed by another peer", attacker, good, StatusNotDrawn},
		{"expired", honest, signed(t, w, w.validator, honest.ID(), time.Now().Add(-time.Minute)), StatusExpired},
		{"expiry far ahead", honest, signed(t, w, w.validator, honest.ID(), time.Now().Add(time.Hour)), StatusExpired},
		{"malleated signature", honest, malleated, StatusBad},
		{"signed for another provider", honest, func() []byte {
			r, _ := DecodeRequest(good)
			r.Sign(w.validator, honest.ID(), attacker.ID())
			b, _ := r.Encode()
			return b
		}(), StatusNotDrawn},
		{"empty", honest, nil, StatusBad},
		{"short", honest, good[:RequestSize-1], StatusBad},
		{"long", honest, append(append([]byte(nil), good...), 0), StatusBad},
		{"wrong version", honest, append([]byte{9}, good[1:]...), StatusBad},
		{"garbage", honest, bytes.Repeat([]byte{0xff}, 4096), StatusBad},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testenv.Attack(t, "sealkey", c.name)
			resp := send(t, c.from, w.provider.ID(), c.req)
			if resp.Status != c.status || resp.Wrapped != nil {
				t.Fatalf("got %s %q, want %s and no key", resp.Status, resp.Reason, c.status)
			}
		})
	}
	// The honest request itself still works, and what it returns opens only for the
	// validator's own key.
	resp := send(t, honest, w.provider.ID(), good)
	if resp.Status != StatusOK {
		t.Fatalf("honest request: %s %s", resp.Status, resp.Reason)
	}
	stranger, _ := crypto.GenerateKey()
	if _, err := seal.UnwrapKey(resp.Wrapped, stranger, w.binding); err == nil {
		t.Fatal("the wrapped key opened with another private key")
	}
	if k, err := seal.UnwrapKey(resp.Wrapped, w.validator, w.binding); err != nil || k != w.key {
		t.Fatalf("the validator cannot unwrap its key: %v", err)
	}
}

func TestRateLimitPerPeer(t *testing.T) {
	cfg := Default()
	cfg.Rate, cfg.Burst = 0.001, 2
	w := newWorld(t, cfg)
	testenv.Attack(t, "sealkey", "flood key requests")
	flooder := w.client(t)
	stranger, _ := crypto.GenerateKey()
	for i := range 2 {
		if _, err := Fetch(t.Context(), flooder, w.provider.ID(), w.binding, w.key.Commitment(), stranger); !strings.Contains(fmt.Sprint(err), StatusNotDrawn.String()) {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	_, err := Fetch(t.Context(), flooder, w.provider.ID(), w.binding, w.key.Commitment(), stranger)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), StatusLimited.String()) {
		t.Fatalf("request past the burst: %v, want rate limited", err)
	}
	calls := w.draw.calls
	// The flooder's requests past its burst never reach the chain…
	Fetch(t.Context(), flooder, w.provider.ID(), w.binding, w.key.Commitment(), stranger)
	if w.draw.calls != calls {
		t.Fatal("a rate-limited request reached the draw check")
	}
	// …and the drawn validator, on its own peer, is served.
	if k, err := Fetch(t.Context(), w.client(t), w.provider.ID(), w.binding, w.key.Commitment(), w.validator); err != nil || k != w.key {
		t.Fatalf("drawn validator after a flood: %v", err)
	}
}

func TestSlowPeersDoNotHoldTheServer(t *testing.T) {
	cfg := Default()
	cfg.MaxInFlight, cfg.Timeout = 2, 500*time.Millisecond
	w := newWorld(t, cfg)
	testenv.Attack(t, "sealkey", "hold streams open without a request")
	slow := w.client(t)
	var held []io.Closer
	for range cfg.MaxInFlight {
		st, err := slow.NewStream(t.Context(), w.provider.ID(), Protocol)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte{Version}) // a byte, then silence
		held = append(held, st)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// The stream deadline frees the slots: the validator is served within a few timeouts.
	deadline := time.Now().Add(10 * cfg.Timeout)
	for {
		k, err := Fetch(t.Context(), w.client(t), w.provider.ID(), w.binding, w.key.Commitment(), w.validator)
		if err == nil && k == w.key {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("validator not served while slow peers hold streams: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestChainTroubleGivesNoKey(t *testing.T) {
	w := newWorld(t, Default())
	w.draw.err = errors.New("rpc down")
	_, err := Fetch(t.Context(), w.client(t), w.provider.ID(), w.binding, w.key.Commitment(), w.validator)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), StatusUnavailable.String()) {
		t.Fatalf("got %v, want unavailable", err)
	}
	w.draw.err = nil
	w.keys.err = errors.New("disk gone")
	_, err = Fetch(t.Context(), w.client(t), w.provider.ID(), w.binding, w.key.Commitment(), w.validator)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), StatusUnavailable.String()) {
		t.Fatalf("got %v, want unavailable", err)
	}
}

// A provider that hands out a key other than the committed one is caught by the validator.
func TestWrongKeyFromProviderIsCaught(t *testing.T) {
	w := newWorld(t, Default())
	testenv.Attack(t, "sealkey", "provider delivers a key other than the committed one")
	committed, _ := seal.NewKey()
	_, err := Fetch(t.Context(), w.client(t), w.provider.ID(), w.binding, committed.Commitment(), w.validator)
	if !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("got %v, want %v", err, seal.ErrWrongKey)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for _, r := range []Response{
		{Status: StatusOK, Wrapped: bytes.Repeat([]byte{1}, seal.WrappedKeySize)},
		{Status: StatusNotDrawn, Reason: "no"},
		{Status: StatusLimited},
		{Status: StatusBad, Reason: strings.Repeat("x", 400)},
	} {
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != r.Status || !bytes.Equal(got.Wrapped, r.Wrapped) || len(got.Reason) > MaxReasonLen || !strings.HasPrefix(r.Reason, got.Reason) {
			t.Fatalf("round trip of %+v gave %+v", r, got)
		}
	}
	if _, err := (Response{Status: StatusOK, Wrapped: []byte{1}}).Encode(); err == nil {
		t.Fatal("encoded a short wrapped key")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	priv, _ := crypto.GenerateKey()
	r := Request{ChainID: big.NewInt(1337), Contract: common.Address{1}, JobID: big.NewInt(7), Expires: 1 << 31}
	r.Sign(priv, "a", "b")
	good, _ := r.Encode()
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		again, err := r.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded request does not encode back: %v", err)
		}
		r.Signer("a", "b") // must not panic
	})
}

func FuzzDecodeResponse(f *testing.F) {
	ok, _ := Response{Status: StatusOK, Wrapped: make([]byte, seal.WrappedKeySize)}.Encode()
	no, _ := Response{Status: StatusNotDrawn, Reason: "not drawn"}.Encode()
	f.Add(ok)
	f.Add(no)
	f.Add([]byte{1, 9, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponse(b)
		if err != nil {
			return
		}
		again, err := r.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded response does not encode back: %v", err)
		}
	})
}
