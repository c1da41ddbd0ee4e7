package ipfs

import (
	"crypto/sha256"
	"io"
	"sync"
	"unsafe"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// The importer hashes each leaf on its one goroutine. To use every core, the
// splitter below reads chunks ahead and hashes them on worker goroutines; the CID
// builder then finds a leaf's hash ready instead of computing it. The chunks are
// exactly those of chunk.NewSizeSplitter (full chunks, a short last one, nothing for
// an empty file), so CIDs do not change.

// prehashSplitter is a chunk.Splitter that reads and hashes chunks ahead.
type prehashSplitter struct {
	r      io.Reader
	size   int
	out    chan *prechunk
	hashes *hashCache
	stop   chan struct{}
	once   sync.Once
}

type prechunk struct {
	data []byte
	err  error
	done chan struct{} // closed when sum is set
	sum  mh.Multihash
}

func newPrehashSplitter(r io.Reader, size int, hashes *hashCache, workers int) *prehashSplitter {
	s := &prehashSplitter{r: r, size: size, out: make(chan *prechunk, 4*workers), hashes: hashes, stop: make(chan struct{})}
	jobs := make(chan *prechunk, 4*workers)
	for range workers {
		go func() {
			for c := range jobs {
				sum := sha256.Sum256(c.data)
				c.sum, _ = mh.Encode(sum[:], mh.SHA2_256)
				close(c.done)
			}
		}()
	}
	go func() {
		defer close(s.out)
		defer close(jobs)
		for {
			buf := make([]byte, s.size)
			n, err := io.ReadFull(s.r, buf)
			c := &prechunk{done: make(chan struct{})}
			switch err {
			case nil:
				c.data = buf
			case io.ErrUnexpectedEOF:
				c.data = buf[:n:n]
			default:
				c.err = err
				close(c.done)
			}
			if c.err == nil {
				select {
				case jobs <- c:
				case <-s.stop:
					return
				}
			}
			select {
			case s.out <- c:
			case <-s.stop:
				return
			}
			if c.err != nil || err == io.ErrUnexpectedEOF {
				return
			}
		}
	}()
	return s
}

func (s *prehashSplitter) Reader() io.Reader { return s.r }

func (s *prehashSplitter) NextBytes() ([]byte, error) {
	c, ok := <-s.out
	if !ok {
		return nil, io.EOF
	}
	<-c.done
	if c.err != nil {
		return nil, c.err
	}
	s.hashes.put(c.data, c.sum)
	return c.data, nil
}

// close stops the read-ahead (on an early return of the importer).
func (s *prehashSplitter) close() { s.once.Do(func() { close(s.stop) }) }

// hashCache hands precomputed leaf hashes to the CID builder, keyed by the leaf's
// backing array (the importer passes the splitter's slice through unchanged).
type hashCache struct {
	mu sync.Mutex
	m  map[*byte]hashed
}

type hashed struct {
	n   int
	sum mh.Multihash
}

func newHashCache() *hashCache { return &hashCache{m: make(map[*byte]hashed)} }

func (h *hashCache) put(data []byte, sum mh.Multihash) {
	if len(data) == 0 {
		return
	}
	h.mu.Lock()
	h.m[unsafe.SliceData(data)] = hashed{len(data), sum}
	h.mu.Unlock()
}

func (h *hashCache) take(data []byte) (mh.Multihash, bool) {
	if len(data) == 0 {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := unsafe.SliceData(data)
	e, ok := h.m[k]
	if !ok || e.n != len(data) {
		return nil, false
	}
	delete(h.m, k)
	return e.sum, true
}

// prehashBuilder is cidBuilder, except raw leaves take their hash from the cache.
type prehashBuilder struct {
	cid.V1Builder
	hashes *hashCache
}

func (b prehashBuilder) Sum(data []byte) (cid.Cid, error) {
	if b.Codec == cid.Raw && b.MhType == mh.SHA2_256 {
		if sum, ok := b.hashes.take(data); ok {
			return cid.NewCidV1(cid.Raw, sum), nil
		}
	}
	return b.V1Builder.Sum(data)
}

func (b prehashBuilder) WithCodec(c uint64) cid.Builder {
	b.Codec = c
	return b
}
