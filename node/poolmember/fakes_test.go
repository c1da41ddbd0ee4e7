package poolmember

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
)

// fakeSender is a coordinator that answers results with refuse ("" takes them) or fails
// to be reached while err is set.
type fakeSender struct {
	mu     sync.Mutex
	got    []pool.Result
	refuse string
	err    error
}

func (s *fakeSender) SendResult(_ context.Context, r pool.Result) (pool.Ack, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return pool.Ack{}, s.err
	}
	// What pool.Member.SendResult fills in before it validates and signs.
	full := r
	full.Version, full.Coordinator, full.Member, full.Time, full.Seq = pool.Version, coordinatorID, memberID, 1, uint64(len(s.got)+1)
	if err := full.Validate(); err != nil {
		return pool.Ack{}, fmt.Errorf("result of job %s: %w", r.JobID, err)
	}
	s.got = append(s.got, r)
	return pool.Ack{Version: pool.Version, From: coordinatorID, Seq: full.Seq, JobID: r.JobID, Accepted: s.refuse == "", Reason: s.refuse}, nil
}

func (s *fakeSender) results() []pool.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pool.Result(nil), s.got...)
}

// fakeMarket is the chain's view of jobs by id; err makes every read fail.
type fakeMarket struct {
	mu   sync.Mutex
	jobs map[string]bindings.JobMarketJob
	err  error
}

func (m *fakeMarket) Job(_ context.Context, id *big.Int) (bindings.JobMarketJob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return bindings.JobMarketJob{}, m.err
	}
	v, ok := m.jobs[id.String()]
	if !ok {
		return bindings.JobMarketJob{State: 0, Reward: new(big.Int)}, nil // the contract's zero job
	}
	return v, nil
}

func (m *fakeMarket) set(id string, v bindings.JobMarketJob) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.jobs == nil {
		m.jobs = map[string]bindings.JobMarketJob{}
	}
	m.jobs[id] = v
}

// fakeJobs is a machine's records, and a machine that records what it was handed.
type fakeJobs struct {
	mu         sync.Mutex
	byID       map[string]jobs.Job
	discovered []jobs.Posting
	failList   bool
	// cancels and redispatches record what the machine was asked.
	cancels      map[string]string
	redispatches map[string]uint64
	// misses counts the lookups of jobs it does not have.
	misses map[string]int
}

func newFakeJobs() *fakeJobs { return &fakeJobs{byID: map[string]jobs.Job{}} }

func (f *fakeJobs) Get(id string) (jobs.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.byID[id]
	if !ok {
		if f.misses == nil {
			f.misses = map[string]int{}
		}
		f.misses[id]++
		return jobs.Job{}, fmt.Errorf("job %q: %w", id, store.ErrNotFound)
	}
	return j, nil
}

// missed is how often job id was looked up and not found.
func (f *fakeJobs) missed(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.misses[id]
}

func (f *fakeJobs) List() ([]jobs.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failList {
		return nil, errors.New("store closed")
	}
	var out []jobs.Job
	for _, j := range f.byID {
		out = append(out, j)
	}
	return out, nil
}

func (f *fakeJobs) Discover(_ context.Context, p jobs.Posting) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discovered = append(f.discovered, p)
	return nil
}

func (f *fakeJobs) Cancel(_ context.Context, id, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.byID[id]
	switch {
	case !ok:
		return fmt.Errorf("job %q: %w", id, store.ErrNotFound)
	case j.State == jobs.Submitted:
		return fmt.Errorf("job %s is submitted: %w", id, jobs.ErrTooLate)
	}
	if f.cancels == nil {
		f.cancels = map[string]string{}
	}
	f.cancels[id] = reason
	return nil
}

func (f *fakeJobs) Redispatched(id string, seq uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.redispatches == nil {
		f.redispatches = map[string]uint64{}
	}
	f.redispatches[id] = seq
	return nil
}

func (f *fakeJobs) put(j jobs.Job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byID[j.ID] = j
}

func newBig(f float64) *big.Int { b, _ := big.NewFloat(f).Int(nil); return b }
