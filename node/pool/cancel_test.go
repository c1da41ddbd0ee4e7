package pool

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/testenv"
)

// stops records the cancels a member's handler was handed.
type stops struct {
	mu  sync.Mutex
	got []Cancel
}

func (s *stops) stop(_ context.Context, c Cancel) (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, c)
	if c.JobID == "404" {
		return false, "no such job here"
	}
	return true, ""
}

func (s *stops) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// The coordinator takes a job back: the member's handler gets the job and the reason,
// and its answer comes back signed. Before a handler is set, cancels are refused; a
// member that is not alive (no heartbeat) is still reached.
func TestCancelExchange(t *testing.T) {
	co, mem := newNode(t), newNode(t)
	connect(t, co, mem)
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
	ack, err := c.Cancel(ctx, mem.h.ID(), "5", "member gone")
	if err != nil || ack.Accepted || !strings.Contains(ack.Reason, "takes no cancels") {
		t.Fatalf("cancel before a handler: %+v %v", ack, err)
	}
	var got stops
	m.SetCancelHandler(got.stop)
	ack, err = c.Cancel(ctx, mem.h.ID(), "5", "job reassigned: member gone")
	if err != nil || !ack.Accepted || ack.JobID != "5" || ack.From != mem.h.ID().String() {
		t.Fatalf("cancel: %+v %v", ack, err)
	}
	if got.count() != 1 || got.got[0].JobID != "5" || got.got[0].Reason != "job reassigned: member gone" ||
		got.got[0].Coordinator != co.h.ID().String() || got.got[0].Member != mem.h.ID().String() {
		t.Fatalf("member got %+v", got.got)
	}
	ack, err = c.Cancel(ctx, mem.h.ID(), "404", "x")
	if err != nil || ack.Accepted || ack.Reason != "no such job here" {
		t.Fatalf("refused cancel answered %+v %v", ack, err)
	}
	// A long reason is cut, not refused; a bad job id is refused before it is sent.
	if ack, err := c.Cancel(ctx, mem.h.ID(), "6", strings.Repeat("é", 400)); err != nil || !ack.Accepted || len(got.got[2].Reason) > 512 {
		t.Fatalf("cancel with a long reason: %+v %v", ack, err)
	}
	if _, err := c.Cancel(ctx, mem.h.ID(), "../6", "x"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("cancel of a bad job id: %v", err)
	}
	if _, err := c.Cancel(ctx, mem.h.ID(), "6", ""); !errors.Is(err, ErrMalformed) {
		t.Fatalf("cancel without a reason: %v", err)
	}
	if n := testutil.CollectAndCount(m.cancelsRefused); n != 0 {
		t.Fatalf("%d refusals in a clean run", n)
	}
	// Once closed, the member takes no cancels.
	m.Close()
	if _, err := c.Cancel(ctx, mem.h.ID(), "7", "x"); err == nil {
		t.Fatal("cancel reached a closed member")
	}
}

