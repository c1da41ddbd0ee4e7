package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/testenv"
)

var quiet = slog.New(slog.DiscardHandler)

type node struct {
	h   host.Host
	key crypto.PrivKey
}

// newNode is a real libp2p host on loopback.
func newNode(t *testing.T) node {
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
	return node{h, key}
}

func connect(t *testing.T, a, b node) {
	t.Helper()
	if err := a.h.Connect(t.Context(), peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func inventory(gpus, free int) Inventory {
	return func() Heartbeat {
		return Heartbeat{Account: common.HexToAddress("0x00000000000000000000000000000000000000a1"),
			GPUs: gpus, FreeGPUs: free, GPUModel: "NVIDIA A100-SXM4-80GB", Score: 95.5, Admission: "active",
			Datasets: []string{"medical-ct", "imagenet-1k"}}
	}
}

// jobs records what a member accepted.
type jobs struct {
	mu  sync.Mutex
	got []Dispatch
}

func (j *jobs) accept(_ context.Context, d Dispatch) (bool, string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.got = append(j.got, d)
	return true, ""
}

func (j *jobs) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.got)
}

func dispatch(jobID string) Dispatch {
	return Dispatch{JobID: jobID, ManifestCID: "bafkreigh2akiscaildc", ManifestHash: strings.Repeat("ab", 32), Deadline: time.Now().Add(time.Hour).Unix()}
}

