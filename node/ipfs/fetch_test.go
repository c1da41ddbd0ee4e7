package ipfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func mustCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sameFile(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%d and %d bytes)", a, b, len(x), len(y))
	}
}

// TestFetchBetweenNodes fetches a directory from one embedded node to another over
// bitswap and checks the read-only input cache.
func TestFetchBetweenNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "model.bin"), 3<<20, 1)
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	writeRandom(t, filepath.Join(src, "sub", "vocab.txt"), 1000, 2)
	// Zeros: one leaf linked eight times, and a copy of a file: blocks shared.
	os.WriteFile(filepath.Join(src, "zeros.bin"), make([]byte, 2<<20), 0o644)
	os.WriteFile(filepath.Join(src, "sub", "zeros-copy.bin"), make([]byte, 2<<20), 0o644)

	h1, h2 := newHost(t), newHost(t)
	a, b := newNode(t, "", h1, nil), newNode(t, "", h2, nil)
	res, err := a.Add(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	connect(t, h2, addrInfo(h1))
	dir, err := b.Fetch(ctx, mustCID(t, res.CID))
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(src, "model.bin"), filepath.Join(dir, "model.bin"))
	sameFile(t, filepath.Join(src, "sub", "vocab.txt"), filepath.Join(dir, "sub", "vocab.txt"))
	sameFile(t, filepath.Join(src, "zeros.bin"), filepath.Join(dir, "zeros.bin"))
	sameFile(t, filepath.Join(src, "sub", "zeros-copy.bin"), filepath.Join(dir, "sub", "zeros-copy.bin"))
	info, err := os.Stat(filepath.Join(dir, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm()&0o222 != 0 {
		t.Errorf("cached input is writable: %v", info.Mode())
	}
	p, _ := b.FetchProgress(mustCID(t, res.CID))
	if p.State != "done" || p.FromNetwork == 0 || p.Local != 0 {
		t.Errorf("progress = %+v, want done, all from network", p)
	}
	// A file CID becomes <dir>/<cid>; Get writes a writable copy.
	fileCID, err := Hash(ctx, filepath.Join(src, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := b.Get(ctx, fileCID, out); err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(src, "model.bin"), filepath.Join(out, fileCID.String()))
}

// TestFetchResumesAfterRestart checks acceptance 3: a fetch interrupted by stopping
// the node resumes after a restart on the same directory without fetching again the
// blocks it had stored.
func TestFetchResumesAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srcFile := filepath.Join(t.TempDir(), "dataset.bin")
	writeRandom(t, srcFile, 40<<20, 3) // 160 leaves
	h1 := newHost(t)
	a := newNode(t, "", h1, nil)
	res, err := a.Add(ctx, srcFile, "")
	if err != nil {
		t.Fatal(err)
	}
	root := mustCID(t, res.CID)

	dir := t.TempDir()
	h2 := newHost(t)
	connect(t, h2, addrInfo(h1))
	b := newNode(t, dir, h2, nil)
	fctx, stop := context.WithCancel(ctx)
	b.afterBlock = func(p Progress) {
		if p.FromNetwork == 60 {
			stop() // the "kill": the fetch is cut off mid-flight
		}
	}
	if _, err := b.Fetch(fctx, root); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: err = %v, want context.Canceled", err)
	}
	b.Close()
	h2.Close()
	stored := countBlocks(t, filepath.Join(dir, "blocks"))
	if stored < 60 {
		t.Fatalf("%d blocks stored after the interruption, want at least 60", stored)
	}

	h3 := newHost(t)
	connect(t, h3, addrInfo(h1))
	c := newNode(t, dir, h3, nil)
	path, err := c.Fetch(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, srcFile, filepath.Join(path, root.String()))
	p, _ := c.FetchProgress(root)
	total := countBlocks(t, filepath.Join(dir, "blocks"))
	t.Logf("first run stored %d of %d blocks; resumed run: %d local, %d from network", stored, total, p.Local, p.FromNetwork)
	if p.Local != stored || p.FromNetwork != total-stored {
		t.Errorf("resumed fetch: %d local, %d from network; want %d local, %d from network",
			p.Local, p.FromNetwork, stored, total-stored)
	}
}

