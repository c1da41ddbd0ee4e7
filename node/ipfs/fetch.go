package ipfs

import (
	"context"
	"errors"
	"fmt"
	"github.com/gpunode/gpunode/node/api"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/files"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	unixfile "github.com/ipfs/boxo/ipld/unixfs/file"
	"github.com/ipfs/go-cid"
)

// Progress is the state of one fetch.
type Progress = api.IPFSProgress

type fetchState struct {
	mu   sync.Mutex
	p    Progress
	done chan struct{}
	err  error
}

func (s *fetchState) snapshot() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// Fetches lists the fetches of this process, newest first.
func (n *Node) Fetches() []Progress {
	n.fetchMu.Lock()
	defer n.fetchMu.Unlock()
	out := make([]Progress, 0, len(n.fetches))
	for _, s := range n.fetches {
		out = append(out, s.snapshot())
	}
	sortProgress(out)
	return out
}

// FetchProgress returns the progress of the fetch of c, if there is one.
func (n *Node) FetchProgress(c cid.Cid) (Progress, bool) {
	n.fetchMu.Lock()
	s, ok := n.fetches[c]
	n.fetchMu.Unlock()
	if !ok {
		return Progress{}, false
	}
	return s.snapshot(), true
}

// Fetch makes the content c available as a read-only directory in the input cache and
// returns its path: a directory CID's entries are the directory's entries, a file CID
// becomes the one file <dir>/<cid>. The root is pinned as an input first, so blocks of
// an interrupted fetch survive garbage collection and a later Fetch (after a restart
// too) resumes from them. Concurrent fetches of one CID share the work.
func (n *Node) Fetch(ctx context.Context, c cid.Cid) (string, error) {
	final := filepath.Join(n.inputsDir(), c.String())
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	n.fetchMu.Lock()
	st, ok := n.fetches[c]
	if ok && st.p.State == "fetching" {
		// Another caller is fetching c: wait for it.
		n.fetchMu.Unlock()
		select {
		case <-st.done:
			if st.err != nil {
				return "", st.err
			}
			return final, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	st = &fetchState{done: make(chan struct{}), p: Progress{CID: c.String(), State: "fetching", Started: time.Now().UTC()}}
	n.fetches[c] = st
	n.fetchMu.Unlock()

	fctx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.FetchTimeout))
	defer cancel()
	err := n.fetch(fctx, c, final, st)
	st.mu.Lock()
	st.err = err
	st.p.Updated = time.Now().UTC()
	if err != nil {
		st.p.State, st.p.Error = "failed", err.Error()
		n.stats.fetchesFailed.Add(1)
	} else {
		st.p.State, st.p.Path = "done", final
		n.stats.fetchesDone.Add(1)
	}
	st.mu.Unlock()
	close(st.done)
	if err != nil {
		return "", err
	}
	return final, nil
}

func (n *Node) fetch(ctx context.Context, c cid.Cid, final string, st *fetchState) error {
	if n.kubo != nil {
		if err := n.kubo.get(ctx, c, final, n.cfg.MaxFetchBytes); err != nil {
			return fmt.Errorf("ipfs fetch %s: %w", c, err)
		}
		return nil
	}
	if err := n.ensureSpace(ctx, 0); err != nil {
		return fmt.Errorf("ipfs fetch %s: %w", c, err)
	}
	n.gcMu.RLock()
	defer n.gcMu.RUnlock()
	if !n.pins.has(c.String()) {
		if err := n.pins.add(Pin{CID: c.String(), Name: "input", Kind: PinInput, Created: time.Now().UTC()}); err != nil {
			return err
		}
	}
	// A block found corrupt while writing the files out is deleted by the store;
	// walking again fetches it anew. Twice is enough unless the disk is failing.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = n.fetchBlocks(ctx, c, st); err != nil {
			break
		}
		// The blocks fit the cap; what they expand to when written out must too.
		if _, err = n.checkLogical(ctx, c); err != nil {
			break
		}
		if err = n.materialize(ctx, c, final); err == nil || ctx.Err() != nil {
			break
		}
		n.log.Warn("writing input failed, fetching again", "cid", c.String(), "err", err)
	}
	if err != nil {
		return fmt.Errorf("ipfs fetch %s: %w", c, err)
	}
	n.log.Info("fetched", "cid", c.String(), "path", final)
	return nil
}

// Get fetches c and writes a writable copy to dir (created if missing): a directory
// CID's entries go into dir, a file CID becomes dir/<cid>.
func (n *Node) Get(ctx context.Context, c cid.Cid, dir string) error {
	src, err := n.Fetch(ctx, c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ipfs get %s: %w", c, err)
	}
	if err := copyTree(src, dir); err != nil {
		return fmt.Errorf("ipfs get %s: %w", c, err)
	}
	return nil
}

// fetchBlocks walks the DAG under root breadth-first, level by level, asking bitswap
// for every block not stored yet, in batches.
func (n *Node) fetchBlocks(ctx context.Context, root cid.Cid, st *fetchState) error {
	ses := blockservice.NewSession(ctx, n.bserv)
	level := []cid.Cid{root}
	const batch = 512
	// A DAG may link one block many times (a file of zeros is one leaf, linked
	// from everywhere): each is fetched and counted once.
	seen := make(map[string]bool)
	for len(level) > 0 {
		var next, missing []cid.Cid
		for _, c := range level {
			if seen[string(c.Hash())] {
				continue
			}
			seen[string(c.Hash())] = true
			ok, err := n.store.Has(ctx, c)
			if err != nil {
				return err
			}
			if !ok {
				missing = append(missing, c)
				continue
			}
			size, links, err := n.localLinks(ctx, c)
			if errors.Is(err, ErrBadBlock) {
				missing = append(missing, c)
				continue
			}
			if err != nil {
				return err
			}
			next = append(next, links...)
			if err := n.count(st, size, false); err != nil {
				return err
			}
		}
		for len(missing) > 0 {
			k := min(batch, len(missing))
			want := missing[:k]
			missing = missing[k:]
			if n.store.Size() >= n.cfg.MaxStorageBytes {
				return fmt.Errorf("%w: %d bytes stored, cap %d (unpin content or raise max_storage_bytes)",
					ErrStorageFull, n.store.Size(), n.cfg.MaxStorageBytes)
			}
			links, err := n.getBatch(ctx, &ses, want, st)
			if err != nil {
				return err
			}
			next = append(next, links...)
			if err := n.store.Sync(); err != nil {
				return err
			}
		}
		level = next
	}
	return nil
}

