package ipfs

import (
	"context"
	"errors"
	"fmt"
	"github.com/gpunode/gpunode/node/api"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	chunk "github.com/ipfs/boxo/chunker"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// cidBuilder is what `ipfs add --cid-version 1` uses: dag-pb nodes with sha2-256
// (raw leaves switch the codec to raw themselves).
var cidBuilder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}

// AddResult says what an add stored.
type AddResult = api.IPFSAddResult

// Add imports the file or directory at path, pins its root under name (the path's
// base name if empty), provides it on the DHT and, when configured, asks the remote
// pinning service to pin it. Hidden files are included; symlinks are stored as
// symlinks; other special files are an error.
func (n *Node) Add(ctx context.Context, path, name string) (AddResult, error) {
	if name == "" {
		name = filepath.Base(path)
	}
	if n.kubo != nil {
		c, err := n.kubo.add(ctx, path)
		if err != nil {
			return AddResult{}, err
		}
		res := AddResult{CID: c.String(), Name: name}
		n.pinRemote(ctx, c, name, &res)
		return res, nil
	}
	est, err := treeSize(path)
	if err != nil {
		return AddResult{}, fmt.Errorf("ipfs add %s: %w", path, err)
	}
	if err := n.ensureSpace(ctx, est); err != nil {
		return AddResult{}, fmt.Errorf("ipfs add %s: %w", path, err)
	}
	n.gcMu.RLock()
	defer n.gcMu.RUnlock()
	c, bytes, err := n.importPath(ctx, path)
	if err != nil {
		return AddResult{}, fmt.Errorf("ipfs add %s: %w", path, err)
	}
	if err := n.pins.add(Pin{CID: c.String(), Name: name, Kind: PinCheckpoint, Created: time.Now().UTC()}); err != nil {
		return AddResult{}, err
	}
	res := AddResult{CID: c.String(), Name: name, Bytes: bytes}
	n.stats.addedBytes.Add(bytes)
	n.provideLater(c)
	n.pinRemote(ctx, c, name, &res)
	n.log.Info("added", "path", path, "cid", res.CID, "bytes", bytes)
	return res, nil
}

// importPath stores path as UnixFS and returns its root.
func (n *Node) importPath(ctx context.Context, path string) (cid.Cid, int64, error) {
	w := newAsyncDAG(ctx, n.store, n.offline)
	im := importer{ctx: ctx, dag: w}
	nd, err := im.add(path)
	if ferr := w.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return cid.Undef, 0, err
	}
	return nd.Cid(), im.bytes, nil
}

// Hash computes the CID path would get, storing nothing (like `ipfs add --only-hash`).
func Hash(ctx context.Context, path string) (cid.Cid, error) {
	im := importer{ctx: ctx, dag: discardDAG{}}
	nd, err := im.add(path)
	if err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

type importer struct {
	ctx   context.Context
	dag   ipld.DAGService
	bytes int64
}

func (im *importer) add(path string) (ipld.Node, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	switch {
	case info.Mode().IsRegular():
		return im.addFile(path)
	case info.IsDir():
		return im.addDir(path)
	case info.Mode()&fs.ModeSymlink != 0:
		return im.addSymlink(path)
	default:
		return nil, fmt.Errorf("%s: %s files cannot be added", path, info.Mode().Type())
	}
}

func (im *importer) addFile(path string) (ipld.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := &countReader{r: f}
	hashes := newHashCache()
	params := helpers.DagBuilderParams{
		Maxlinks:   helpers.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: prehashBuilder{V1Builder: cidBuilder, hashes: hashes},
		Dagserv:    im.dag,
	}
	spl := newPrehashSplitter(cr, int(chunk.DefaultBlockSize), hashes, runtime.GOMAXPROCS(0))
	defer spl.close()
	db, err := params.New(spl)
	if err != nil {
		return nil, err
	}
	nd, err := balanced.Layout(db)
	im.bytes += cr.n.Load()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return nd, nil
}

func (im *importer) addDir(path string) (ipld.Node, error) {
	d, err := uio.NewDirectory(im.dag, uio.WithCidBuilder(cidBuilder))
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		if err := im.ctx.Err(); err != nil {
			return nil, err
		}
		child, err := im.add(filepath.Join(path, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := d.AddChild(im.ctx, e.Name(), child); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	nd, err := d.GetNode()
	if err != nil {
		return nil, err
	}
	return nd, im.dag.Add(im.ctx, nd)
}

func (im *importer) addSymlink(path string) (ipld.Node, error) {
	target, err := os.Readlink(path)
	if err != nil {
		return nil, err
	}
	data, err := ft.SymlinkData(target)
	if err != nil {
		return nil, err
	}
	nd := dag.NodeWithData(data)
	if err := nd.SetCidBuilder(cidBuilder); err != nil {
		return nil, err
	}
	return nd, im.dag.Add(im.ctx, nd)
}

// countReader counts bytes read; the splitter reads on its own goroutine.
type countReader struct {
	r interface{ Read([]byte) (int, error) }
	n atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// treeSize sums the sizes of the regular files under path.
func treeSize(path string) (int64, error) {
	var total int64
	err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// asyncDAG is the DAG service an import writes to: the importer hashes and builds
// nodes on its goroutine while a few writers put them on disk, so hashing and disk
// writes overlap. Blocks are not re-verified: this process just hashed them.
type asyncDAG struct {
	ipld.DAGService // reads go to the local store once writes are flushed
	store           *blockStore
	ctx             context.Context
	ch              chan pendingBlock
	wg              sync.WaitGroup
	once            sync.Once
	mu              sync.Mutex
	err             error
}

type pendingBlock struct {
	hash mh.Multihash
	data []byte
}

func newAsyncDAG(ctx context.Context, s *blockStore, local ipld.DAGService) *asyncDAG {
	w := &asyncDAG{DAGService: local, store: s, ctx: ctx, ch: make(chan pendingBlock, 64)}
	for range 2 {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for b := range w.ch {
				if err := s.write(b.hash, b.data); err != nil {
					w.setErr(err)
				}
			}
		}()
	}
	return w
}

func (w *asyncDAG) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *asyncDAG) Add(ctx context.Context, nd ipld.Node) error {
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if err != nil {
		return err
	}
	// Encode on the importer's goroutine: dag-pb nodes cache their encoding lazily,
	// so touching them from a writer would race with the importer.
	b := pendingBlock{hash: nd.Cid().Hash(), data: nd.RawData()}
	select {
	case w.ch <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *asyncDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := w.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

// flush waits for every queued write and returns the first error.
func (w *asyncDAG) flush() error {
	w.once.Do(func() { close(w.ch) })
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = w.store.Sync()
	}
	return w.err
}

// discardDAG stores nothing, for Hash.
type discardDAG struct{}

var errDiscarded = errors.New("node not stored (hash only)")

func (discardDAG) Get(context.Context, cid.Cid) (ipld.Node, error) { return nil, errDiscarded }
func (discardDAG) GetMany(context.Context, []cid.Cid) <-chan *ipld.NodeOption {
	ch := make(chan *ipld.NodeOption)
	close(ch)
	return ch
}
func (discardDAG) Add(context.Context, ipld.Node) error        { return nil }
func (discardDAG) AddMany(context.Context, []ipld.Node) error  { return nil }
func (discardDAG) Remove(context.Context, cid.Cid) error       { return nil }
func (discardDAG) RemoveMany(context.Context, []cid.Cid) error { return nil }