// A cancel from a peer that is not the coordinator, one signed by the coordinator's key
// but sent by another peer, one for another member, one from far in the future and a
// replayed one are refused and counted; the handler sees only the honest one.
func TestForgedCancelRefused(t *testing.T) {
	co, mem, evil, other := newNode(t), newNode(t), newNode(t), newNode(t)
	connect(t, co, mem)
	connect(t, evil, mem)
	var took jobs
	m, err := NewMember(mem.h, mem.key, co.h.ID(), inventory(2, 2), took.accept, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got stops
	m.SetCancelHandler(got.stop)
	ctx := t.Context()
	send := func(t *testing.T, from node, key crypto.PrivKey, c Cancel) Ack {
		t.Helper()
		s, err := Sign(key, KindCancel, c)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := exchange(ctx, from.h, mem.h.ID(), CancelProtocol, s)
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	base := Cancel{Version: Version, Coordinator: co.h.ID().String(), Member: mem.h.ID().String(), Seq: 10,
		Time: time.Now().UnixMilli(), JobID: "21", Reason: "job reassigned"}
	t.Run("cancel from a stranger naming the coordinator", func(t *testing.T) {
		testenv.Attack(t, "pool", "cancel from a stranger naming the coordinator")
		if ack := send(t, evil, evil.key, base); ack.Accepted || !strings.Contains(ack.Reason, "not this pool's coordinator") {
			t.Fatalf("stranger's cancel answered %+v", ack)
		}
	})
	t.Run("cancel signed by the coordinator's key over a stranger's stream", func(t *testing.T) {
		testenv.Attack(t, "pool", "cancel signed by the coordinator's key over a stranger's stream")
		if ack := send(t, evil, co.key, base); ack.Accepted {
			t.Fatalf("relayed cancel answered %+v", ack)
		}
	})
	t.Run("cancel for another member", func(t *testing.T) {
		testenv.Attack(t, "pool", "cancel for another member")
		c := base
		c.Member = other.h.ID().String()
		if ack := send(t, co, co.key, c); ack.Accepted || !strings.Contains(ack.Reason, "not signed by the peer it names") {
			t.Fatalf("cancel for another member answered %+v", ack)
		}
	})
	t.Run("cancel signed by another key", func(t *testing.T) {
		testenv.Attack(t, "pool", "cancel signed by another key")
		if ack := send(t, co, evil.key, base); ack.Accepted || !strings.Contains(ack.Reason, "not signed by the peer") {
			t.Fatalf("cancel signed by another key answered %+v", ack)
		}
	})
	t.Run("cancel from far in the future", func(t *testing.T) {
		testenv.Attack(t, "pool", "cancel from far in the future")
		c := base
		c.Time = time.Now().Add(time.Hour).UnixMilli()
		if ack := send(t, co, co.key, c); ack.Accepted {
			t.Fatalf("future cancel answered %+v", ack)
		}
	})
	t.Run("malformed cancel", func(t *testing.T) {
		testenv.Attack(t, "pool", "malformed cancel")
		c := base
		c.Reason = ""
		if ack := send(t, co, co.key, c); ack.Accepted || !strings.Contains(ack.Reason, "without a reason") {
			t.Fatalf("malformed cancel answered %+v", ack)
		}
	})
	if got.count() != 0 {
		t.Fatalf("the handler took %+v", got.got)
	}
	t.Run("replayed cancel", func(t *testing.T) {
		testenv.Attack(t, "pool", "replayed cancel")
		if ack := send(t, co, co.key, base); !ack.Accepted {
			t.Fatalf("honest cancel refused: %s", ack.Reason)
		}
		if ack := send(t, co, co.key, base); ack.Accepted || !strings.Contains(ack.Reason, "older than one already seen") {
			t.Fatalf("replayed cancel answered %+v", ack)
		}
	})
	if got.count() != 1 || got.got[0].JobID != "21" {
		t.Fatalf("the handler took %+v, want the one honest cancel", got.got)
	}
	for reason, want := range map[string]float64{"other_pool": 2, "forged": 2, "malformed": 2, "replayed": 1} {
		if n := testutil.ToFloat64(m.cancelsRefused.WithLabelValues(reason)); n != want {
			t.Errorf("%s cancels counted %v, want %v", reason, n, want)
		}
	}
	if took.count() != 0 {
		t.Fatalf("a cancel made the member take %d jobs", took.count())
	}
}

func TestCancelValidate(t *testing.T) {
	co, mem := newNode(t), newNode(t)
	ok := Cancel{Version: Version, Coordinator: co.h.ID().String(), Member: mem.h.ID().String(), Seq: 1,
		Time: time.Now().UnixMilli(), JobID: "3", Reason: "reassigned"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid cancel: %v", err)
	}
	for name, c := range map[string]struct {
		mut  func(*Cancel)
		want string
	}{
		"version":     {func(c *Cancel) { c.Version = 2 }, "version"},
		"coordinator": {func(c *Cancel) { c.Coordinator = "x" }, "coordinator"},
		"member":      {func(c *Cancel) { c.Member = "" }, "member"},
		"job id":      {func(c *Cancel) { c.JobID = "../x" }, "job id"},
		"no job id":   {func(c *Cancel) { c.JobID = "" }, "job id"},
		"no reason":   {func(c *Cancel) { c.Reason = "" }, "without a reason"},
		"long reason": {func(c *Cancel) { c.Reason = strings.Repeat("x", 513) }, "reason"},
	} {
		c2 := ok
		c.mut(&c2)
		if err := c2.Validate(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrMalformed about %q", name, err, c.want)
		}
	}
}

// FuzzOpenCancel: whatever a peer sends, decoding refuses it with ErrMalformed or
// ErrForged, or yields a cancel whose validation is classified.
func FuzzOpenCancel(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	c := Cancel{Version: Version, Coordinator: id.String(), Member: id.String(), Seq: 1, Time: time.Now().UnixMilli(), JobID: "12", Reason: "reassigned"}
	s, _ := Sign(key, KindCancel, c)
	var buf bytes.Buffer
	WriteFrame(&buf, s)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add(append([]byte{0, 0, 0, 60}, `{"kind":"cancel","body":{"job_id":"../1","reason":""},"sig":"AQ=="}`[:60]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadFrame(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		var got Cancel
		if err := s.Open(KindCancel, id, &got); err != nil {
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
