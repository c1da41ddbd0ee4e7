package pool

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Results, dispatches and cancels sent at once to one peer are all taken: each is
// numbered and sent in turn, so none arrives behind a later one and is refused as a
// replay.
func TestConcurrentMessagesInOrder(t *testing.T) {
	co, mem := newNode(t), newNode(t)
	connect(t, mem, co)
	c, err := NewCoordinator(co.h, co.key, time.Minute, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got results
	c.SetResultHandler(got.take)
	var took jobs
	m, err := NewMember(mem.h, mem.key, co.h.ID(), inventory(2, 2), took.accept, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stopped stops
	m.SetCancelHandler(stopped.stop)
	ctx := t.Context()
	if err := m.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		id := fmt.Sprint(100 + i)
		wg.Add(3)
		go func() {
			defer wg.Done()
			if ack, err := m.SendResult(ctx, doneResult(id)); err != nil || !ack.Accepted {
				errs <- fmt.Errorf("result %s: %+v %v", id, ack, err)
			}
		}()
		go func() {
			defer wg.Done()
			if ack, err := c.Dispatch(ctx, mem.h.ID(), dispatch(id)); err != nil || !ack.Accepted {
				errs <- fmt.Errorf("dispatch %s: %+v %v", id, ack, err)
			}
		}()
		go func() {
			defer wg.Done()
			if ack, err := c.Cancel(ctx, mem.h.ID(), id, "reassigned"); err != nil || !ack.Accepted {
				errs <- fmt.Errorf("cancel %s: %+v %v", id, ack, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got.count() != n || took.count() != n || stopped.count() != n {
		t.Fatalf("took %d results, %d dispatches, %d cancels; want %d each", got.count(), took.count(), stopped.count(), n)
	}
}
