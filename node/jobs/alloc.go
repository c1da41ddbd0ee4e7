package jobs

import (
	"fmt"
	"sync"
)

// allocator hands GPUs to jobs. A GPU belongs to at most one job at a time; a GPU that
// is no longer usable (lost, fatal XID) is never handed out again.
type allocator struct {
	mu     sync.Mutex
	all    []string
	owner  map[string]string // gpu uuid → job id
	usable func(uuid string) bool
}

func newAllocator(gpus []string, usable func(string) bool) *allocator {
	if usable == nil {
		usable = func(string) bool { return true }
	}
	return &allocator{all: gpus, owner: map[string]string{}, usable: usable}
}

// take gives job id n free GPUs, or the ones it already holds.
func (a *allocator) take(id string, n int) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var held, free []string
	for _, g := range a.all {
		switch a.owner[g] {
		case id:
			held = append(held, g)
		case "":
			if a.usable(g) {
				free = append(free, g)
			}
		}
	}
	if len(held) >= n {
		return held[:n], nil
	}
	if len(held)+len(free) < n {
		return nil, fmt.Errorf("needs %d GPUs, %d free", n, len(free))
	}
	out := append(held, free[:n-len(held)]...)
	for _, g := range out {
		a.owner[g] = id
	}
	return out, nil
}

// claim records GPUs a resumed job already holds.
func (a *allocator) claim(id string, gpus []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, g := range gpus {
		a.owner[g] = id
	}
}

// release frees every GPU of a job.
func (a *allocator) release(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for g, o := range a.owner {
		if o == id {
			delete(a.owner, g)
		}
	}
}

// free counts unassigned usable GPUs.
func (a *allocator) free() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, g := range a.all {
		if a.owner[g] == "" && a.usable(g) {
			n++
		}
	}
	return n
}

// peek returns n free GPUs without taking them: what a job would get now, for its dry run.
func (a *allocator) peek(n int) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, g := range a.all {
		if len(out) < n && a.owner[g] == "" {
			out = append(out, g)
		}
	}
	return out
}
