// Package ipfs is the node's IPFS component: it publishes checkpoints and fetches job
// inputs. In embedded mode (the default) it needs no external daemon: blocks live in
// an on-disk blockstore, files and directories are imported as UnixFS exactly like
// `ipfs add --cid-version 1 --raw-leaves` (so the same content gets the same CID as
// with kubo), bitswap serves and fetches blocks over the node's libp2p host, and
// pinned roots are provided on the DHT. A pin set protects content from garbage
// collection, and a size cap bounds the store. In kubo mode a kubo daemon does the
// same work through its RPC API. Either way, published checkpoints can also be
// pinned by a remote IPFS Pinning Service so they outlive the rig.
//
// Fetched inputs land in a content-addressed cache of read-only directories
// (Dir/inputs/<cid>) that the runtime mounts into jobs. Every block is verified
// against its CID before it is stored and again when it is read; an interrupted
// fetch resumes from the blocks already stored.
package ipfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/gpunode/gpunode/node/datadir"
)

// Sentinel errors callers check with errors.Is.
var (
	// ErrStorageFull means the blockstore reached max_storage_bytes even after
	// garbage collection.
	ErrStorageFull = errors.New("ipfs storage full")
	// ErrTooLarge means a fetched input passed max_fetch_bytes.
	ErrTooLarge = errors.New("ipfs input larger than max_fetch_bytes")
	// ErrNotPinned means the CID is not in the pin set.
	ErrNotPinned = errors.New("cid is not pinned")
)

// Node is the IPFS component. Create it with New, serve with Run, stop with Close.
type Node struct {
	cfg    Config
	dir    string
	log    *slog.Logger
	host   host.Host
	router routing.ContentRouting
	public *dual.DHT // nil unless PublicDHT is on

	store   *blockStore
	bstore  blockstore.Blockstore
	bitswap *bitswap.Bitswap
	bserv   blockservice.BlockService // online: local store, then bitswap
	offline ipld.DAGService           // local store only
	pins    *pinSet
	kubo    *kuboClient
	remote  *pinningClient

	// gcMu is held for reading by every add and fetch, and for writing by garbage
	// collection, so GC never deletes blocks of content that is being added or
	// fetched but not pinned yet.
	gcMu sync.RWMutex

	fetchMu sync.Mutex
	fetches map[cid.Cid]*fetchState

	ctx    context.Context // lives until Close: bitswap and background provides
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  counters

	hostMu    sync.Mutex
	protected []string // the node's own state: never read or written for a caller

	// afterBlock, when set (tests), is called after every block a fetch gets.
	afterBlock func(Progress)
}

// New opens the IPFS component. dataDir anchors a relative cfg.Dir. In embedded mode
// h is the node's libp2p host that bitswap runs on, and router (may be nil) is the
// DHT used to provide pinned roots and find providers; in kubo mode both may be nil.
func New(cfg Config, dataDir string, h host.Host, router routing.ContentRouting, log *slog.Logger) (*Node, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("ipfs config: %w", errors.Join(errs...))
	}
	dir := datadir.New(dataDir).Resolve(cfg.Dir)
	n := &Node{
		cfg:     cfg,
		dir:     dir,
		log:     log.With("component", "ipfs"),
		host:    h,
		router:  router,
		fetches: make(map[cid.Cid]*fetchState),
	}
	if err := os.MkdirAll(n.inputsDir(), 0o755); err != nil {
		return nil, fmt.Errorf("ipfs: %w", err)
	}
	if err := removePartials(n.inputsDir()); err != nil {
		return nil, fmt.Errorf("ipfs: input cache: %w", err)
	}
	pins, err := openPinSet(filepath.Join(dir, "pins.json"))
	if err != nil {
		return nil, err
	}
	n.pins = pins
	if rp := cfg.RemotePinning; rp.Endpoint != "" {
		tok, err := os.ReadFile(rp.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("ipfs: remote pinning token: %w", err)
		}
		n.remote = newPinningClient(rp.Endpoint, string(tok), time.Duration(rp.Timeout))
	}
	if cfg.Mode == ModeKubo {
		n.kubo = newKuboClient(cfg.KuboAPI)
		return n, nil
	}
	if h == nil {
		return nil, errors.New("ipfs: embedded mode needs the node's libp2p host")
	}
	n.store, err = openBlockStore(filepath.Join(dir, "blocks"), cfg.SyncWrites)
	if err != nil {
		return nil, err
	}
	n.bstore = blockstore.NewIdStore(n.store)
	if cfg.PublicDHT == PublicDHTOn {
		if n.public, err = openPublicDHT(h, cfg.PublicBootstrapPeers); err != nil {
			return nil, err
		}
		router = withPublic(router, n.public)
		n.router = router
		n.log.Info("announcing content on the public IPFS DHT too", "bootstrap_peers", len(cfg.PublicBootstrapPeers))
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.ctx, n.cancel = ctx, cancel
	var disc routing.ContentDiscovery
	if router != nil {
		disc = router
	}
	n.bitswap = bitswap.New(ctx, bsnet.NewFromIpfsHost(h), disc, blockstore.NewIdStore(serveStore{n.store}))
	n.bserv = blockservice.New(n.bstore, n.bitswap)
	n.offline = dag.NewDAGService(blockservice.New(n.bstore, nil))
	return n, nil
}

func (n *Node) inputsDir() string { return filepath.Join(n.dir, "inputs") }

// Run reprovides pinned roots on the DHT until ctx is cancelled.
func (n *Node) Run(ctx context.Context) error {
	iv := time.Duration(n.cfg.ReprovideInterval)
	if n.router == nil || n.cfg.Mode != ModeEmbedded || iv == 0 {
		<-ctx.Done()
		return nil
	}
	// On the public DHT, announce once it has peers: at start its routing table is
	// empty and a provide then reaches nobody (the next round is a day later).
	n.waitPublicPeers(ctx, 5*time.Minute)
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		for _, p := range n.pins.list() {
			c, err := cid.Decode(p.CID)
			if err == nil {
				n.provide(ctx, c)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Close stops bitswap. The libp2p host belongs to the caller.
func (n *Node) Close() error {
	if n.bitswap == nil {
		return nil
	}
	n.cancel()
	n.wg.Wait()
	err := n.bitswap.Close()
	if n.public != nil {
		err = errors.Join(err, n.public.Close())
	}
	return err
}

// StorageBytes returns the bytes of block data stored (0 in kubo mode).
func (n *Node) StorageBytes() int64 {
	if n.store == nil {
		return 0
	}
	return n.store.Size()
}

// provideLater announces c in the background: a DHT provide can take a minute, and
// the add that asked for it should not wait.
func (n *Node) provideLater(c cid.Cid) {
	if n.router == nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.provide(n.ctx, c)
	}()
}

func (n *Node) provide(ctx context.Context, c cid.Cid) {
	if n.router == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := n.router.Provide(ctx, c, true); err != nil {
		n.log.Warn("provide failed", "cid", c.String(), "err", err)
	}
}

// ensureSpace collects garbage when the store is within need bytes of its cap, and
// fails if that is not enough. The caller must not hold gcMu.
func (n *Node) ensureSpace(ctx context.Context, need int64) error {
	max := n.cfg.MaxStorageBytes
	if n.store.Size()+need <= max {
		return nil
	}
	if _, err := n.GC(ctx); err != nil {
		return err
	}
	if n.store.Size()+need > max {
		return fmt.Errorf("%w: %d bytes stored, %d more needed, cap %d (unpin content or raise max_storage_bytes)",
			ErrStorageFull, n.store.Size(), need, max)
	}
	return nil
}
