package ipfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gpunode/gpunode/node/api"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	dag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Pin kinds say why content is kept.
const (
	PinCheckpoint = "checkpoint" // published by this node (ipfs add, job outputs)
	PinInput      = "input"      // fetched as a job input
)

// Pin is one recursively pinned root.
type Pin = api.IPFSPin

// RemotePin tracks a pin request at a Pinning Service.
type RemotePin = api.IPFSRemotePin

// pinSet is the set of pinned roots, saved as JSON (written to a temporary file and
// renamed, so a crash keeps either the old or the new set).
type pinSet struct {
	path string
	mu   sync.Mutex
	pins map[string]Pin
}

func openPinSet(path string) (*pinSet, error) {
	ps := &pinSet{path: path, pins: make(map[string]Pin)}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ps, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pin set %s: %w", path, err)
	}
	var list []Pin
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("pin set %s: %w", path, err)
	}
	for _, p := range list {
		ps.pins[p.CID] = p
	}
	return ps, nil
}

func (ps *pinSet) add(p Pin) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if old, ok := ps.pins[p.CID]; ok && old.Kind == PinCheckpoint && p.Kind == PinInput {
		return nil // a checkpoint stays a checkpoint when it is also fetched
	}
	ps.pins[p.CID] = p
	return ps.saveLocked()
}

func (ps *pinSet) update(c string, fn func(*Pin)) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p, ok := ps.pins[c]
	if !ok {
		return ErrNotPinned
	}
	fn(&p)
	ps.pins[c] = p
	return ps.saveLocked()
}

func (ps *pinSet) remove(c string) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, ok := ps.pins[c]; !ok {
		return fmt.Errorf("%s: %w", c, ErrNotPinned)
	}
	delete(ps.pins, c)
	return ps.saveLocked()
}

func (ps *pinSet) has(c string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	_, ok := ps.pins[c]
	return ok
}

func (ps *pinSet) list() []Pin {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]Pin, 0, len(ps.pins))
	for _, p := range ps.pins {
		out = append(out, p)
	}
	sortPins(out)
	return out
}

func sortPins(ps []Pin) {
	sort.Slice(ps, func(i, j int) bool {
		if !ps[i].Created.Equal(ps[j].Created) {
			return ps[i].Created.Before(ps[j].Created)
		}
		return ps[i].CID < ps[j].CID
	})
}

func (ps *pinSet) saveLocked() error {
	list := make([]Pin, 0, len(ps.pins))
	for _, p := range ps.pins {
		list = append(list, p)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].CID < list[j].CID })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	tmp := ps.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("pin set: %w", err)
	}
	if err := os.Rename(tmp, ps.path); err != nil {
		return fmt.Errorf("pin set: %w", err)
	}
	return nil
}

// Pins lists the pin set (in kubo mode: kubo's recursive pins).
func (n *Node) Pins(ctx context.Context) ([]Pin, error) {
	if n.kubo != nil {
		return n.kubo.pins(ctx)
	}
	list := n.pins.list()
	if n.remote != nil {
		for i := range list {
			if r := list[i].Remote; r != nil && r.Status != "pinned" && r.Status != "failed" {
				st, err := n.remote.status(ctx, r.RequestID)
				if err != nil {
					n.log.Warn("remote pin status", "cid", list[i].CID, "err", err)
					continue
				}
				r.Status = st.Status
				_ = n.pins.update(list[i].CID, func(p *Pin) { p.Remote = &RemotePin{RequestID: r.RequestID, Status: st.Status} })
			}
		}
	}
	return list, nil
}

// PinCID pins c under name. The blocks need not be local yet: fetch them with Fetch.
func (n *Node) PinCID(ctx context.Context, c cid.Cid, name string) error {
	if n.kubo != nil {
		return n.kubo.pinAdd(ctx, c)
	}
	return n.pins.add(Pin{CID: c.String(), Name: name, Kind: PinCheckpoint, Created: time.Now().UTC()})
}

// Unpin removes c from the pin set (and its input cache entry); the blocks go at the
// next garbage collection.
func (n *Node) Unpin(ctx context.Context, c cid.Cid) error {
	if n.kubo != nil {
		return n.kubo.pinRm(ctx, c)
	}
	var remote *RemotePin
	for _, p := range n.pins.list() {
		if p.CID == c.String() {
			remote = p.Remote
		}
	}
	if err := n.pins.remove(c.String()); err != nil {
		return err
	}
	if remote != nil && n.remote != nil {
		// The checkpoint is no longer wanted anywhere; a failure only costs the
		// service storage, so it is logged, not returned.
		if err := n.remote.remove(ctx, remote.RequestID); err != nil {
			n.log.Warn("remote unpin failed", "cid", c.String(), "err", err)
			n.stats.remotePinFails.Add(1)
		}
	}
	return removeTree(filepath.Join(n.inputsDir(), c.String()))
}

// GCResult says what a garbage collection removed.
type GCResult = api.IPFSGCResult

// GC deletes every block not reachable from a pinned root.
func (n *Node) GC(ctx context.Context) (GCResult, error) {
	if n.kubo != nil {
		return GCResult{}, n.kubo.gc(ctx)
	}
	n.gcMu.Lock()
	defer n.gcMu.Unlock()
	keep := make(map[string]bool)
	for _, p := range n.pins.list() {
		c, err := cid.Decode(p.CID)
		if err != nil {
			continue
		}
		if err := n.markLocal(ctx, c, keep); err != nil {
			return GCResult{}, fmt.Errorf("ipfs gc: %w", err)
		}
	}
	before := n.store.Size()
	var res GCResult
	err := n.store.walk(ctx, func(h mh.Multihash) error {
		if keep[string(h)] {
			return nil
		}
		res.Blocks++
		return n.store.DeleteBlock(ctx, cid.NewCidV1(cid.Raw, h))
	})
	res.Bytes = before - n.store.Size()
	if err != nil {
		return res, fmt.Errorf("ipfs gc: %w", err)
	}
	n.log.Info("garbage collected", "blocks", res.Blocks, "bytes", res.Bytes)
	return res, nil
}

// markLocal adds every locally stored block reachable from root to keep. Missing
// blocks (a fetch still under way) are skipped, not fetched.
func (n *Node) markLocal(ctx context.Context, root cid.Cid, keep map[string]bool) error {
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if keep[string(c.Hash())] {
			continue
		}
		if ok, _ := n.store.Has(ctx, c); !ok {
			continue
		}
		keep[string(c.Hash())] = true
		if c.Type() != cid.DagProtobuf {
			continue
		}
		b, err := n.store.Get(ctx, c)
		if err != nil {
			continue // corrupt: Get deleted it
		}
		nd, err := dag.DecodeProtobuf(b.RawData())
		if err != nil {
			continue
		}
		for _, l := range nd.Links() {
			stack = append(stack, l.Cid)
		}
	}
	return ctx.Err()
}