// stallTimeout is how long a batch may go without a block before its wants are
// sent again on a new session: a want can be lost (a peer restarts, or a cancel of
// the same CID by another request reaches the peer after our want).
const stallTimeout = 15 * time.Second

// getBatch fetches want over bitswap and returns the links of the blocks it got.
// A batch that stalls is asked again, on a new session, up to five times.
func (n *Node) getBatch(ctx context.Context, ses **blockservice.Session, want []cid.Cid, st *fetchState) ([]cid.Cid, error) {
	var links []cid.Cid
	for attempt := 0; ; attempt++ {
		got := make(map[cid.Cid]bool, len(want))
		bctx, cancel := context.WithCancel(ctx)
		stall := time.AfterFunc(stallTimeout, cancel)
		var err error
		for b := range (*ses).GetBlocks(bctx, want) {
			stall.Reset(stallTimeout)
			got[b.Cid()] = true
			l, lerr := blockLinks(b.Cid(), b.RawData())
			if lerr != nil {
				err = fmt.Errorf("block %s: %w", b.Cid(), lerr)
				break
			}
			links = append(links, l...)
			if err = n.count(st, len(b.RawData()), true); err != nil {
				break
			}
		}
		stall.Stop()
		cancel()
		if err != nil {
			return nil, err
		}
		if len(got) == len(want) {
			return links, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var rest []cid.Cid
		for _, c := range want {
			if !got[c] {
				rest = append(rest, c)
			}
		}
		if attempt == 4 {
			return nil, fmt.Errorf("%d of %d blocks not found (no peer sent them for %s, 5 times)", len(rest), len(want), stallTimeout)
		}
		n.log.Warn("fetch stalled, asking again", "blocks_missing", len(rest), "attempt", attempt+1)
		want = rest
		*ses = blockservice.NewSession(ctx, n.bserv)
	}
}

func (n *Node) count(st *fetchState, size int, network bool) error {
	st.mu.Lock()
	st.p.Blocks++
	if network {
		st.p.FromNetwork++
	} else {
		st.p.Local++
	}
	st.p.Bytes += int64(size)
	st.p.Updated = time.Now().UTC()
	if network {
		n.stats.netBlocks.Add(1)
	} else {
		n.stats.localBlocks.Add(1)
	}
	n.stats.fetchedBytes.Add(int64(size))
	p := st.p
	st.mu.Unlock()
	if n.afterBlock != nil {
		n.afterBlock(p)
	}
	if p.Bytes > n.cfg.MaxFetchBytes {
		return fmt.Errorf("%w (%d bytes)", ErrTooLarge, n.cfg.MaxFetchBytes)
	}
	return nil
}

// localLinks returns the size and links of a stored block. Raw blocks have no links
// and are not read (they are verified when the files are written out).
func (n *Node) localLinks(ctx context.Context, c cid.Cid) (int, []cid.Cid, error) {
	if c.Type() == cid.Raw {
		size, err := n.store.GetSize(ctx, c)
		return size, nil, err
	}
	b, err := n.store.Get(ctx, c)
	if err != nil {
		return 0, nil, err
	}
	links, err := blockLinks(c, b.RawData())
	return len(b.RawData()), links, err
}

func blockLinks(c cid.Cid, data []byte) ([]cid.Cid, error) {
	switch c.Type() {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		nd, err := dag.DecodeProtobuf(data)
		if err != nil {
			return nil, err
		}
		out := make([]cid.Cid, 0, len(nd.Links()))
		for _, l := range nd.Links() {
			out = append(out, l.Cid)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("codec %#x is not UnixFS (dag-pb or raw)", c.Type())
	}
}

// materialize writes the stored DAG under c as files into final, through a partial
// directory renamed into place once complete and made read-only.
func (n *Node) materialize(ctx context.Context, c cid.Cid, final string) error {
	nd, err := n.offline.Get(ctx, c)
	if err != nil {
		return err
	}
	f, err := unixfile.NewUnixfsFile(ctx, n.offline, nd)
	if err != nil {
		return err
	}
	defer f.Close()
	tmp := final + ".partial"
	if err := removeTree(tmp); err != nil {
		return err
	}
	target := tmp
	if _, isDir := f.(files.Directory); !isDir {
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		target = filepath.Join(tmp, c.String())
	}
	if err := files.WriteTo(f, target); err != nil {
		removeTree(tmp)
		return err
	}
	if err := makeReadOnly(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

func makeReadOnly(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return nil
		case d.IsDir():
			return os.Chmod(p, 0o555)
		default:
			return os.Chmod(p, 0o444)
		}
	})
}

// removeTree removes a read-only tree.
func removeTree(root string) error {
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(root)
}

func removePartials(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".partial") {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyTree copies the files, directories and symlinks under src into dst, writable.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, out)
		default:
			return copyFile(p, out)
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sortProgress(ps []Progress) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Started.After(ps[j].Started) })
}
