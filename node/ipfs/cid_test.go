//go:build integration

package ipfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	ft "github.com/ipfs/boxo/ipld/unixfs"
)

// TestCIDMatchesKubo checks acceptance 1: the same content gets the same CID as
// `ipfs add --only-hash --cid-version 1 --raw-leaves`, both from Hash and from a
// real add into the blockstore.
func TestCIDMatchesKubo(t *testing.T) {
	k := newKubo(t)
	dir := t.TempDir()
	const chunk = 256 << 10
	files := []struct {
		name string
		size int64
	}{
		{"empty", 0},
		{"one-byte", 1},
		{"one-chunk", chunk},
		{"chunk-plus-one", chunk + 1},
		{"175-chunks", 175 * chunk}, // one more leaf than a node links: a second level
		{"100MiB", 100 << 20},
	}
	for i, f := range files {
		writeRandom(t, filepath.Join(dir, f.name), f.size, uint64(i+1))
	}
	tree := filepath.Join(dir, "tree")
	for _, p := range []string{"a/b/c", "a/empty", "d"} {
		if err := os.MkdirAll(filepath.Join(tree, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeRandom(t, filepath.Join(tree, "a/b/c/deep.bin"), 3*chunk+17, 11)
	writeRandom(t, filepath.Join(tree, "a/one"), 1, 12)
	writeRandom(t, filepath.Join(tree, "d/.hidden"), 100, 13)
	writeRandom(t, filepath.Join(tree, "top.bin"), 5000, 14)
	if err := os.WriteFile(filepath.Join(tree, "a/empty.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/one", filepath.Join(tree, "link")); err != nil {
		t.Fatal(err)
	}
	// A directory whose links pass 256 KiB becomes a HAMT shard, in kubo and here.
	sharded := filepath.Join(dir, "sharded")
	if err := os.Mkdir(sharded, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 6000 {
		if err := os.WriteFile(filepath.Join(sharded, fmt.Sprintf("sample-%06d.json", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{tree, sharded}
	for _, f := range files {
		paths = append(paths, filepath.Join(dir, f.name))
	}
	n := newNode(t, "", newHost(t), nil)
	ctx := t.Context()
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			want := k.onlyHash(p)
			got, err := Hash(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want {
				t.Errorf("Hash = %s, kubo = %s", got, want)
			}
			res, err := n.Add(ctx, p, "")
			if err != nil {
				t.Fatal(err)
			}
			if res.CID != want {
				t.Errorf("Add = %s, kubo = %s", res.CID, want)
			}
			if p == sharded {
				nd, err := n.offline.Get(ctx, got)
				if err != nil {
					t.Fatal(err)
				}
				fsn, err := ft.ExtractFSNode(nd)
				if err != nil || fsn.Type() != ft.THAMTShard {
					t.Errorf("%s is not a HAMT shard (%v)", p, err)
				}
			}
		})
	}
}
