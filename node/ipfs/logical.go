package ipfs

import (
	"context"
	"errors"
	"fmt"
	"math"

	dag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
)

// ErrDAGBomb means content fetched within max_fetch_bytes would expand, once its
// repeated links are written out as files, past max_fetch_bytes, max_fetch_entries or
// max_fetch_depth: a DAG that links one block a million times is a few MiB to fetch
// and a terabyte to write.
var ErrDAGBomb = errors.New("ipfs content expands past the fetch limits")

// logical is what a DAG becomes once written out: bytes of file content, directory
// entries, and depth, with every link counted as often as it appears.
type logical struct {
	bytes, entries int64
	depth          int
}

// checkLogical walks the stored DAG under root and refuses it when its logical size,
// entry count or depth passes the configured limits. Each unique block is decoded once
// (the tallies of repeated links are reused), so a bomb costs what it took to fetch.
func (n *Node) checkLogical(ctx context.Context, root cid.Cid) (logical, error) {
	memo := map[cid.Cid]logical{}
	lg, err := n.tally(ctx, root, 0, memo)
	if err != nil {
		return lg, err
	}
	if lg.bytes > n.cfg.MaxFetchBytes {
		return lg, fmt.Errorf("%w: %d logical bytes or more, max_fetch_bytes is %d", ErrDAGBomb, lg.bytes, n.cfg.MaxFetchBytes)
	}
	if lg.entries > n.cfg.MaxFetchEntries {
		return lg, fmt.Errorf("%w: %d entries or more, max_fetch_entries is %d", ErrDAGBomb, lg.entries, n.cfg.MaxFetchEntries)
	}
	return lg, nil
}

func (n *Node) tally(ctx context.Context, c cid.Cid, depth int, memo map[cid.Cid]logical) (logical, error) {
	if depth > n.cfg.MaxFetchDepth {
		return logical{}, fmt.Errorf("%w: deeper than max_fetch_depth %d", ErrDAGBomb, n.cfg.MaxFetchDepth)
	}
	if lg, ok := memo[c]; ok {
		return lg, nil
	}
	if err := ctx.Err(); err != nil {
		return logical{}, err
	}
	var lg logical
	if c.Type() == cid.Raw {
		size, err := n.store.GetSize(ctx, c)
		if err != nil {
			return lg, fmt.Errorf("block %s: %w", c, err)
		}
		lg.bytes = int64(size)
		memo[c] = lg
		return lg, nil
	}
	nd, err := n.offline.Get(ctx, c)
	if err != nil {
		return lg, fmt.Errorf("block %s: %w", c, err)
	}
	pn, ok := nd.(*dag.ProtoNode)
	if !ok {
		return lg, fmt.Errorf("block %s: not a UnixFS node", c)
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return lg, fmt.Errorf("block %s: %w", c, err)
	}
	isDir := fsn.Type() == ft.TDirectory || fsn.Type() == ft.THAMTShard
	if !isDir {
		lg.bytes = int64(len(fsn.Data()))
	}
	for _, l := range nd.Links() {
		child, err := n.tally(ctx, l.Cid, depth+1, memo)
		if err != nil {
			return lg, err
		}
		lg.bytes = satAdd(lg.bytes, child.bytes)
		lg.entries = satAdd(lg.entries, child.entries)
		if isDir {
			// A sharded directory's links to its sub-shards count as entries too:
			// an over-count, on the safe side.
			lg.entries = satAdd(lg.entries, 1)
		}
		lg.depth = max(lg.depth, child.depth+1)
		// Stop adding once past every limit: the tally is only compared with them.
		if lg.bytes > n.cfg.MaxFetchBytes || lg.entries > n.cfg.MaxFetchEntries {
			break
		}
	}
	memo[c] = lg
	return lg, nil
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
