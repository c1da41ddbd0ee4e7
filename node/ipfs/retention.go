package ipfs

import (
	"context"
	"path/filepath"
	"time"

	"github.com/ipfs/go-cid"
)

// SweepInputs unpins the inputs fetched before a time that inUse does not claim and
// that no fetch is working on, and removes their cached files; the next garbage
// collection frees their blocks. Checkpoints this node published are never touched.
func (n *Node) SweepInputs(ctx context.Context, before time.Time, inUse func(cid string) bool) (int, error) {
	removed := 0
	for _, p := range n.pins.list() {
		if p.Kind != PinInput || !p.Created.Before(before) || inUse(p.CID) {
			continue
		}
		c, err := cid.Decode(p.CID)
		if err != nil {
			continue
		}
		if pr, ok := n.FetchProgress(c); ok && pr.State == "fetching" {
			continue
		}
		if err := n.pins.remove(p.CID); err != nil {
			return removed, err
		}
		if err := removeTree(filepath.Join(n.inputsDir(), p.CID)); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
