package pooljobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
)

// The fakes beside the unit tests: the chain, IPFS and the ledger. The pool protocols
// run on real libp2p hosts on loopback.

const image = "registry.local/trainer@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func manifestJSON(mut func(map[string]any)) []byte {
	m := map[string]any{
		"version":      1,
		"image":        image,
		"command":      []string{"/train"},
		"resources":    map[string]any{"gpus": 1},
		"output":       map[string]any{"path": "/out", "max_bytes": 1 << 20},
		"max_duration": "1h",
		"network":      map[string]any{"mode": "none"},
		"evaluation":   map[string]any{"image": image, "command": []string{"/eval"}, "metric": "accuracy", "threshold": 0.9},
	}
	if mut != nil {
		mut(m)
	}
	b, _ := json.Marshal(m)
	return b
}

// fakeChain is the pool's chain adapter: Accept and Submit are idempotent as
// provider.Chain's are, and every call is counted.
type fakeChain struct {
	mu       sync.Mutex
	accepts  int
	submits  []string // cid|hash of each Submit call
	abandons []string // reasons
	outcome  jobs.Outcome
	taken    bool
}

func (c *fakeChain) Accept(_ context.Context, id string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken {
		return "", errors.New("execution reverted: job not open")
	}
	c.accepts++
	return "0xaccept" + id, nil
}

func (c *fakeChain) Submit(_ context.Context, id, cid, hash string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.submits = append(c.submits, cid+"|"+hash)
	return "0xsubmit" + id, nil
}

func (c *fakeChain) Abandon(_ context.Context, _ string, reason string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abandons = append(c.abandons, reason)
	return "expired on chain: the sponsor is refunded", nil
}

func (c *fakeChain) Outcome(context.Context, string) (jobs.Outcome, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken {
		return jobs.OutcomeTaken, nil
	}
	if c.outcome == "" {
		return jobs.OutcomePending, nil
	}
	return c.outcome, nil
}

func (c *fakeChain) setOutcome(o jobs.Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outcome = o
}

func (c *fakeChain) counts() (accepts int, submits []string, abandons []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepts, append([]string(nil), c.submits...), append([]string(nil), c.abandons...)
}

// fakeContent serves manifests by CID, and outputs as local directories.
type fakeContent struct {
	mu      sync.Mutex
	files   map[string][]byte
	outputs map[string]string
}

func newContent() *fakeContent {
	return &fakeContent{files: map[string][]byte{}, outputs: map[string]string{}}
}

func (c *fakeContent) Get(_ context.Context, cid string, max int64) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.files[cid]
	if !ok {
		return nil, fmt.Errorf("cid %s not found", cid)
	}
	if int64(len(b)) > max {
		return nil, errors.New("too large")
	}
	return b, nil
}

func (c *fakeContent) Fetch(_ context.Context, cid string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.outputs[cid]
	if !ok {
		return "", fmt.Errorf("cid %s not found", cid)
	}
	return d, nil
}

// output publishes a checkpoint directory under cid and returns its tree hash.
func (c *fakeContent) output(t *testing.T, cid, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.pt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := treehash.Sum(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.outputs[cid] = dir
	c.mu.Unlock()
	return h
}

// booker records the splits booked.
type booker struct {
	mu    sync.Mutex
	jobs  []string
	works [][]pool.Work
	wei   []*big.Int
}

func (b *booker) Book(_ context.Context, jobID string, reward *big.Int, w []pool.Work) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jobs, b.works, b.wei = append(b.jobs, jobID), append(b.works, w), append(b.wei, reward)
	return nil
}

func (b *booker) booked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.jobs)
}

type node struct {
	h   host.Host
	key crypto.PrivKey
}

func newNode(t *testing.T) node {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return node{h, key}
}

