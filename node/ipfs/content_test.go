package ipfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestContent covers the adapter the job state machine uses: Get of a small file is
// bounded, Fetch returns a file's own path or a directory, Publish gives the CID.
func TestContent(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	h1, h2 := newHost(t), newHost(t)
	pub := newNode(t, "", h1, nil).Content()
	sub := newNode(t, "", h2, nil).Content()
	connect(t, h2, addrInfo(h1))

	dir := t.TempDir()
	manifest := filepath.Join(dir, "manifest.json")
	os.WriteFile(manifest, []byte(`{"version":1}`), 0o644)
	big := filepath.Join(dir, "big.bin")
	writeRandom(t, big, 2<<20, 91)
	mc, err := pub.Publish(ctx, manifest)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := pub.Publish(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := pub.Publish(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := sub.Get(ctx, mc, 1<<10); err != nil || string(b) != `{"version":1}` {
		t.Errorf("Get(manifest) = %q, %v", b, err)
	}
	if _, err := sub.Get(ctx, bc, 1<<10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Get(2 MiB, max 1 KiB): err = %v, want ErrTooLarge", err)
	}
	if p, err := sub.Fetch(ctx, bc); err != nil || filepath.Base(p) != bc {
		t.Errorf("Fetch(file) = %s, %v; want the file itself", p, err)
	} else {
		sameFile(t, big, p)
	}
	p, err := sub.Fetch(ctx, dc)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, manifest, filepath.Join(p, "manifest.json"))
}
