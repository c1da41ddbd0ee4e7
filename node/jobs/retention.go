package jobs

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/gpunode/gpunode/node/store"
)

// InputSweeper drops cached inputs (IPFS input pins and their files) that were fetched
// before a time and that no job still needs; the node's IPFS component implements it.
type InputSweeper interface {
	SweepInputs(ctx context.Context, before time.Time, inUse func(cid string) bool) (int, error)
}

// Sweep removes what finished jobs left once Retention has passed since they ended:
// their work folders (output, staged publication), and cached inputs fetched before
// then that no unfinished job lists. A job that is not finished, or a failed one still
// owed a refund, keeps everything. It returns the jobs whose folders it removed.
func (m *Machine) Sweep(ctx context.Context, now time.Time, inputs InputSweeper) ([]string, error) {
	ret := time.Duration(m.cfg.Retention)
	if ret <= 0 {
		return nil, nil
	}
	jobs, err := m.deps.Store.List(func(j store.Job) bool { return IsJobID(j.ID) })
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	var removed []string
	for _, j := range jobs {
		done := State(j.State).Terminal() && !(State(j.State) == Failed && owesRefund(j.Data))
		if !done {
			if rec, err := decodeRecord(j.Data); err == nil && rec.Manifest != nil {
				for _, in := range rec.Manifest.Inputs {
					used[in.CID] = true
				}
			}
			continue
		}
		if now.Sub(j.UpdatedAt) < ret {
			continue
		}
		dir := filepath.Join(m.deps.WorkDir, j.ID)
		if _, err := os.Lstat(dir); err != nil {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			m.log.Warn("retention: remove job folder", "job_id", j.ID, "err", err)
			continue
		}
		removed = append(removed, j.ID)
	}
	if inputs != nil {
		n, err := inputs.SweepInputs(ctx, now.Add(-ret), func(c string) bool { return used[c] })
		if err != nil {
			return removed, err
		}
		if n > 0 || len(removed) > 0 {
			m.log.Info("retention: removed what finished jobs left", "job_folders", len(removed), "inputs", n, "retention", ret)
		}
	}
	return removed, nil
}

// Retain runs Sweep every hour until ctx ends.
func (m *Machine) Retain(ctx context.Context, inputs InputSweeper) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if _, err := m.Sweep(ctx, time.Now(), inputs); err != nil {
			m.log.Warn("retention sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
