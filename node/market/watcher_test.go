package market

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"slices"
	"testing"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// recorder counts how often each event was handled.
type recorder struct {
	order []string
	seen  map[string]int
}

func (r *recorder) handler(stopAfter int, cancel context.CancelFunc) Handler {
	return func(_ context.Context, e Event) error {
		if r.seen == nil {
			r.seen = map[string]int{}
		}
		r.seen[e.ID()]++
		r.order = append(r.order, e.ID())
		if stopAfter > 0 && len(r.order) == stopAfter {
			cancel()
		}
		return nil
	}
}

func (r *recorder) check(t *testing.T, want []string) {
	t.Helper()
	for id, n := range r.seen {
		if n != 1 {
			t.Errorf("event %s handled %d times", id, n)
		}
	}
	if !slices.Equal(r.order, want) {
		t.Errorf("handled %d events %v\nwant %d %v", len(r.order), r.order, len(want), want)
	}
}

// TestWatcherRestart stops the watcher in the middle of a block's events, starts a new
// one on the same cursor file, and checks that every event was handled exactly once, in
// chain order.
func TestWatcherRestart(t *testing.T) {
	c := newTestChain(t)
	const conf = 2
	c.postJobs(3)
	c.commit(1)
	c.postJobs(2)
	c.commit(1)
	c.postJobs(1)
	c.commit(conf + 1)
	cursor := FileCursor(filepath.Join(t.TempDir(), "cursor.json"))
	cfg := WatcherConfig{Contract: c.market, StartBlock: c.deploy, Confirmations: conf, MaxRange: 2}
	rec := &recorder{}

	ctx, cancel := context.WithCancel(t.Context())
	w := NewWatcher(cfg, c.client, cursor, rec.handler(2, cancel), discard(), NewMetrics(nil))
	w.setPos(Position{Block: cfg.StartBlock})
	if err := w.Round(ctx); err == nil {
		t.Fatal("round did not stop when its context was cancelled")
	}
	if len(rec.order) != 2 {
		t.Fatalf("handled %d events before the stop, want 2", len(rec.order))
	}
	if p, _, _ := cursor.Load(); p.NextIndex != 2 {
		t.Fatalf("cursor %+v: want to stop inside the first block", p)
	}

	// Restart: a new watcher resumes from the file.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	w2 := NewWatcher(cfg, c.client, cursor, rec.handler(0, nil), discard(), nil)
	p, ok, err := cursor.Load()
	if err != nil || !ok {
		t.Fatal(err)
	}
	w2.setPos(p)
	if err := w2.Round(ctx2); err != nil {
		t.Fatal(err)
	}
	rec.check(t, c.canonical())

	// More events later, and a round with nothing new, still once each.
	c.postJobs(2)
	c.commit(1)
	if err := w2.Round(ctx2); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.order); n != 6 {
		t.Fatalf("unconfirmed events were handled: %d", n)
	}
	// One block more than the depth: the simulated pool sometimes promotes the second
	// postJob only after the commit above, so it lands in the first of these blocks.
	c.commit(conf + 1)
	// A round reads at most MaxRange blocks, so catching up can take several; extra
	// rounds must not handle anything twice.
	for range 10 {
		if err := w2.Round(ctx2); err != nil {
			t.Fatal(err)
		}
	}
	rec.check(t, c.canonical())
	if len(rec.order) != 8 {
		t.Fatalf("handled %d, want 8", len(rec.order))
	}
}

// TestWatcherReorg replaces the blocks holding an event that is not yet confirmed: the
// watcher never hands out the orphaned log, and handles the canonical chain's once.
func TestWatcherReorg(t *testing.T) {
	c := newTestChain(t)
	const conf = 3
	c.postJobs(1)
	c.commit(conf + 1)
	cfg := WatcherConfig{Contract: c.market, StartBlock: c.deploy, Confirmations: conf}
	rec := &recorder{}
	w := NewWatcher(cfg, c.client, &memCursor{}, rec.handler(0, nil), discard(), nil)
	w.setPos(Position{Block: cfg.StartBlock})
	ctx := t.Context()
	if err := w.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.order) != 1 {
		t.Fatalf("handled %d, want 1", len(rec.order))
	}

	head, err := c.client.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.postJobs(2)
	orphan := c.commit(1)
	c.commit(1)
	if err := w.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.order) != 1 {
		t.Fatal("an event within the confirmation depth was handled")
	}
	orphanLogs, _ := c.client.FilterLogs(ctx, filterAll(c.market, head.Number.Uint64()+1))
	if len(orphanLogs) != 2 {
		t.Fatalf("%d logs on the branch to orphan, want 2", len(orphanLogs))
	}
	// Reorg: a longer branch from the old head replaces both blocks.
	if err := c.sim.Fork(head.Hash()); err != nil {
		t.Fatal(err)
	}
	c.commit(conf + 3)
	if h, _ := c.client.HeaderByNumber(ctx, new(big.Int).Add(head.Number, big.NewInt(1))); h.Hash() == orphan {
		t.Fatal("the fork did not replace the block")
	}
	for range 2 {
		if err := w.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range orphanLogs {
		if rec.seen[Event{Log: l}.ID()] != 0 {
			t.Errorf("orphaned log %s was handled", Event{Log: l}.ID())
		}
	}
	rec.check(t, c.canonical())
}

func TestFileCursorRoundTrip(t *testing.T) {
	f := FileCursor(filepath.Join(t.TempDir(), "sub", "c.json"))
	if _, ok, err := f.Load(); ok || err != nil {
		t.Fatalf("empty cursor: %v %v", ok, err)
	}
	want := Position{Block: 7, NextIndex: 3}
	if err := f.Save(want); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := f.Load(); !ok || err != nil || got != want {
		t.Fatalf("got %+v %v %v", got, ok, err)
	}
}
