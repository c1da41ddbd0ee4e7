package ipfs

import (
	"bytes"
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// ErrBadBlock means a block's bytes do not hash to its CID: it was corrupted on disk
// or a peer sent wrong data. Such a block is never stored or returned.
var ErrBadBlock = errors.New("block bytes do not match its CID")

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// blockStore keeps one file per block, named by the block's multihash, under
// dir/XX/ where XX are the name's last two characters (so no folder grows past a
// few thousand entries). A block is written to a temporary file and renamed into
// place, so a crash leaves either the whole verified block or nothing: that is what
// makes interrupted fetches resumable. Blocks are keyed by multihash, like kubo's
// flatfs, so the same bytes stored under a CIDv0 and a CIDv1 take one file.
//
// Durability (when sync is set): each block file's data is flushed before it is
// renamed into place, and callers call Sync at their commit points (end of an add,
// each fetch batch) before recording a pin, which flushes the folders the renames
// touched. A block torn by a crash anyway is caught by the hash check on read and
// fetched or added again.
type blockStore struct {
	dir  string
	sync bool
	size atomic.Int64 // bytes of block data on disk

	mu    sync.Mutex
	dirty map[string]bool // folders with renames not yet flushed
}

func openBlockStore(dir string, sync bool) (*blockStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("blockstore %s: %w", dir, err)
	}
	s := &blockStore{dir: dir, sync: sync, dirty: make(map[string]bool)}
	// Sum what is there and drop temporary files left by a crash mid-write.
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, ".tmp") {
			return os.Remove(p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		s.size.Add(info.Size())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blockstore %s: %w", dir, err)
	}
	return s, nil
}

func (s *blockStore) path(h mh.Multihash) string {
	name := b32.EncodeToString(h)
	return filepath.Join(s.dir, name[len(name)-2:], name)
}

// Sync flushes the folders that blocks were renamed into since the last Sync.
func (s *blockStore) Sync() error {
	if !s.sync {
		return nil
	}
	s.mu.Lock()
	dirs := make([]string, 0, len(s.dirty))
	for d := range s.dirty {
		dirs = append(dirs, d)
	}
	clear(s.dirty)
	s.mu.Unlock()
	var g errgroup.Group
	g.SetLimit(8)
	for _, d := range dirs {
		g.Go(func() error {
			f, err := os.Open(d)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Sync()
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("blockstore: sync: %w", err)
	}
	return nil
}

// Size returns the bytes of block data stored.
func (s *blockStore) Size() int64 { return s.size.Load() }

func (s *blockStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	_, err := os.Stat(s.path(c.Hash()))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// Get returns the block, verifying its bytes against the CID. A block that fails is
// deleted (so the next fetch gets it again) and reported as ErrBadBlock.
func (s *blockStore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := os.ReadFile(s.path(c.Hash()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	if err := verify(c, data); err != nil {
		_ = s.DeleteBlock(ctx, c)
		return nil, fmt.Errorf("block %s on disk: %w", c, err)
	}
	return blocks.NewBlockWithCid(data, c)
}

func (s *blockStore) GetSize(_ context.Context, c cid.Cid) (int, error) {
	info, err := os.Stat(s.path(c.Hash()))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return -1, err
	}
	return int(info.Size()), nil
}

// Put verifies and stores a block that came from outside this process.
func (s *blockStore) Put(_ context.Context, b blocks.Block) error {
	if err := verify(b.Cid(), b.RawData()); err != nil {
		return fmt.Errorf("block %s: %w", b.Cid(), err)
	}
	return s.write(b.Cid().Hash(), b.RawData())
}

func (s *blockStore) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := s.Put(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// write stores data under h unless it is there already.
func (s *blockStore) write(h mh.Multihash, data []byte) error {
	p := s.path(h)
	added, err := s.writeFile(p, data)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return fmt.Errorf("blockstore: %w", err)
		}
		added, err = s.writeFile(p, data)
	}
	if err != nil {
		return fmt.Errorf("blockstore: write %s: %w", filepath.Base(p), err)
	}
	if added {
		s.size.Add(int64(len(data)))
	}
	return nil
}

// writeFile writes data to a temporary file and renames it to p unless p exists
// (RENAME_NOREPLACE: no separate check, no race); added says whether it was new.
func (s *blockStore) writeFile(p string, data []byte) (added bool, err error) {
	tmp := p + "." + strconv.FormatUint(tmpSeq.Add(1), 36) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return false, err
	}
	_, err = f.Write(data)
	if err == nil && s.sync {
		err = unix.Fdatasync(int(f.Fd()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, p, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) {
			os.Remove(tmp)
			return false, nil
		}
	}
	if err != nil {
		os.Remove(tmp)
		return false, err
	}
	if s.sync {
		s.mu.Lock()
		s.dirty[filepath.Dir(p)] = true
		s.mu.Unlock()
	}
	return true, nil
}

// tmpSeq names temporary files; with the process start time it keeps names unique.
var tmpSeq atomic.Uint64

func init() { tmpSeq.Store(uint64(time.Now().UnixNano())) }

func (s *blockStore) DeleteBlock(_ context.Context, c cid.Cid) error {
	p := s.path(c.Hash())
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	s.size.Add(-info.Size())
	return nil
}

// AllKeysChan lists every stored block as a raw CIDv1 (the codec is not stored).
func (s *blockStore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	ch := make(chan cid.Cid, 64)
	go func() {
		defer close(ch)
		_ = s.walk(ctx, func(h mh.Multihash) error {
			select {
			case ch <- cid.NewCidV1(cid.Raw, h):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return ch, nil
}

func (s *blockStore) walk(ctx context.Context, fn func(mh.Multihash) error) error {
	return filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, ".tmp") {
			return nil
		}
		raw, err := b32.DecodeString(d.Name())
		if err != nil {
			return nil // not ours
		}
		h, err := mh.Cast(raw)
		if err != nil {
			return nil
		}
		return fn(h)
	})
}

// verify checks that data hashes to c.
func verify(c cid.Cid, data []byte) error {
	got, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	if !bytes.Equal(got.Hash(), c.Hash()) {
		return ErrBadBlock
	}
	return nil
}

// serveStore is the blockstore bitswap uses. Blocks it sends are read without the
// hash check: every bitswap receiver hashes what it gets, so checking here too would
// only double the CPU spent per block served. Everything else is the blockStore's.
type serveStore struct{ *blockStore }

func (s serveStore) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := os.ReadFile(s.path(c.Hash()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	return blocks.NewBlockWithCid(data, c)
}