func countBlocks(t testing.TB, dir string) int {
	t.Helper()
	s, err := openBlockStore(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.walk(t.Context(), func(mh.Multihash) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBadBlockRejected checks acceptance 3: a block whose bytes do not match its CID
// is never stored, and one corrupted on disk is detected, dropped and fetched again.
func TestBadBlockRejected(t *testing.T) {
	ctx := t.Context()
	s, err := openBlockStore(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	good := []byte("checkpoint bytes")
	h, _ := mh.Sum(good, mh.SHA2_256, -1)
	c := cid.NewCidV1(cid.Raw, h)
	bad, _ := blocks.NewBlockWithCid([]byte("other bytes"), c)
	if err := s.Put(ctx, bad); !errors.Is(err, ErrBadBlock) {
		t.Fatalf("Put(wrong bytes) = %v, want ErrBadBlock", err)
	}
	if ok, _ := s.Has(ctx, c); ok {
		t.Fatal("a block with wrong bytes was stored")
	}

	// On disk: fetch a file, corrupt one stored leaf, fetch again from the cache-less
	// store: the corrupt leaf is found, deleted and refetched, and the bytes are right.
	src := filepath.Join(t.TempDir(), "f.bin")
	writeRandom(t, src, 2<<20, 9)
	h1, h2 := newHost(t), newHost(t)
	a := newNode(t, "", h1, nil)
	res, err := a.Add(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	root := mustCID(t, res.CID)
	dir := t.TempDir()
	b := newNode(t, dir, h2, nil)
	connect(t, h2, addrInfo(h1))
	if _, err := b.Fetch(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Unpin(ctx, root); err != nil { // drops the cache entry, keeps blocks
		t.Fatal(err)
	}
	var leaf string
	b.store.walk(ctx, func(m mh.Multihash) error {
		if leaf == "" && m.String() != root.Hash().String() {
			leaf = b.store.path(m)
		}
		return nil
	})
	if err := os.WriteFile(leaf, bytes.Repeat([]byte{0xAA}, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := b.Fetch(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, filepath.Join(path, root.String()))
}

// TestGCKeepsPinned checks that garbage collection deletes exactly the blocks of
// unpinned content, and that the storage cap is enforced.
func TestGCKeepsPinned(t *testing.T) {
	ctx := t.Context()
	tmp := t.TempDir()
	keep, drop := filepath.Join(tmp, "keep"), filepath.Join(tmp, "drop")
	writeRandom(t, keep, 1<<20, 1)
	writeRandom(t, drop, 2<<20, 2)
	n := newNode(t, "", newHost(t), func(c *Config) { c.MaxStorageBytes = 4 << 20 })
	k, err := n.Add(ctx, keep, "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.Add(ctx, drop, "")
	if err != nil {
		t.Fatal(err)
	}
	before := n.StorageBytes()
	if err := n.Unpin(ctx, mustCID(t, d.CID)); err != nil {
		t.Fatal(err)
	}
	res, err := n.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes < 2<<20 || n.StorageBytes() != before-res.Bytes {
		t.Errorf("gc removed %d bytes (%d blocks), store %d -> %d", res.Bytes, res.Blocks, before, n.StorageBytes())
	}
	out := t.TempDir()
	if err := n.Get(ctx, mustCID(t, k.CID), out); err != nil {
		t.Fatalf("pinned content after gc: %v", err)
	}
	sameFile(t, keep, filepath.Join(out, k.CID))
	pins, _ := n.Pins(ctx)
	if len(pins) != 1 || pins[0].CID != k.CID {
		t.Errorf("pins = %+v, want only %s", pins, k.CID)
	}

	// 1 MiB stored; 4 MiB more cannot fit under a 4 MiB cap even after gc.
	big := filepath.Join(tmp, "big")
	writeRandom(t, big, 4<<20, 3)
	if _, err := n.Add(ctx, big, ""); !errors.Is(err, ErrStorageFull) {
		t.Errorf("add over the cap: err = %v, want ErrStorageFull", err)
	}
	// Unpinned content is collected to make room.
	if _, err := n.Add(ctx, drop, ""); err != nil {
		t.Fatal(err)
	}
	n.Unpin(ctx, mustCID(t, d.CID))
	mid := filepath.Join(tmp, "mid")
	writeRandom(t, mid, 2<<20+1, 4)
	if _, err := n.Add(ctx, mid, ""); err != nil {
		t.Errorf("add after unpin: %v (gc should have made room)", err)
	}
}

// TestFetchCap checks that a fetch stops at max_fetch_bytes.
func TestFetchCap(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	src := filepath.Join(t.TempDir(), "big.bin")
	writeRandom(t, src, 3<<20, 81)
	h1, h2 := newHost(t), newHost(t)
	a := newNode(t, "", h1, nil)
	b := newNode(t, "", h2, func(c *Config) { c.MaxFetchBytes = 1 << 20 })
	res, err := a.Add(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	connect(t, h2, addrInfo(h1))
	_, err = b.Fetch(ctx, mustCID(t, res.CID))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("fetch of 3 MiB with a 1 MiB cap: err = %v, want ErrTooLarge", err)
	}
	p, _ := b.FetchProgress(mustCID(t, res.CID))
	if p.State != "failed" || p.Bytes > 1<<20+256<<10 {
		t.Errorf("progress after the cap: %+v", p)
	}
}