// member is a pool member rig: real pool.Member on its own host, whose inventory and
// answers the test controls. It does not run anything: the test sends its results.
type member struct {
	t       *testing.T
	n       node
	m       *pool.Member
	account common.Address
	score   float64

	mu      sync.Mutex
	free    int
	refuse  string
	hideJob bool // its heartbeats do not list the jobs it took
	// datasets are the dataset tags its heartbeats report; asked counts the dispatches
	// offered to it, taken or refused.
	datasets []string
	asked    int
	took     []pool.Dispatch
	cancels  []pool.Cancel
	// ended are the jobs it no longer runs, as a real member: it handed a result back,
	// or was told to stop. extra are jobs its heartbeats list besides those it took.
	ended map[string]bool
	extra []string
	// noCancels makes it refuse every cancel (its machine is not up yet); refused counts
	// the cancels it refused.
	noCancels bool
	refused   int
	stop      context.CancelFunc
	stopped   chan struct{}
}

func (m *member) inventory() pool.Heartbeat {
	m.mu.Lock()
	defer m.mu.Unlock()
	hb := pool.Heartbeat{Account: m.account, GPUs: 2, FreeGPUs: m.free, GPUModel: "NVIDIA A100", Score: m.score, Admission: "active",
		Datasets: m.datasets}
	if !m.hideJob {
		for _, d := range m.took {
			if !m.ended[d.JobID] {
				hb.Running = append(hb.Running, d.JobID)
			}
		}
	}
	hb.Running = append(hb.Running, m.extra...)
	return hb
}

func (m *member) accept(_ context.Context, d pool.Dispatch) (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked++
	if m.refuse != "" {
		return false, m.refuse
	}
	m.took = append(m.took, d)
	return true, ""
}

func (m *member) cancel(_ context.Context, c pool.Cancel) (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.noCancels {
		m.refused++
		return false, "this member takes no cancels yet"
	}
	m.cancels = append(m.cancels, c)
	m.end(c.JobID)
	return true, ""
}

// end makes its heartbeats stop listing job id; m.mu held.
func (m *member) end(id string) {
	if m.ended == nil {
		m.ended = map[string]bool{}
	}
	m.ended[id] = true
	m.extra = slices.DeleteFunc(m.extra, func(x string) bool { return x == id })
}

// cancelled is the reason of the cancels of job id it got, "" if none.
func (m *member) cancelled(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, c := range m.cancels {
		if c.JobID == id {
			out = append(out, c.Reason)
		}
	}
	return strings.Join(out, "; ")
}

func (m *member) offers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.asked
}

func (m *member) dispatches() []pool.Dispatch {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]pool.Dispatch(nil), m.took...)
}

// beat sends heartbeats every 50 ms until kill.
func (m *member) beat(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	m.stop, m.stopped = cancel, make(chan struct{})
	go func() {
		defer close(m.stopped)
		m.m.Run(ctx, 50*time.Millisecond)
	}()
	m.t.Cleanup(m.kill)
}

// kill stops its heartbeats, as SIGKILL would.
func (m *member) kill() {
	if m.stop != nil {
		m.stop()
		<-m.stopped
		m.stop = nil
	}
}

// send reports a result for the job's dispatch to this member.
func (m *member) send(r pool.Result) (pool.Ack, error) {
	for _, d := range m.dispatches() {
		if d.JobID == r.JobID && r.DispatchSeq == 0 {
			r.DispatchSeq = d.Seq
		}
	}
	m.mu.Lock()
	m.end(r.JobID)
	m.mu.Unlock()
	return m.m.SendResult(m.t.Context(), r)
}

// pool is a coordinator and its members on loopback.
type testPool struct {
	t       *testing.T
	co      node
	c       *pool.Coordinator
	members []*member
	bound   time.Duration
}

