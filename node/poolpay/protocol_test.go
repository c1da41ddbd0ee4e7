package poolpay

import (
	"bytes"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/pool"
)

type p2pNode struct {
	h   host.Host
	key crypto.PrivKey
}

func newP2PNode(t *testing.T) p2pNode {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return p2pNode{h, key}
}

func (n p2pNode) connect(t *testing.T, to p2pNode) {
	t.Helper()
	if err := n.h.Connect(t.Context(), peer.AddrInfo{ID: to.h.ID(), Addrs: to.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// coordinatorEnv is a coordinator with its contract, ledger, publisher and payouts
// server on a libp2p host.
type coordinatorEnv struct {
	*env
	node    p2pNode
	l       *Ledger
	p       *Publisher
	view    *View
	members map[peer.ID]common.Address
}

func newCoordinatorEnv(t *testing.T) *coordinatorEnv {
	e := newEnv(t)
	co := e.fresh(eth(5000))
	c, err := Contract(t.Context(), co, "", filepath.Join(t.TempDir(), "c.json"), time.Hour, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLedger(openStore(t, filepath.Join(t.TempDir(), "state.db")), 250, testkit.Discard())
	p := NewPublisher(l, co, c, time.Hour, testkit.Discard())
	ce := &coordinatorEnv{env: e, node: newP2PNode(t), l: l, p: p, view: NewView(l, p, co), members: map[peer.ID]common.Address{}}
	srv, err := Serve(ce.node.h, ce.node.key, ce.view, func(id peer.ID) (common.Address, bool) {
		a, ok := ce.members[id]
		return a, ok
	}, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return ce
}

func (ce *coordinatorEnv) member(t *testing.T, account common.Address) p2pNode {
	n := newP2PNode(t)
	n.connect(t, ce.node)
	ce.members[n.h.ID()] = account
	return n
}

// TestPayoutsProtocol: a member gets its own shares and payouts, paged (more shares and
// epochs than one answer holds), with proofs that verify against the published roots and
// the claims the chain records; another member's are never in its answer; a stranger is
// refused; a request naming another member, or another coordinator, is refused.
func TestPayoutsProtocol(t *testing.T) {
	ce := newCoordinatorEnv(t)
	ctx := t.Context()
	a, b := addr(1), addr(2)
	const epochs, unpublished = maxPayoutsPerAnswer + 1, maxSharesPerAnswer
	for i := range epochs + unpublished {
		if err := ce.l.Book(ctx, "job-"+string(rune('a'+i/26))+string(rune('a'+i%26)), eth(10), works(a, b)); err != nil {
			t.Fatal(err)
		}
		if i < epochs {
			if _, err := ce.p.Publish(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One of a's payouts is claimed (by a relayer).
	e2, _, _ := ce.l.Epoch(ce.p.Contract(), 2)
	pa, _ := e2.Payout(a)
	ce.claim(ce.bank, e2.Epoch, pa)

	ma, mb := ce.member(t, a), ce.member(t, b)
	got, err := Fetch(ctx, ma.h, ma.key, ce.node.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.Account != a || got.Contract != ce.p.Contract() || got.FeeBPS != 250 {
		t.Fatalf("answer for %s of %s fee %d", got.Account, got.Contract, got.FeeBPS)
	}
	if len(got.Shares) != epochs+unpublished || len(got.Payouts) != epochs {
		t.Fatalf("%d shares, %d payouts; want %d and %d (paged)", len(got.Shares), len(got.Payouts), epochs+unpublished, epochs)
	}
	_, mine, _ := ce.l.MemberShares(a)
	wantBooked := new(big.Int)
	for i, s := range got.Shares {
		if s.Wei != mine[i].Wei.String() {
			t.Fatalf("share %d: %s, ledger %s", i, s.Wei, mine[i].Wei)
		}
		if (s.Epoch != nil) != (i < epochs) {
			t.Fatalf("share %d (%s): epoch %v", i, s.JobID, s.Epoch)
		}
		if s.Epoch == nil {
			wantBooked.Add(wantBooked, mine[i].Wei)
		}
	}
	for _, p := range got.Payouts {
		rec, ok, err := ce.l.Epoch(ce.p.Contract(), p.Epoch)
		if !ok || err != nil {
			t.Fatalf("epoch %d: %v", p.Epoch, err)
		}
		wei, _ := new(big.Int).SetString(p.Wei, 10)
		if !rec.Verify(pool.Payout{Member: a, Wei: wei, Proof: p.Proof}) {
			t.Fatalf("epoch %d: a's proof does not verify", p.Epoch)
		}
		if p.Claimed != (p.Epoch == 2) {
			t.Fatalf("epoch %d: claimed %v", p.Epoch, p.Claimed)
		}
	}
	booked, published, claimed := got.Owed()
	if booked.Cmp(wantBooked) != 0 || claimed.Cmp(pa.Wei) != 0 || published.Sign() <= 0 {
		t.Fatalf("owed booked %s (want %s), published %s, claimed %s (want %s)", booked, wantBooked, published, claimed, pa.Wei)
	}
	view := MemberView(got)
	if view.Role != "member" || len(view.Shares) != len(got.Shares) || view.Shares[2].State != "claimed" || view.Shares[0].State != "published" || view.Shares[epochs].State != "booked" {
		t.Fatalf("member view: %+v", view.Shares[:3])
	}

	// b gets its own, never a's.
	gotB, err := Fetch(ctx, mb.h, mb.key, ce.node.h.ID())
	if err != nil || gotB.Account != b {
		t.Fatalf("b: %s %v", gotB.Account, err)
	}
	for _, p := range gotB.Payouts {
		rec, _, _ := ce.l.Epoch(ce.p.Contract(), p.Epoch)
		pb, _ := rec.Payout(b)
		if p.Wei != pb.Wei.String() || p.Claimed {
			t.Fatalf("b's payout of epoch %d: %+v", p.Epoch, p)
		}
	}

	// A stranger (connected, signed, but no heartbeat) gets nothing.
	testenv.Attack(t, "pool", "strangers and forged requests ask the coordinator for members' payouts")
	stranger := newP2PNode(t)
	stranger.connect(t, ce.node)
	if _, err := Fetch(ctx, stranger.h, stranger.key, ce.node.h.ID()); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("stranger: %v", err)
	}
	// A stranger asking in a's name: its signature is not a's.
	forged := Request{Version: pool.Version, Coordinator: ce.node.h.ID().String(), Member: ma.h.ID().String(), Time: time.Now().UnixMilli()}
	if _, err := ask(ctx, stranger.h, stranger.key, ce.node.h.ID(), forged); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not signed by") {
		t.Fatalf("request in another member's name: %v", err)
	}
	// a's own key, but the request names a's peer while the stream is the stranger's:
	// signed by a, sent by another peer (a replay) — refused too.
	other := Request{Version: pool.Version, Coordinator: stranger.h.ID().String(), Member: ma.h.ID().String(), Time: time.Now().UnixMilli()}
	if _, err := ask(ctx, ma.h, ma.key, ce.node.h.ID(), other); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "request for coordinator") {
		t.Fatalf("request for another coordinator: %v", err)
	}
	stale := Request{Version: pool.Version, Coordinator: ce.node.h.ID().String(), Member: ma.h.ID().String(), Time: time.Now().Add(-time.Hour).UnixMilli()}
	if _, err := ask(ctx, ma.h, ma.key, ce.node.h.ID(), stale); !errors.Is(err, ErrRefused) {
		t.Fatalf("stale request: %v", err)
	}
}

// TestClaimAll: a member claims every unclaimed payout its coordinator reports, and its
// balance moves by them less its gas; a payout whose amount was raised in the answer is
// refused before any transaction while the others are claimed; a second run claims
// nothing.
func TestClaimAll(t *testing.T) {
	testenv.Attack(t, "pool", "coordinator hands a member a payout with a raised amount")
	ce := newCoordinatorEnv(t)
	ctx := t.Context()
	member := ce.fresh(eth(1000))
	m := member.Account()
	for i, job := range []string{"1", "2"} {
		if err := ce.l.Book(ctx, job, eth(int64(100*(i+1))), works(m, addr(9))); err != nil {
			t.Fatal(err)
		}
		if _, err := ce.p.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n := ce.member(t, m)
	ans, err := Fetch(ctx, n.h, n.key, ce.node.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	_, owed, _ := ans.Owed()

	// An answer whose first amount was raised: that payout is refused before any
	// transaction, the other is claimed.
	tampered := ans
	tampered.Payouts = append([]WirePayout(nil), ans.Payouts...)
	raised, _ := new(big.Int).SetString(tampered.Payouts[0].Wei, 10)
	tampered.Payouts[0].Wei = raised.Add(raised, big.NewInt(1)).String()
	before := ce.balance(m)
	first, err := ClaimAll(ctx, member, tampered)
	if err == nil || !strings.Contains(err.Error(), "does not match the root") || len(first.Claims) != 1 || first.Claims[0].Epoch != ans.Payouts[1].Epoch {
		t.Fatalf("tampered answer: %+v %v; want the untouched payout claimed and the raised one refused", first, err)
	}
	rest, err := ClaimAll(ctx, member, ans)
	if err != nil || len(rest.Claims) != 1 || rest.Claims[0].Epoch != ans.Payouts[0].Epoch {
		t.Fatalf("claims: %+v %v, want the one left", rest, err)
	}
	gas := new(big.Int)
	for _, c := range append(first.Claims, rest.Claims...) {
		r, err := ce.bank.Receipt(ctx, common.HexToHash(c.TxHash))
		if err != nil {
			t.Fatal(err)
		}
		gas.Add(gas, new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice))
	}
	if moved := new(big.Int).Sub(ce.balance(m), before); moved.Cmp(new(big.Int).Sub(owed, gas)) != 0 {
		t.Fatalf("balance moved by %s, want %s less gas %s", moved, owed, gas)
	}
	again, err := ClaimAll(ctx, member, ans)
	if err != nil || len(again.Claims) != 0 {
		t.Fatalf("second claim: %+v %v", again, err)
	}
	after, err := Fetch(ctx, n.h, n.key, ce.node.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, pub, cl := after.Owed(); pub.Sign() != 0 || cl.Cmp(owed) != 0 {
		t.Fatalf("after claiming: published %s, claimed %s", pub, cl)
	}
	// A member whose node reports another account is told so.
	if _, err := ClaimAll(ctx, ce.bank, ans); err == nil || !strings.Contains(err.Error(), "pays account") {
		t.Fatalf("claim from another account: %v", err)
	}
}

func signedFrame(t testing.TB, key crypto.PrivKey, kind string, v any) []byte {
	s, err := pool.Sign(key, kind, v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := pool.WriteFrame(&buf, s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzOpenRequest: whatever a peer sends the coordinator is refused with a classified
// error or opens to a valid request from that peer.
func FuzzOpenRequest(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	now := time.Now()
	good := Request{Version: pool.Version, Coordinator: id.String(), Member: id.String(), Time: now.UnixMilli(), FromShare: 3, FromEpoch: 2}
	f.Add(signedFrame(f, key, KindRequest, good))
	f.Add(signedFrame(f, key, KindRequest, map[string]any{"version": 1, "from_share": -1}))
	f.Add(signedFrame(f, key, KindAnswer, good))
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := pool.ReadFrame(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, pool.ErrMalformed) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		r, err := OpenRequest(s, id, id, now)
		if err != nil {
			if !errors.Is(err, pool.ErrMalformed) && !errors.Is(err, pool.ErrForged) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if r.Member != id.String() || r.Validate(now) != nil {
			t.Fatalf("opened an invalid request %+v", r)
		}
	})
}

// FuzzOpenAnswer: whatever a coordinator (or a peer posing as one) answers is refused
// with a classified error or opens to a valid answer within the page bounds.
func FuzzOpenAnswer(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	now := time.Now()
	one := uint64(1)
	good := Answer{Version: pool.Version, Coordinator: id.String(), Member: id.String(), Time: now.UnixMilli(),
		Account: addr(1), Contract: addr(2), FeeBPS: 100, NextPublish: now.Unix(),
		Shares:  []WireShare{{JobID: "7", Wei: "1000", GPUSeconds: 60, Score: 12.5, BookedAt: now.Unix(), Epoch: &one}},
		Payouts: []WirePayout{{Epoch: 1, Wei: "1000", Proof: []common.Hash{{1}, {2}}}}, MorePayouts: true, NextEpoch: 4}
	f.Add([]byte(signedFrame(f, key, KindAnswer, good)))
	f.Add([]byte(signedFrame(f, key, KindAnswer, Answer{Version: 1, Coordinator: id.String(), Member: id.String(), Time: now.UnixMilli(), Refused: "no"})))
	bad := good
	bad.Payouts = []WirePayout{{Epoch: 3, Wei: "1"}, {Epoch: 3, Wei: "1"}}
	f.Add([]byte(signedFrame(f, key, KindAnswer, bad)))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := pool.ReadFrame(bytes.NewReader(b))
		if err != nil {
			return
		}
		a, err := OpenAnswer(s, id, id, now)
		if err != nil {
			if !errors.Is(err, pool.ErrMalformed) && !errors.Is(err, pool.ErrForged) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if len(a.Shares) > maxSharesPerAnswer || len(a.Payouts) > maxPayoutsPerAnswer {
			t.Fatalf("opened an answer beyond the page bounds")
		}
		a.Owed() // must not panic
		MemberView(a)
	})
}
