package node

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
)

// A researcher's node keeps a record of every job it posted and, when one's deadline
// passes without an outcome — nobody accepted it, the provider never submitted, the
// validators never decided — expires it, so the escrow comes back to the sponsor without
// anyone having to notice.

const (
	sponsoredOpen    = "open"
	sponsoredSettled = "settled"
)

func sponsoredKey(id string) string { return "sponsored-" + id }

// sponsored records a job this node posted.
func (c *chain) sponsored(id string) error {
	err := c.store.Create(store.Job{ID: sponsoredKey(id), State: sponsoredOpen}, "posted by this node")
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	return err
}

// reclaim settles the node's posted jobs: those over on chain are marked so, those past
// their deadline are expired.
func (c *chain) reclaim(ctx context.Context) {
	open, err := c.store.List(func(j store.Job) bool {
		return strings.HasPrefix(j.ID, "sponsored-") && j.State == sponsoredOpen
	})
	if err != nil {
		c.log.Warn("list posted jobs", "err", err)
		return
	}
	for _, j := range open {
		id := strings.TrimPrefix(j.ID, "sponsored-")
		n, ok := new(big.Int).SetString(id, 10)
		if !ok {
			continue
		}
		view, err := c.m.Job(ctx, n)
		if err != nil {
			c.log.Warn("read posted job", "job_id", id, "err", err)
			continue
		}
		if _, open := market.Deadline(view); !open {
			c.store.Advance(j.ID, sponsoredOpen, sponsoredSettled, "ended on chain: "+market.JobState(view.State).String(), nil)
			continue
		}
		if past, _, err := c.m.PastDeadline(ctx, view); err != nil || !past {
			continue
		}
		r, err := c.m.Expire(ctx, n)
		if err != nil {
			c.log.Warn("expire posted job past its deadline; trying again later", "job_id", id, "err", err)
			continue
		}
		c.log.Info("posted job expired past its deadline: the escrow is credited back", "job_id", id, "tx", r.TxHash.Hex())
		c.store.Advance(j.ID, sponsoredOpen, sponsoredSettled, "expired by this node, tx "+r.TxHash.Hex(), nil)
	}
}

// reclaimLoop runs reclaim every interval until ctx ends.
func (c *chain) reclaimLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.reclaim(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// postedJobs lists the jobs this node posted, newest first, as the chain records them.
func (c *chain) postedJobs(ctx context.Context) ([]api.ChainJob, error) {
	list, err := c.store.List(func(j store.Job) bool { return strings.HasPrefix(j.ID, "sponsored-") })
	if err != nil {
		return nil, err
	}
	sort.Slice(list, func(i, k int) bool { return list[i].CreatedAt.After(list[k].CreatedAt) })
	out := make([]api.ChainJob, 0, len(list))
	for _, j := range list {
		n, ok := new(big.Int).SetString(strings.TrimPrefix(j.ID, "sponsored-"), 10)
		if !ok {
			continue
		}
		cj, err := c.m.ChainJob(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, cj)
	}
	return out, nil
}

// routes serves GET /v1/market/posted, the jobs this node posted, and
// GET /v1/market/ledger, what it was credited and withdrew.
func (c *chain) routes(s *api.Server) {
	s.HandleFunc("GET /v1/market/ledger", func(w http.ResponseWriter, r *http.Request) {
		entries, err := c.store.Ledger()
		if err != nil {
			api.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		out := make([]api.LedgerEntry, 0, len(entries))
		for _, e := range entries {
			out = append(out, api.LedgerEntry{Kind: e.Kind, Wei: e.Wei, JobID: e.JobID, Token: e.Token, TxHash: e.TxHash, At: e.At})
		}
		sort.Slice(out, func(i, k int) bool { return out[i].At.Before(out[k].At) })
		api.WriteJSON(w, http.StatusOK, out)
	})
	s.HandleFunc("GET /v1/market/posted", func(w http.ResponseWriter, r *http.Request) {
		list, err := c.postedJobs(r.Context())
		if err != nil {
			api.WriteError(w, http.StatusBadGateway, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, list)
	})
}