func newPool(t *testing.T, bound time.Duration, n int) *testPool {
	t.Helper()
	co := newNode(t)
	c, err := pool.NewCoordinator(co.h, co.key, bound, testkit.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPool{t: t, co: co, c: c, bound: bound}
	for i := range n {
		p.add(2, 90+float64(i))
	}
	return p
}

func (p *testPool) add(free int, score float64) *member {
	t := p.t
	n := newNode(t)
	if err := n.h.Connect(t.Context(), peer.AddrInfo{ID: p.co.h.ID(), Addrs: p.co.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	m := &member{t: t, n: n, free: free, score: score, account: common.BytesToAddress([]byte{0xa0, byte(len(p.members) + 1)})}
	pm, err := pool.NewMember(n.h, n.key, p.co.h.ID(), m.inventory, m.accept, testkit.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.m = pm
	pm.SetCancelHandler(m.cancel)
	m.beat(t.Context())
	p.members = append(p.members, m)
	testkit.Eventually(t, 10*time.Second, func() bool {
		for _, mi := range p.c.Members() {
			if mi.Member == n.h.ID().String() && mi.Alive {
				return true
			}
		}
		return false
	}, "member %d not alive at the coordinator", len(p.members))
	return m
}

// rig is the coordinator's flow over the fakes, restartable on its store.
type rig struct {
	t       *testing.T
	dir     string
	pool    *testPool
	chain   *fakeChain
	content *fakeContent
	books   *booker
	store   *store.Store
	flow    *Flow
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	admit   jobs.Admitter
}

func newRig(t *testing.T, p *testPool) *rig {
	r := &rig{t: t, dir: t.TempDir(), pool: p, chain: &fakeChain{}, content: newContent(), books: &booker{}}
	r.start()
	return r
}

func (r *rig) start() {
	t := r.t
	st, err := store.Open(filepath.Join(r.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	r.store, r.reg = st, prometheus.NewRegistry()
	f, err := New(Config{HeartbeatBound: r.pool.bound, Tick: 20 * time.Millisecond, OutcomePoll: 20 * time.Millisecond,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, MaxAttempts: 3},
		Deps{Store: st, Chain: r.chain, Content: r.content, Pool: r.pool.c, Booker: r.books, Admitter: r.admit, Registerer: r.reg},
		testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	r.flow = f
	r.pool.c.SetResultHandler(f.Result)
	ctx, cancel := context.WithCancel(t.Context())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- f.Run(ctx) }()
	t.Cleanup(r.stop)
}

// stop is the coordinator going away: the flow stops, its store is closed.
func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.pool.c.SetResultHandler(nil)
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Error(err)
	}
	r.cancel = nil
	r.store.Close()
}

func (r *rig) restart() {
	r.stop()
	r.start()
}

// post puts a job on the "chain" and hands it to the flow.
func (r *rig) post(id string, man []byte) jobs.Posting {
	cid := "bafkreimanifest" + id
	r.content.mu.Lock()
	r.content.files[cid] = man
	r.content.mu.Unlock()
	sum := sha256.Sum256(man)
	p := jobs.Posting{ID: id, Sponsor: "0x00000000000000000000000000000000000000b0", ManifestCID: cid, ManifestHash: hex.EncodeToString(sum[:]),
		RewardWei: "1000000000000000000", Source: "chain", Validators: []string{"0x00000000000000000000000000000000000000c1"},
		Threshold: 900000, Quorum: 1, RunWindowSeconds: 3600, AttestWindowSeconds: 3600}
	if err := r.flow.Posted(r.t.Context(), p); err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *rig) job(id string) Job {
	j, err := r.flow.Get(id)
	if err != nil {
		return Job{State: "absent: " + State(err.Error())}
	}
	return j
}

// waitState waits until job id is in state s.
func (r *rig) waitState(id string, s State) Job {
	r.t.Helper()
	testkit.Eventually(r.t, 20*time.Second, func() bool { return r.job(id).State == s }, "job %s: want %s, is %s (%s)", id, s,
		testkit.Lazy(func() string { return string(r.job(id).State) }), testkit.Lazy(func() string { return r.job(id).Reason }))
	return r.job(id)
}

// holder is the member the job's rank 0 is assigned to now.
func (r *rig) holder(id string) *member {
	r.t.Helper()
	var m *member
	testkit.Eventually(r.t, 20*time.Second, func() bool {
		j := r.job(id)
		if j.State != Running || len(j.Assignments) == 0 {
			return false
		}
		for _, x := range r.pool.members {
			if x.n.h.ID().String() == j.Assignments[0].Member {
				m = x
				return true
			}
		}
		return false
	}, "job %s never ran on a member: %s", id, testkit.Lazy(func() string { return string(r.job(id).State) + " " + r.job(id).Reason }))
	return m
}

func (r *rig) history(id string) string {
	h, err := r.store.History(StoreID(id))
	if err != nil {
		return err.Error()
	}
	var s []string
	for _, tr := range h {
		s = append(s, tr.To+": "+tr.Note)
	}
	sort.Strings(s)
	return strings.Join(s, "\n")
}
