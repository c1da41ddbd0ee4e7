package jobs

import (
	"slices"
	"strings"
	"testing"
)

// TestReserveAll: the benchmark gets the GPUs only when no job holds any, and no job gets
// one while the benchmark holds them.
func TestReserveAll(t *testing.T) {
	m := &Machine{alloc: newAllocator([]string{"GPU-a", "GPU-b", "MIG-c"}, func(u string) bool { return u != "GPU-b" })}
	if _, err := m.alloc.take("7", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReserveAll("benchmark"); err == nil || !strings.Contains(err.Error(), "1 of 2 GPUs are leased") {
		t.Fatalf("reserve while a job runs: %v", err)
	}
	m.alloc.release("7")
	got, err := m.ReserveAll("benchmark")
	if err != nil || !slices.Equal(got, []string{"GPU-a", "MIG-c"}) {
		t.Fatalf("reserve on an idle rig: %v %v (the GPU out of service is left out)", got, err)
	}
	if _, err := m.alloc.take("8", 1); err == nil {
		t.Error("a job got a GPU the benchmark holds")
	}
	if m.FreeGPUs() != 0 {
		t.Errorf("%d GPUs free during the benchmark", m.FreeGPUs())
	}
	m.Release("benchmark")
	if m.FreeGPUs() != 2 {
		t.Errorf("%d GPUs free after the benchmark, want 2", m.FreeGPUs())
	}
}
