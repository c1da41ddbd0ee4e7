package ipfs

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	dag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/gpunode/gpunode/internal/testenv"
)

// dagBomb stores in n a file DAG whose root links 1000 times to a node that links
// 1000 times to one 1 MiB raw block: 10^6 × 1 MiB (about 1 TiB) written out, 1 MiB
// and two small nodes to fetch.
func dagBomb(t *testing.T, n *Node) cid.Cid {
	t.Helper()
	ctx := t.Context()
	leaf := dag.NewRawNode(make([]byte, 1<<20))
	level := func(childSize uint64, linked func(*dag.ProtoNode)) *dag.ProtoNode {
		fsn := ft.NewFSNode(ft.TFile)
		for range 1000 {
			fsn.AddBlockSize(childSize)
		}
		b, err := fsn.GetBytes()
		if err != nil {
			t.Fatal(err)
		}
		nd := dag.NodeWithData(b)
		nd.SetCidBuilder(dag.V1CidPrefix())
		for range 1000 {
			linked(nd)
		}
		return nd
	}
	mid := level(1<<20, func(nd *dag.ProtoNode) {
		if err := nd.AddNodeLink("", leaf); err != nil {
			t.Fatal(err)
		}
	})
	root := level(1000<<20, func(nd *dag.ProtoNode) {
		if err := nd.AddNodeLink("", mid); err != nil {
			t.Fatal(err)
		}
	})
	if err := n.offline.AddMany(ctx, []ipld.Node{leaf, mid, root}); err != nil {
		t.Fatal(err)
	}
	if err := n.pins.add(Pin{CID: root.Cid().String(), Name: "bomb", Kind: PinCheckpoint, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return root.Cid()
}

// TestDAGBomb: a provider's input fetch and a validator's checkpoint fetch (both
// Content.Fetch) refuse a CID whose DAG repeats one 1 MiB block 10^6 times, having
// written nothing of it, and fetched no more than its few unique blocks.
func TestDAGBomb(t *testing.T) {
	testenv.Attack(t, "ipfs", "DAG bomb: one 1 MiB block linked 10^6 times")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	h1, h2 := newHost(t), newHost(t)
	attacker := newNode(t, "", h1, nil)
	const limit = 64 << 20
	victimDir := t.TempDir()
	victim := newNode(t, victimDir, h2, func(c *Config) { c.MaxFetchBytes = limit })
	bomb := dagBomb(t, attacker)
	connect(t, h2, addrInfo(h1))

	_, err := victim.Content().Fetch(ctx, bomb.String())
	if !errors.Is(err, ErrDAGBomb) {
		t.Fatalf("fetch of the bomb = %v, want ErrDAGBomb", err)
	}
	t.Logf("refused: %v", err)
	var written int64
	filepath.WalkDir(victim.inputsDir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				written += fi.Size()
			}
		}
		return nil
	})
	if written > 0 {
		t.Errorf("%d bytes of the bomb written to the input cache", written)
	}
	if got := victim.store.Size(); got > 2<<20 {
		t.Errorf("%d bytes stored for a bomb of 1 MiB of unique blocks", got)
	}
	if p, _ := victim.FetchProgress(bomb); p.State != "failed" || p.Error == "" {
		t.Errorf("progress after the bomb: %+v", p)
	}
}

// TestLogicalLimits: entries and depth are counted with repeated links too.
func TestLogicalLimits(t *testing.T) {
	testenv.Attack(t, "ipfs", "DAG with repeated directory links and deep nesting")
	ctx := t.Context()
	n := newNode(t, "", newHost(t), func(c *Config) { c.MaxFetchEntries = 100; c.MaxFetchDepth = 8 })
	// A directory with 20 links to a directory of 20 empty files: 420 entries.
	file := dag.NodeWithData(ft.FilePBData(nil, 0))
	inner := ft.EmptyDirNode()
	for i := range 20 {
		inner.AddNodeLink(string(rune('a'+i)), file)
	}
	outer := ft.EmptyDirNode()
	for i := range 20 {
		outer.AddNodeLink(string(rune('a'+i)), inner)
	}
	// A chain of 10 directories.
	deep := ft.EmptyDirNode()
	nodes := []ipld.Node{file, inner, outer, deep}
	for range 10 {
		up := ft.EmptyDirNode()
		up.AddNodeLink("d", deep)
		nodes = append(nodes, up)
		deep = up
	}
	if err := n.offline.AddMany(ctx, nodes); err != nil {
		t.Fatal(err)
	}
	if _, err := n.checkLogical(ctx, outer.Cid()); !errors.Is(err, ErrDAGBomb) {
		t.Errorf("420 entries with a cap of 100: %v, want ErrDAGBomb", err)
	}
	if _, err := n.checkLogical(ctx, deep.Cid()); !errors.Is(err, ErrDAGBomb) {
		t.Errorf("depth 10 with a cap of 8: %v, want ErrDAGBomb", err)
	}
	if lg, err := n.checkLogical(ctx, inner.Cid()); err != nil || lg.entries != 20 {
		t.Errorf("20 entries: %+v, %v", lg, err)
	}
}
