package ipfs

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// memRouter is a content router shared by the test's nodes: what one provides the
// others find, with the provider's addresses, like a DHT.
type memRouter struct {
	mu        sync.Mutex
	providers map[string][]peer.AddrInfo
}

type nodeRouter struct {
	*memRouter
	self host.Host
}

func (r nodeRouter) Provide(_ context.Context, c cid.Cid, _ bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.providers[string(c.Hash())] = append(r.providers[string(c.Hash())], addrInfo(r.self))
	return nil
}

func (r nodeRouter) FindProvidersAsync(ctx context.Context, c cid.Cid, count int) <-chan peer.AddrInfo {
	r.mu.Lock()
	ps := append([]peer.AddrInfo(nil), r.providers[string(c.Hash())]...)
	r.mu.Unlock()
	ch := make(chan peer.AddrInfo, len(ps))
	for _, p := range ps {
		ch <- p
	}
	close(ch)
	return ch
}

// TestProvideAndFind checks that an added root is provided, and that a node with no
// connection to the provider finds it through the router and fetches from it.
func TestProvideAndFind(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	mem := &memRouter{providers: make(map[string][]peer.AddrInfo)}
	open := func(h host.Host) *Node {
		dir := t.TempDir()
		cfg := Default()
		cfg.Dir, cfg.SyncWrites = dir, false
		n, err := New(cfg, dir, h, nodeRouter{mem, h}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	h1, h2 := newHost(t), newHost(t)
	a, b := open(h1), open(h2)
	src := filepath.Join(t.TempDir(), "ckpt.bin")
	writeRandom(t, src, 1<<20, 61)
	res, err := a.Add(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	root := mustCID(t, res.CID)
	for {
		mem.mu.Lock()
		got := append([]peer.AddrInfo(nil), mem.providers[string(root.Hash())]...)
		mem.mu.Unlock()
		if len(got) == 1 && got[0].ID == h1.ID() {
			break
		}
		if len(got) > 1 || ctx.Err() != nil {
			t.Fatalf("providers of %s = %v, want %s", root, got, h1.ID())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(h2.Network().Peers()) != 0 {
		t.Fatal("nodes already connected")
	}
	dir, err := b.Fetch(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, filepath.Join(dir, res.CID))
}