// A member reports to the coordinator, is listed alive with its inventory, takes a job
// dispatched to it; once its heartbeats stop, the coordinator lists it gone within the
// bound and no longer dispatches to it.
func TestHeartbeatAndDispatch(t *testing.T) {
	co, mem := newNode(t), newNode(t)
	connect(t, mem, co)
	reg := prometheus.NewRegistry()
	const bound = 2 * time.Second // the dispatch below must come within it, on a busy machine too
	c, err := NewCoordinator(co.h, co.key, bound, quiet, reg)
	if err != nil {
		t.Fatal(err)
	}
	var took jobs
	m, err := NewMember(mem.h, mem.key, co.h.ID(), inventory(8, 6), took.accept, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := m.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	list := c.Members()
	if len(list) != 1 || !list[0].Alive || list[0].Member != mem.h.ID().String() || list[0].GPUs != 8 || list[0].FreeGPUs != 6 || list[0].Score != 95.5 {
		t.Fatalf("members %+v, want the member alive with its inventory", list)
	}
	ack, err := c.Dispatch(ctx, mem.h.ID(), dispatch("7"))
	if err != nil || !ack.Accepted || ack.JobID != "7" {
		t.Fatalf("dispatch: %+v %v", ack, err)
	}
	if took.count() != 1 || took.got[0].JobID != "7" || took.got[0].Coordinator != co.h.ID().String() {
		t.Fatalf("member took %+v", took.got)
	}

	// Heartbeats stop: within the bound (and a margin for this test's polling), gone.
	deadline := time.Now().Add(bound + 2*time.Second)
	for len(c.Gone()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("member not gone %s after its last heartbeat", bound+2*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g := c.Gone(); len(g) != 1 || g[0] != mem.h.ID() {
		t.Fatalf("gone %v", g)
	}
	if _, err := c.Dispatch(ctx, mem.h.ID(), dispatch("8")); err == nil || !strings.Contains(err.Error(), "not alive") {
		t.Fatalf("dispatch to a gone member: %v", err)
	}
	// It comes back.
	if err := m.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if g := c.Gone(); len(g) != 0 {
		t.Fatalf("gone %v after a new heartbeat", g)
	}
	if n := testutil.CollectAndCount(c.refused); n != 0 {
		t.Fatalf("%d refusals in a clean run", n)
	}
}

// A peer that signs a heartbeat naming another member, a heartbeat for another pool, a
// replayed heartbeat, and a dispatch from a peer that is not the coordinator are refused
// (and counted); the honest member's record is untouched.
func TestForgedMessagesRefused(t *testing.T) {
	co, mem, evil := newNode(t), newNode(t), newNode(t)
	connect(t, mem, co)
	connect(t, evil, co)
	connect(t, evil, mem)
	c, err := NewCoordinator(co.h, co.key, time.Minute, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	var took jobs
	m, err := NewMember(mem.h, mem.key, co.h.ID(), inventory(2, 2), took.accept, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := m.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	hb := inventory(64, 64)()
	hb.Version, hb.Pool, hb.Seq, hb.Time = Version, co.h.ID().String(), 99, time.Now().UnixMilli()

	send := func(t *testing.T, key crypto.PrivKey, proto string, kind string, msg any) Ack {
		t.Helper()
		s, err := Sign(key, kind, msg)
		if err != nil {
			t.Fatal(err)
		}
		to := co.h.ID()
		if kind == KindDispatch {
			to = mem.h.ID()
		}
		ack, err := exchange(ctx, evil.h, to, protocolOf(proto), s)
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	t.Run("heartbeat naming another member", func(t *testing.T) {
		testenv.Attack(t, "pool", "heartbeat naming another member")
		forged := hb
		forged.Member = mem.h.ID().String()
		if ack := send(t, evil.key, "hb", KindHeartbeat, forged); ack.Accepted || !strings.Contains(ack.Reason, "not signed by the peer") && !strings.Contains(ack.Reason, "sent a heartbeat for") {
			t.Fatalf("forged heartbeat answered %+v", ack)
		}
	})
	t.Run("heartbeat for another pool", func(t *testing.T) {
		testenv.Attack(t, "pool", "heartbeat for another pool")
		other := hb
		other.Member, other.Pool = evil.h.ID().String(), mem.h.ID().String()
		if ack := send(t, evil.key, "hb", KindHeartbeat, other); ack.Accepted || !strings.Contains(ack.Reason, "another pool") {
			t.Fatalf("other pool's heartbeat answered %+v", ack)
		}
	})
	t.Run("heartbeat from far in the future", func(t *testing.T) {
		testenv.Attack(t, "pool", "heartbeat from far in the future")
		late := hb
		late.Member, late.Time = evil.h.ID().String(), time.Now().Add(time.Hour).UnixMilli()
		if ack := send(t, evil.key, "hb", KindHeartbeat, late); ack.Accepted {
			t.Fatalf("future heartbeat answered %+v", ack)
		}
	})
	t.Run("replayed heartbeat", func(t *testing.T) {
		testenv.Attack(t, "pool", "replayed heartbeat")
		own := hb
		own.Member = evil.h.ID().String()
		if ack := send(t, evil.key, "hb", KindHeartbeat, own); !ack.Accepted {
			t.Fatalf("honest heartbeat refused: %s", ack.Reason)
		}
		if ack := send(t, evil.key, "hb", KindHeartbeat, own); ack.Accepted || !strings.Contains(ack.Reason, "older than one already seen") {
			t.Fatalf("replayed heartbeat answered %+v", ack)
		}
	})
	t.Run("dispatch from a peer that is not the coordinator", func(t *testing.T) {
		testenv.Attack(t, "pool", "dispatch from a peer that is not the coordinator")
		d := dispatch("9")
		d.Version, d.Coordinator, d.Member, d.Seq, d.Time = Version, co.h.ID().String(), mem.h.ID().String(), 1, time.Now().UnixMilli()
		if ack := send(t, evil.key, "dispatch", KindDispatch, d); ack.Accepted || took.count() != 0 {
			t.Fatalf("forged dispatch answered %+v, member took %d jobs", ack, took.count())
		}
	})
	for _, mi := range c.Members() {
		if mi.Member == mem.h.ID().String() && (mi.GPUs != 2 || mi.Seq != 1) {
			t.Fatalf("the honest member's record changed: %+v", mi)
		}
	}
	if got := testutil.ToFloat64(c.refused.WithLabelValues(KindHeartbeat, "forged")); got != 1 {
		t.Errorf("forged heartbeats counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues("other_pool")); got != 1 {
		t.Errorf("dispatches from outsiders counted %v, want 1", got)
	}
}

func protocolOf(s string) protocol.ID {
	if s == "dispatch" {
		return DispatchProtocol
	}
	return HeartbeatProtocol
}

// Frames: oversized, truncated and garbage input is refused before any signature check.
func TestReadFrameRefuses(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":     {},
		"zero":      {0, 0, 0, 0},
		"oversized": {0, 1, 0, 0},
		"truncated": {0, 0, 0, 10, '{'},
		"not json":  append([]byte{0, 0, 0, 3}, "abc"...),
		"no sig":    append([]byte{0, 0, 0, 13}, `{"kind":"x"}`+" "...),
	} {
		if _, err := ReadFrame(bytes.NewReader(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzOpenHeartbeat and FuzzOpenDispatch: whatever a peer sends, decoding either refuses
// it with ErrMalformed/ErrForged or yields a message that validates and was signed by
// the peer.
func FuzzOpenHeartbeat(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	hb := inventory(8, 6)()
	hb.Version, hb.Pool, hb.Member, hb.Seq, hb.Time = Version, id.String(), id.String(), 1, time.Now().UnixMilli()
	s, _ := Sign(key, KindHeartbeat, hb)
	var buf bytes.Buffer
	WriteFrame(&buf, s)
	f.Add(buf.Bytes())
	bad := hb
	bad.Datasets = []string{"../../etc"}
	s, _ = Sign(key, KindHeartbeat, bad)
	buf.Reset()
	WriteFrame(&buf, s)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadFrame(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		var got Heartbeat
		if err := s.Open(KindHeartbeat, id, &got); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		_ = got.Validate() // must not panic; a valid signature means the fuzzer kept the seed's body
	})
}

func FuzzOpenDispatch(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	d := dispatch("12")
	d.Version, d.Coordinator, d.Member, d.Seq, d.Time = Version, id.String(), id.String(), 1, time.Now().UnixMilli()
	s, _ := Sign(key, KindDispatch, d)
	f.Add([]byte(s.Body), s.Sig)
	f.Add([]byte(`{"version":1,"cluster":{"id":"x","nnodes":70}}`), []byte{1})
	f.Fuzz(func(t *testing.T, body, sig []byte) {
		s := Signed{Kind: KindDispatch, Body: body, Sig: sig}
		var got Dispatch
		err := s.Open(KindDispatch, id, &got)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !bytes.Equal(body, s.Body) {
			t.Fatal("body changed")
		}
		if err := got.Validate(); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

// results records what a coordinator was handed, refusing jobs in refuse.
type results struct {
	mu     sync.Mutex
	got    []Result
	from   []peer.ID
	refuse map[string]string
}

func (r *results) take(_ context.Context, from peer.ID, res Result) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if why, ok := r.refuse[res.JobID]; ok {
		return false, why
	}
	r.got = append(r.got, res)
	r.from = append(r.from, from)
	return true, ""
}

func (r *results) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func doneResult(jobID string) Result {
	return Result{JobID: jobID, DispatchSeq: 1, Status: ResultDone, CID: "bafkreigh2akiscaildc", Hash: strings.Repeat("cd", 32), WallSeconds: 12.5, GPUs: 2}
}

// A member hands a result back: the coordinator's handler gets it with the sender, and
// its answer (taken or refused with a reason) comes back signed. Before a handler is
// set, results are refused.
func TestResultExchange(t *testing.T) {
	co, mem := newNode(t), newNode(t)
	connect(t, mem, co)
	c, err := NewCoordinator(co.h, co.key, time.Minute, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	var took jobs
	m, err := NewMember(mem.h, mem.key, co.h.ID(), inventory(2, 2), took.accept, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ack, err := m.SendResult(ctx, doneResult("5"))
	if err != nil || ack.Accepted || !strings.Contains(ack.Reason, "takes no results") {
		t.Fatalf("result before a handler: %+v %v", ack, err)
	}
	got := results{refuse: map[string]string{"6": "job reassigned to another member"}}
	c.SetResultHandler(got.take)
	ack, err = m.SendResult(ctx, doneResult("5"))
	if err != nil || !ack.Accepted || ack.JobID != "5" || ack.From != co.h.ID().String() {
		t.Fatalf("result: %+v %v", ack, err)
	}
	if got.count() != 1 || got.from[0] != mem.h.ID() || got.got[0].Member != mem.h.ID().String() || got.got[0].CID != "bafkreigh2akiscaildc" || got.got[0].WallSeconds != 12.5 {
		t.Fatalf("coordinator got %+v from %v", got.got, got.from)
	}
	ack, err = m.SendResult(ctx, doneResult("6"))
	if err != nil || ack.Accepted || ack.Reason != "job reassigned to another member" {
		t.Fatalf("refused result answered %+v %v", ack, err)
	}
	// A rank-1 result publishes nothing; a failed one says why.
	ack, err = m.SendResult(ctx, Result{JobID: "7", Status: ResultDone, Rank: 1, WallSeconds: 3})
	if err != nil || !ack.Accepted {
		t.Fatalf("rank 1 result: %+v %v", ack, err)
	}
	ack, err = m.SendResult(ctx, Result{JobID: "8", Status: ResultFailed, Reason: "container exited 1"})
	if err != nil || !ack.Accepted {
		t.Fatalf("failed result: %+v %v", ack, err)
	}
	// The member refuses to send a malformed result itself.
	if _, err := m.SendResult(ctx, Result{JobID: "9", Status: ResultDone}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("done result without a checkpoint: %v", err)
	}
	if got.count() != 3 {
		t.Fatalf("coordinator took %d results, want 3", got.count())
	}
}

// A peer that signs a result naming another member, a result for another pool, a
// result signed by a key that is not the sender's, and a replayed result are all refused
// and counted; the handler never sees them.
func TestForgedResultRefused(t *testing.T) {
	co, mem, evil := newNode(t), newNode(t), newNode(t)
	connect(t, mem, co)
	connect(t, evil, co)
	c, err := NewCoordinator(co.h, co.key, time.Minute, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got results
	c.SetResultHandler(got.take)
	ctx := t.Context()
	send := func(t *testing.T, key crypto.PrivKey, r Result) Ack {
		t.Helper()
		s, err := Sign(key, KindResult, r)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := exchange(ctx, evil.h, co.h.ID(), ResultProtocol, s)
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	base := doneResult("11")
	base.Version, base.Coordinator, base.Seq, base.Time = Version, co.h.ID().String(), 1, time.Now().UnixMilli()
	t.Run("result naming another member", func(t *testing.T) {
		testenv.Attack(t, "pool", "result naming another member")
		r := base
		r.Member = mem.h.ID().String()
		if ack := send(t, evil.key, r); ack.Accepted || !strings.Contains(ack.Reason, "sent a result for") {
			t.Fatalf("forged result answered %+v", ack)
		}
	})
	t.Run("result signed by the member's key over evil's stream", func(t *testing.T) {
		testenv.Attack(t, "pool", "result signed by the member's key over evil's stream")
		r := base
		r.Member = mem.h.ID().String()
		if ack := send(t, mem.key, r); ack.Accepted || !strings.Contains(ack.Reason, "not signed by the peer") {
			t.Fatalf("result signed by another key answered %+v", ack)
		}
	})
	t.Run("result for another pool", func(t *testing.T) {
		testenv.Attack(t, "pool", "result for another pool")
		r := base
		r.Member, r.Coordinator = evil.h.ID().String(), mem.h.ID().String()
		if ack := send(t, evil.key, r); ack.Accepted || !strings.Contains(ack.Reason, "another pool") {
			t.Fatalf("other pool's result answered %+v", ack)
		}
	})
	t.Run("malformed result", func(t *testing.T) {
		testenv.Attack(t, "pool", "malformed result")
		r := base
		r.Member, r.Status = evil.h.ID().String(), "paid"
		if ack := send(t, evil.key, r); ack.Accepted || !strings.Contains(ack.Reason, "status") {
			t.Fatalf("malformed result answered %+v", ack)
		}
	})
	if got.count() != 0 {
		t.Fatalf("the handler took %+v", got.got)
	}
	t.Run("replayed result", func(t *testing.T) {
		testenv.Attack(t, "pool", "replayed result")
		r := base
		r.Member = evil.h.ID().String()
		if ack := send(t, evil.key, r); !ack.Accepted {
			t.Fatalf("honest result refused: %s", ack.Reason)
		}
		if ack := send(t, evil.key, r); ack.Accepted || !strings.Contains(ack.Reason, "older than one already seen") {
			t.Fatalf("replayed result answered %+v", ack)
		}
	})
	if got.count() != 1 {
		t.Fatalf("the handler took %d results, want the one honest", got.count())
	}
	for reason, want := range map[string]float64{"forged": 2, "other_pool": 1, "malformed": 1, "replayed": 1} {
		if n := testutil.ToFloat64(c.refused.WithLabelValues(KindResult, reason)); n != want {
			t.Errorf("%s results counted %v, want %v", reason, n, want)
		}
	}
}

// TestHeartbeatDatasets: a member's dataset tags are bounded in number and must be tags
// (never paths, nothing a shell or a log line would trip on).
func TestHeartbeatDatasets(t *testing.T) {
	co, mem := newNode(t), newNode(t)
	ok := inventory(8, 6)()
	ok.Version, ok.Pool, ok.Member, ok.Seq, ok.Time = Version, co.h.ID().String(), mem.h.ID().String(), 1, time.Now().UnixMilli()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid heartbeat: %v", err)
	}
	many := make([]string, MaxDatasets+1)
	for i := range many {
		many[i] = fmt.Sprintf("set-%d", i)
	}
	for name, c := range map[string]struct {
		tags []string
		want string
	}{
		"a path":          {[]string{"/srv/data/medical"}, "dataset tag"},
		"a parent":        {[]string{".."}, "dataset tag"},
		"upper case":      {[]string{"Medical"}, "dataset tag"},
		"empty":           {[]string{""}, "dataset tag"},
		"too long":        {[]string{strings.Repeat("a", 64)}, "dataset tag"},
		"a newline":       {[]string{"ct\nforged"}, "dataset tag"},
		"too many":        {many, "datasets, at most"},
		"one bad of many": {[]string{"ok", "a b"}, "dataset tag"},
	} {
		h := ok
		h.Datasets = c.tags
		if err := h.Validate(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrMalformed about %q", name, err, c.want)
		}
	}
	h := ok
	h.Datasets = many[:MaxDatasets]
	if err := h.Validate(); err != nil {
		t.Errorf("%d datasets: %v", MaxDatasets, err)
	}
}

func TestResultValidate(t *testing.T) {
	co, mem := newNode(t), newNode(t)
	ok := doneResult("3")
	ok.Version, ok.Coordinator, ok.Member, ok.Seq, ok.Time = Version, co.h.ID().String(), mem.h.ID().String(), 1, time.Now().UnixMilli()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid result: %v", err)
	}
	for name, c := range map[string]struct {
		mut  func(*Result)
		want string
	}{
		"version":             {func(r *Result) { r.Version = 2 }, "version"},
		"coordinator":         {func(r *Result) { r.Coordinator = "x" }, "coordinator"},
		"job id":              {func(r *Result) { r.JobID = "../x" }, "job id"},
		"status":              {func(r *Result) { r.Status = "" }, "status"},
		"done without cid":    {func(r *Result) { r.CID = "" }, "without its checkpoint"},
		"bad cid":             {func(r *Result) { r.CID = "a/b" }, "cid"},
		"bad hash":            {func(r *Result) { r.Hash = "zz" }, "hash"},
		"rank":                {func(r *Result) { r.Rank = 64 }, "rank"},
		"negative rank":       {func(r *Result) { r.Rank = -1 }, "rank"},
		"NaN wall":            {func(r *Result) { r.WallSeconds = math.NaN() }, "wall seconds"},
		"negative wall":       {func(r *Result) { r.WallSeconds = -1 }, "wall seconds"},
		"gpus":                {func(r *Result) { r.GPUs = 2000 }, "gpus"},
		"failed with a cid":   {func(r *Result) { r.Status, r.Reason = ResultFailed, "x" }, "with a checkpoint"},
		"declined, no reason": {func(r *Result) { r.Status, r.CID, r.Hash = ResultDeclined, "", "" }, "without a reason"},
		"long reason":         {func(r *Result) { r.Reason = strings.Repeat("x", 513) }, "reason"},
	} {
		r := ok
		c.mut(&r)
		if err := r.Validate(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrMalformed about %q", name, err, c.want)
		}
	}
}

// FuzzOpenResult: whatever a member sends, decoding refuses it with ErrMalformed or
// ErrForged, or yields a result whose validation is classified.
func FuzzOpenResult(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	r := doneResult("12")
	r.Version, r.Coordinator, r.Member, r.Seq, r.Time = Version, id.String(), id.String(), 1, time.Now().UnixMilli()
	s, _ := Sign(key, KindResult, r)
	var buf bytes.Buffer
	WriteFrame(&buf, s)
	f.Add(buf.Bytes())
	failed := r
	failed.Status, failed.CID, failed.Hash, failed.Reason, failed.Rank = ResultFailed, "", "", "oom", 3
	s, _ = Sign(key, KindResult, failed)
	buf.Reset()
	WriteFrame(&buf, s)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add(append([]byte{0, 0, 0, 52}, `{"kind":"result","body":{"wall_seconds":1e400},"sig":"AQ=="}`[:52]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadFrame(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		var got Result
		if err := s.Open(KindResult, id, &got); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if err := got.Validate(); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
