package jobs

import (
	"slices"
	"sync"
	"testing"
)

// TestAllocatorSkipsUnusableGPUs: a GPU taken out of service (lost, fatal XID) while the
// node runs is never handed to a new job, and is not counted free; a job that already
// holds it keeps its claim until it ends.
func TestAllocatorSkipsUnusableGPUs(t *testing.T) {
	var mu sync.Mutex
	out := map[string]bool{}
	usable := func(u string) bool { mu.Lock(); defer mu.Unlock(); return !out[u] }
	a := newAllocator([]string{"GPU-a", "GPU-b", "MIG-c", "MIG-d"}, usable)
	held, err := a.take("1", 1)
	if err != nil || !slices.Equal(held, []string{"GPU-a"}) {
		t.Fatalf("take: %v %v", held, err)
	}
	mu.Lock()
	out["GPU-a"], out["GPU-b"] = true, true
	mu.Unlock()
	if n := a.free(); n != 2 {
		t.Errorf("free = %d, want 2 (the MIG instances)", n)
	}
	got, err := a.take("2", 2)
	if err != nil || !slices.Equal(got, []string{"MIG-c", "MIG-d"}) {
		t.Errorf("take 2: %v %v, want the two usable instances", got, err)
	}
	if _, err := a.take("3", 1); err == nil {
		t.Error("an unusable gpu was handed out")
	}
	a.release("1")
	if n := a.free(); n != 0 {
		t.Errorf("free after release = %d: a gpu out of service came back", n)
	}
}
