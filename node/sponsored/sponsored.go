// Package sponsored keeps a record of every job a researcher's node posted and, when
// one's deadline passes without an outcome — nobody accepted it, the provider never
// submitted, the validators never decided — expires it, so the escrow comes back to the
// sponsor without anyone having to notice.
package sponsored

import (
	"context"
	"errors"
	"log/slog"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
)

// States of a posted job's record, kept in the store under Key(job id).
const (
	Open    = "open"
	Settled = "settled"
)

const keyPrefix = "sponsored-"

// Key is the store key of posted job id's record.
func Key(id string) string { return keyPrefix + id }

// Market is what reclaiming needs of the chain side.
type Market interface {
	Job(ctx context.Context, id *big.Int) (bindings.JobMarketJob, error)
	PastDeadline(ctx context.Context, v bindings.JobMarketJob) (past bool, wait time.Duration, err error)
	Expire(ctx context.Context, id *big.Int) (*types.Receipt, error)
	ChainJob(ctx context.Context, id *big.Int) (api.ChainJob, error)
}

// Jobs are the jobs this node posted.
type Jobs struct {
	m   Market
	st  *store.Store
	log *slog.Logger
}

// New returns the posted jobs recorded in st, read and expired through m.
func New(m Market, st *store.Store, log *slog.Logger) *Jobs {
	return &Jobs{m: m, st: st, log: log.With("component", "chain")}
}

// Record records a job this node posted.
func (s *Jobs) Record(id string) error {
	err := s.st.Create(store.Job{ID: Key(id), State: Open}, "posted by this node")
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	return err
}

// Reclaim settles the node's posted jobs: those over on chain are marked so, those past
// their deadline are expired.
func (s *Jobs) Reclaim(ctx context.Context) {
	open, err := s.st.List(func(j store.Job) bool {
		return strings.HasPrefix(j.ID, keyPrefix) && j.State == Open
	})
	if err != nil {
		s.log.Warn("list posted jobs", "err", err)
		return
	}
	for _, j := range open {
		id := strings.TrimPrefix(j.ID, keyPrefix)
		n, ok := new(big.Int).SetString(id, 10)
		if !ok {
			continue
		}
		view, err := s.m.Job(ctx, n)
		if err != nil {
			s.log.Warn("read posted job", "job_id", id, "err", err)
			continue
		}
		if _, open := market.Deadline(view); !open {
			s.st.Advance(j.ID, Open, Settled, "ended on chain: "+market.JobState(view.State).String(), nil)
			continue
		}
		if past, _, err := s.m.PastDeadline(ctx, view); err != nil || !past {
			continue
		}
		r, err := s.m.Expire(ctx, n)
		if err != nil {
			s.log.Warn("expire posted job past its deadline; trying again later", "job_id", id, "err", err)
			continue
		}
		s.log.Info("posted job expired past its deadline: the escrow is credited back", "job_id", id, "tx", r.TxHash.Hex())
		s.st.Advance(j.ID, Open, Settled, "expired by this node, tx "+r.TxHash.Hex(), nil)
	}
}

// Run reclaims every interval until ctx ends.
func (s *Jobs) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.Reclaim(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// List lists the jobs this node posted, newest first, as the chain records them.
func (s *Jobs) List(ctx context.Context) ([]api.ChainJob, error) {
	list, err := s.st.List(func(j store.Job) bool { return strings.HasPrefix(j.ID, keyPrefix) })
	if err != nil {
		return nil, err
	}
	sort.Slice(list, func(i, k int) bool { return list[i].CreatedAt.After(list[k].CreatedAt) })
	out := make([]api.ChainJob, 0, len(list))
	for _, j := range list {
		n, ok := new(big.Int).SetString(strings.TrimPrefix(j.ID, keyPrefix), 10)
		if !ok {
			continue
		}
		cj, err := s.m.ChainJob(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, cj)
	}
	return out, nil
}
