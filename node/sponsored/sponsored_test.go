package sponsored

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
)

// fakeMarket holds jobs; past says whose deadline has passed, failExpire whose expiry
// fails.
type fakeMarket struct {
	jobs       map[int64]bindings.JobMarketJob
	past       map[int64]bool
	failExpire map[int64]bool
	expired    []int64
}

func (m *fakeMarket) Job(_ context.Context, id *big.Int) (bindings.JobMarketJob, error) {
	j, ok := m.jobs[id.Int64()]
	if !ok {
		return j, errors.New("rpc: timeout")
	}
	return j, nil
}
func (m *fakeMarket) PastDeadline(_ context.Context, v bindings.JobMarketJob) (bool, time.Duration, error) {
	return m.past[v.AcceptBy.Int64()], 0, nil
}
func (m *fakeMarket) Expire(_ context.Context, id *big.Int) (*types.Receipt, error) {
	if m.failExpire[id.Int64()] {
		return nil, errors.New("reverted")
	}
	m.expired = append(m.expired, id.Int64())
	return &types.Receipt{TxHash: common.Hash{1}}, nil
}
func (m *fakeMarket) ChainJob(_ context.Context, id *big.Int) (api.ChainJob, error) {
	return api.ChainJob{JobID: id.String(), State: market.JobState(m.jobs[id.Int64()].State).String()}, nil
}

// open is an open job; its AcceptBy doubles as its id, for PastDeadline.
func open(id int64) bindings.JobMarketJob {
	return bindings.JobMarketJob{State: uint8(market.StateOpen), AcceptBy: big.NewInt(id)}
}

// TestReclaim: jobs over on chain are settled as such, jobs past their deadline are
// expired and settled, the others stay open; settled jobs are left alone after.
func TestReclaim(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := &fakeMarket{
		jobs: map[int64]bindings.JobMarketJob{
			1: open(1), 2: open(2), 3: {State: uint8(market.StateCompleted), AcceptBy: big.NewInt(3)}, 4: open(4),
		},
		past:       map[int64]bool{1: true, 4: true},
		failExpire: map[int64]bool{4: true},
	}
	s := New(m, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, id := range []string{"1", "2", "3", "4", "5", "1"} { // 5: the chain does not answer; 1 twice
		if err := s.Record(id); err != nil {
			t.Fatal(err)
		}
	}
	s.Reclaim(t.Context())
	for id, want := range map[string]string{"1": Settled, "2": Open, "3": Settled, "4": Open, "5": Open} {
		if j, err := st.Get(Key(id)); err != nil || j.State != want {
			t.Errorf("job %s: %+v %v, want %s", id, j, err, want)
		}
	}
	s.Reclaim(t.Context())
	if len(m.expired) != 1 || m.expired[0] != 1 {
		t.Errorf("expired %v, want job 1 once", m.expired)
	}
	list, err := s.List(t.Context())
	if err != nil || len(list) != 5 {
		t.Fatalf("list %+v %v", list, err)
	}
	if list[0].JobID != "5" || list[4].JobID != "1" {
		t.Errorf("list not newest first: %+v", list)
	}
}
