package datadir

import (
	"path/filepath"
	"testing"
)

// TestLayoutDistinct: every path of the layout lies under the data directory, and no two
// things share one (a clash would make two components overwrite each other's state).
func TestLayoutDistinct(t *testing.T) {
	l := New("/var/lib/gpunode")
	paths := map[string]string{
		"state": l.State(), "jobs": l.Jobs(), "validator": l.Validator(), "runtime state": l.RuntimeState(),
		"runtime logs": l.RuntimeLogs(), "pool policy": l.PoolPolicy(), "identity": l.Identity(), "binding key": l.BindingKey(),
		"keystore": l.Keystore(), "cursor": l.ChainCursor(), "devchain": l.Devchain(), "benchmark report": l.BenchmarkReport(),
		"harness": l.Harness(), "bench runtime state": l.BenchRuntimeState(), "bench runtime logs": l.BenchRuntimeLogs(),
		"doctor": l.DoctorReport(), "idle": l.Idle(), "pool payouts": l.PoolPayouts(),
	}
	seen := map[string]string{}
	for name, p := range paths {
		rel, err := filepath.Rel(l.Root, p)
		if err != nil || rel == "." || filepath.IsAbs(rel) || rel[:2] == ".." {
			t.Errorf("%s: %s is not under %s", name, p, l.Root)
		}
		if other, ok := seen[p]; ok {
			t.Errorf("%s and %s share %s", name, other, p)
		}
		seen[p] = name
	}
	if got := l.Benchmark(); filepath.Dir(l.BenchmarkReport()) != got {
		t.Errorf("the report %s is not in the benchmark folder %s", l.BenchmarkReport(), got)
	}
}

func TestResolve(t *testing.T) {
	l := New("/d")
	for in, want := range map[string]string{"ipfs": "/d/ipfs", "/srv/ipfs": "/srv/ipfs", "a/../b": "/d/b"} {
		if got := l.Resolve(in); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
}
