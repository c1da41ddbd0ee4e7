package jobs

import "fmt"

// ReserveAll takes every GPU the machine hands out for holder, which is not a job (the
// rig's benchmark), when none of them is leased to a job: a benchmark on a GPU that a
// paying job uses would slow the job and sign a low score. While reserved, no job gets
// them. Release gives them back.
func (m *Machine) ReserveAll(holder string) ([]string, error) {
	return m.alloc.takeAll(holder)
}

// Release gives back what ReserveAll took for holder.
func (m *Machine) Release(holder string) { m.alloc.release(holder) }

// takeAll gives id every usable GPU, or none if any is held by someone else.
func (a *allocator) takeAll(id string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	busy := 0
	for _, g := range a.all {
		if !a.usable(g) {
			continue
		}
		switch a.owner[g] {
		case "", id:
			out = append(out, g)
		default:
			busy++
		}
	}
	if busy > 0 {
		return nil, fmt.Errorf("%d of %d GPUs are leased to jobs: try again when the rig is idle", busy, busy+len(out))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no GPU in service to reserve")
	}
	for _, g := range out {
		a.owner[g] = id
	}
	return out, nil
}
