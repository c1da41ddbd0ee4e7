package benchrig

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gpunode/gpunode/benchmark/harness"
	"github.com/gpunode/gpunode/node/datadir"
	"github.com/gpunode/gpunode/node/p2p"
)

// TestLayout: the report, the harness's run folders and the signing key are the data
// directory's, the key the node's identity (so the peer ID names who signed); the key is
// made once and read back after.
func TestLayout(t *testing.T) {
	l := datadir.New(t.TempDir())
	if c := Config(l); c.StateDir != l.Benchmark() || filepath.Dir(l.BenchmarkReport()) != c.StateDir {
		t.Errorf("state dir %q, want %q", c.StateDir, l.Benchmark())
	}
	h := HarnessConfig(l, harness.Default(), []string{"GPU-1", "MIG-2"})
	if h.WorkDir != l.Harness() || !slices.Equal(h.GPUs, []string{"GPU-1", "MIG-2"}) || h.Image != harness.LocalImage {
		t.Errorf("harness %+v", h)
	}
	if errs := h.Validate(); len(errs) > 0 {
		t.Error(errs)
	}
	k1, err := Key(l)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Key(l)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("key not kept: %v", err)
	}
	id, err := p2p.SigningKey(l.Identity())
	if err != nil || !bytes.Equal(id, k1) {
		t.Errorf("reports are not signed by the identity key (%v)", err)
	}
}
