package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/duties"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/poolmember"
	providerrole "github.com/gpunode/gpunode/node/provider"
	"github.com/gpunode/gpunode/node/sponsored"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/validator"
	"github.com/gpunode/gpunode/runtime"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startDevchain(t *testing.T) devchain.Deployment {
	return devchain.StartTest(t, 20*time.Millisecond)
}

// memContent is IPFS as the tests need it: content-addressed blobs and published trees
// shared by every node of the test.
type memContent struct {
	mu    sync.Mutex
	blobs map[string][]byte
	trees map[string]string
}

func (c *memContent) put(b []byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := sha256.Sum256(b)
	cid := "bafk" + hex.EncodeToString(sum[:16])
	c.blobs[cid] = b
	return cid
}

func (c *memContent) Get(_ context.Context, cid string, max int64) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[cid]
	if !ok || int64(len(b)) > max {
		return nil, fmt.Errorf("%s: not found", cid)
	}
	return b, nil
}

func (c *memContent) Fetch(_ context.Context, cid string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.trees[cid]; ok {
		return d, nil
	}
	return "", fmt.Errorf("%s: not found", cid)
}

func (c *memContent) Publish(_ context.Context, dir string) (string, error) {
	h, err := treehash.Sum(dir)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cid := "bafy" + h[:32]
	c.trees[cid] = dir
	return cid, nil
}

// procRuntime runs a "container" as a function of its spec.
type procRuntime struct {
	mu   sync.Mutex
	run  func(runtime.Spec) int
	done map[string]runtime.Result
}

func (r *procRuntime) Start(_ context.Context, s runtime.Spec) (runtime.Handle, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.done[s.JobID]; ok {
		return runtime.Handle{}, runtime.ErrJobExists
	}
	r.done[s.JobID] = runtime.Result{JobID: s.JobID, ExitCode: r.run(s), OutputDir: s.OutputDir}
	return runtime.Handle{JobID: s.JobID}, nil
}

func (r *procRuntime) Wait(_ context.Context, id string) (runtime.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.done[id]
	if !ok {
		return res, runtime.ErrUnknownJob
	}
	return res, nil
}

// Stop finds every job finished already: it ran in Start.
func (r *procRuntime) Stop(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.done[id]; !ok {
		return runtime.ErrUnknownJob
	}
	return nil
}

func (r *procRuntime) Recover(context.Context) ([]runtime.Handle, error) { return nil, nil }

// chainNode is one node's chain side: its market, store and job side.
type chainNode struct {
	market *market.Market
	store  *store.Store
	gate   *gate
	work   *work
	addr   common.Address
}

// nodeOpts are a test node's job side.
type nodeOpts struct {
	market func(*market.Config)
	// jobs is the machine's configuration (zero: jobs.Default()); runtime runs its jobs
	// and the validator's evaluations (nil: every container exits 0).
	jobs    jobs.Config
	runtime ContainerRuntime
	// validate turns the validator role on, judging duties by policy (nil allows all).
	validate bool
	policy   validator.DutyPolicy
	// closed leaves the gate closed: chain events pass by and offers are declined until
	// the test calls open.
	closed bool
	// poolResults makes the node a pool member whose results go to poolCoordinator.
	poolResults     poolmember.Sender
	poolCoordinator peer.ID
	// coordinator makes the node its pool's coordinator: chain postings go to the pool's
	// flow.
	coordinator *pool.Coordinator
	// admitter is the node's policy over offered jobs (nil admits everything).
	admitter jobs.Admitter
}

// newChainNode starts a node's chain side and job side; they run until the test ends,
// and stop before the test's folders are removed.
func newChainNode(t *testing.T, dep devchain.Deployment, account int, content *memContent, opts ...nodeOpts) *chainNode {
	t.Helper()
	var o nodeOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	dir := t.TempDir()
	w := market.NewWallet(filepath.Join(dir, "keystore"), true)
	addr, err := w.ImportHex(dep.Accounts[account].PrivateKey, "pw")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600)
	mcfg := market.Default()
	mcfg.Deployment = filepath.Join(dir, "dep.json")
	if err := devchain.WriteDeployment(mcfg.Deployment, dep); err != nil {
		t.Fatal(err)
	}
	mcfg.Keystore, mcfg.PasswordFile, mcfg.CursorFile = w.Dir(), filepath.Join(dir, "pw"), filepath.Join(dir, "cursor.json")
	mcfg.Confirmations, mcfg.PollInterval = 1, 20*time.Millisecond
	if o.market != nil {
		o.market(&mcfg)
	}
	cfg := Default()
	cfg.DataDir = dir
	cfg.Jobs = jobs.Default()
	if o.jobs != (jobs.Config{}) {
		cfg.Jobs = o.jobs
	}
	cfg.Validator.Enabled = o.validate
	st, err := store.Open(cfg.Layout().State())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := &chainNode{store: st, gate: &gate{}, addr: addr}
	m, err := market.New(mcfg, quietLog(), nil, n.gate.chainEvent)
	if err != nil {
		t.Fatal(err)
	}
	n.market = m
	rt := o.runtime
	if rt == nil {
		rt = &procRuntime{done: map[string]runtime.Result{}, run: func(runtime.Spec) int { return 0 }}
	}
	n.work = openWork(cfg, workDeps{Market: m, Store: st, Content: content, Runtime: rt, DutyPolicy: o.policy,
		PeerID: fmt.Sprintf("12D3KooWtestpeer%d", account), RetryGap: 50 * time.Millisecond,
		PoolResults: o.poolResults, PoolCoordinator: o.poolCoordinator, Coordinator: o.coordinator, Admitter: o.admitter}, quietLog())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; n.work.duties.Wait(); n.work.ledger.Wait() })
	if !o.closed {
		n.open(t)
	}
	return n
}

// open opens the node's gate and runs its job machine, which stops before the node's
// chain side does.
func (n *chainNode) open(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { n.work.machine.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if n.work.coord != nil {
		cdone := make(chan struct{})
		go func() { n.work.coord.Run(ctx); close(cdone) }()
		t.Cleanup(func() { cancel(); <-cdone })
	}
	n.gate.open(n.work)
}

// testManifest puts a valid job manifest into content and returns its CID and sha256.
func testManifest(content *memContent) (string, [32]byte) {
	image := "reg.local/t@sha256:" + fmt.Sprintf("%064d", 1)
	manifest := []byte(`{"version":1,"image":"` + image + `","command":["/train"],"resources":{"gpus":0},
		"output":{"path":"/out","max_bytes":1048576},"max_duration":"30m","network":{"mode":"none"},
		"evaluation":{"image":"` + image + `","command":["/eval"],"metric":"accuracy","threshold":0.9}}`)
	return content.put(manifest), sha256.Sum256(manifest)
}

// waitJobState waits until the machine's job id reaches want, and fails at once if it
// ends in another state.
func waitJobState(t *testing.T, machine *jobs.Machine, id string, want jobs.State, limit time.Duration) {
	t.Helper()
	var j jobs.Job
	var err error
	testkit.Eventually(t, limit, func() bool {
		j, err = machine.Get(id)
		if err == nil && j.State != want && j.State.Terminal() {
			t.Fatalf("job %s ended %s: %s", id, j.State, j.Reason)
		}
		return err == nil && j.State == want
	}, "job %s not %s: %v", id, want, testkit.Lazy(func() string { return fmt.Sprintf("%+v %v", j, err) }))
}

// TestChainJobPaid runs a job through the real contract on a dev chain: a provider node
// takes a posted job, runs and submits it; two validator nodes evaluate and attest; the
// job completes, and the provider's and validators' credits are exactly the contract's.
func TestChainJobPaid(t *testing.T) {
	dep := startDevchain(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}

	jcfg := jobs.Default()
	jcfg.OutcomePoll = jobs.Default().RetryBase
	trainer := &procRuntime{done: map[string]runtime.Result{}, run: func(s runtime.Spec) int {
		os.WriteFile(filepath.Join(s.OutputDir, "model.json"), []byte(`{"w":[1,2,3]}`), 0o644)
		return 0
	}}
	provider := newChainNode(t, dep, 1, content, nodeOpts{jobs: jcfg, runtime: trainer})
	if err := provider.work.registrar.Register(ctx); err != nil {
		t.Fatal(err)
	}
	machine := provider.work.machine
	// The first validator withdraws its fees by itself as soon as they are credited.
	fee := big.NewInt(10_000)
	var validators []*chainNode
	for i := range 2 {
		o := nodeOpts{validate: true, runtime: &procRuntime{done: map[string]runtime.Result{}, run: func(s runtime.Spec) int {
			os.WriteFile(filepath.Join(s.OutputDir, validator.ResultFile), []byte(`{"version":1,"metrics":{"accuracy":0.95}}`), 0o644)
			return 0
		}}}
		if i == 0 {
			o.market = func(c *market.Config) { c.AutoWithdrawWei = fee.String() }
		}
		validators = append(validators, newChainNode(t, dep, 2+i, content, o))
	}

	manifestCID, sum := testManifest(content)

	// The sponsor is a node too: it posts through its market, reward and fees escrowed.
	sponsor := newChainNode(t, dep, 4, content)
	reward := big.NewInt(1_000_000)
	p := bindings.JobMarketJobParams{
		Reward: reward, ValidatorFee: fee, Bond: new(big.Int), Threshold: 900000, Quorum: 2,
		Validators: []common.Address{validators[0].addr, validators[1].addr},
		AcceptBy:   big.NewInt(time.Now().Add(time.Hour).Unix()), RunWindow: 3600, AttestWindow: 3600,
		ManifestCID: manifestCID, ManifestHash: sum,
	}
	if _, _, err := sponsor.market.Result(ctx, big.NewInt(1)); !errors.Is(err, market.ErrNoResult) {
		t.Errorf("result before any submission: %v", err)
	}
	id, _, err := sponsor.market.PostJob(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if id.Cmp(big.NewInt(1)) != 0 {
		t.Fatalf("posted job %s, want 1", id)
	}

	waitJobState(t, machine, "1", jobs.Paid, 60*time.Second)
	credit := func(a common.Address) *big.Int {
		c, err := provider.market.Credit(ctx, common.Address{}, a)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if got := credit(provider.addr); got.Cmp(reward) != 0 {
		t.Errorf("provider credit %s, want the reward %s", got, reward)
	}
	if got := credit(validators[1].addr); got.Cmp(fee) != 0 {
		t.Errorf("validator 1 credit %s, want its fee %s", got, fee)
	}
	for i, v := range validators {
		if d, err := v.store.Get(duties.Key("1")); err != nil || d.State != duties.Done {
			t.Errorf("validator %d duty: %+v %v", i, d, err)
		}
	}
	// Each node books what it was credited and withdrew, from the chain's events.
	for _, c := range []struct {
		name                         string
		n                            *chainNode
		rewards, fees, withdrawn, on string
	}{
		{"provider", provider, reward.String(), "0", "0", reward.String()},
		{"validator 0 (auto-withdraw)", validators[0], "0", fee.String(), fee.String(), "0"},
		{"validator 1", validators[1], "0", fee.String(), "0", fee.String()},
	} {
		var e *api.Earnings
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			e = c.n.work.ledger.Status(ctx)
			if e.RewardsWei == c.rewards && e.FeesWei == c.fees && e.WithdrawnWei == c.withdrawn && e.CreditWei == c.on {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s earnings %+v; want rewards %s, fees %s, withdrawn %s, credit %s", c.name, e, c.rewards, c.fees, c.withdrawn, c.on)
			}
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(provider.work.ledger.Collector())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(ledgerHelp+`gpunode_earned_wei_total{kind="fee",token="ETH"} 0
gpunode_earned_wei_total{kind="reward",token="ETH"} 1e+06
# HELP gpunode_withdrawn_wei_total Withdrawn by the node from the JobMarket, in the smallest unit of token ("ETH": wei; else the ERC-20 contract's address).
# TYPE gpunode_withdrawn_wei_total counter
gpunode_withdrawn_wei_total{token="ETH"} 0
`)); err != nil {
		t.Error(err)
	}
	// The sponsor reads the result from the chain; the checkpoint hashes to it.
	cid, hash, err := sponsor.market.Result(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := machine.Get("1")
	if cid != j.OutputCID || hex.EncodeToString(hash[:]) != j.OutputHash {
		t.Errorf("result on chain %s %x, provider submitted %s %s", cid, hash, j.OutputCID, j.OutputHash)
	}
	if got, _ := treehash.Sum(content.trees[cid]); got != hex.EncodeToString(hash[:]) {
		t.Errorf("fetched checkpoint hashes to %s, chain says %x", got, hash)
	}
	// A repeated accept or submit by the provider does nothing.
	pc := providerrole.NewChain(provider.market, jobs.Records{Store: provider.store}, quietLog())
	if tx, err := pc.Accept(ctx, "1"); err != nil || tx != "already accepted" {
		t.Errorf("repeat accept: %q %v", tx, err)
	}
	if tx, err := pc.Submit(ctx, "1", "x", "00"); err != nil || tx != "already submitted" {
		t.Errorf("repeat submit: %q %v", tx, err)
	}
	if _, err := pc.Accept(ctx, "not-a-number"); !errors.Is(err, jobs.ErrPermanent) {
		t.Errorf("bad id: %v", err)
	}
}

func dialClient(t *testing.T, dep devchain.Deployment) *market.Client {
	t.Helper()
	c, err := market.Dial(market.ClientConfig{URL: dep.RPCURL}, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestOfferedJob: a job reaches a provider only as a direct offer (its node missed the
// JobPosted event); the node reads the job from the chain, evaluates it and takes it, and
// answers the offer with that. Offers that do not name a posted job are declined.
func TestOfferedJob(t *testing.T) {
	dep := startDevchain(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}
	provider := newChainNode(t, dep, 1, content, nodeOpts{closed: true})
	sponsor := newChainNode(t, dep, 4, content)
	if err := provider.work.registrar.Register(ctx); err != nil {
		t.Fatal(err)
	}
	manifestCID, sum := testManifest(content)
	_, r, err := sponsor.market.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: big.NewInt(1000), ValidatorFee: new(big.Int), Bond: new(big.Int), Threshold: 900000, Quorum: 1,
		Validators: []common.Address{dep.Accounts[2].Address}, AcceptBy: big.NewInt(time.Now().Add(time.Hour).Unix()),
		RunWindow: 3600, AttestWindow: 3600, ManifestCID: manifestCID, ManifestHash: sum,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The provider's watcher goes past the job while no machine listens.
	for deadline := time.Now().Add(30 * time.Second); provider.market.Status().HandledBlock < r.BlockNumber.Uint64(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the provider's watcher did not reach the job's block")
		}
	}
	offer := p2p.Offer{Version: p2p.OfferVersion, ID: "o1", ManifestCID: manifestCID, PricePerGPUHour: "0", MaxDurationSeconds: 3600, ExpiresAt: time.Now().Add(time.Minute).Unix()}
	if d := provider.gate.offer(ctx, "peer", offer); d.Accepted || !strings.Contains(d.Reason, "takes no jobs") {
		t.Errorf("offer before the node takes jobs: %+v", d)
	}

	provider.open(t)
	machine := provider.work.machine
	if _, err := machine.Get("1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the provider knows the job before the offer: %v", err)
	}

	for _, c := range []struct {
		name  string
		edit  func(*p2p.Offer)
		words string
	}{
		{"no job id", func(o *p2p.Offer) {}, "post the job on chain first"},
		{"unknown job", func(o *p2p.Offer) { o.JobID = "99" }, "not posted"},
		{"other manifest", func(o *p2p.Offer) { o.JobID = "1"; o.ManifestCID = content.put([]byte("{}")) }, "is not the one posted"},
	} {
		o := offer
		c.edit(&o)
		if d := provider.gate.offer(ctx, "peer", o); d.Accepted || !strings.Contains(d.Reason, c.words) {
			t.Errorf("%s: %+v, want declined saying %q", c.name, d, c.words)
		}
	}
	offer.JobID = "0x1"
	key, _, err := libp2pcrypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	researcher, _ := peer.IDFromPrivateKey(key)
	offerCtx, offerCancel := context.WithTimeout(ctx, 10*time.Second)
	d := provider.gate.offer(offerCtx, researcher, offer)
	offerCancel()
	if !d.Accepted {
		t.Fatalf("offer of a posted job that fits: %+v", d)
	}
	j, err := machine.Get("1")
	if err != nil || j.Posting.Source != "offer from "+researcher.String() || j.Posting.RewardWei != "1000" {
		t.Fatalf("offered job: %+v %v", j, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v, err := provider.market.Job(ctx, big.NewInt(1)); err == nil && v.Provider == provider.addr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the offered job was not accepted on chain")
		}
	}
	// Offered again, the node answers from what it knows.
	if d := provider.gate.offer(ctx, "peer", offer); !d.Accepted || !strings.Contains(d.Reason, "taking job 1") {
		t.Errorf("second offer: %+v", d)
	}
}

// TestSponsorReclaims: a job nobody accepts is expired by its sponsor's node once its
// accept deadline passes, and the whole escrow is credited back.
func TestSponsorReclaims(t *testing.T) {
	dep := startDevchain(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}
	sponsor := newChainNode(t, dep, 4, content)
	reward, fee := big.NewInt(1000), big.NewInt(7)
	now, err := sponsor.market.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = sponsor.market.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: reward, ValidatorFee: fee, Bond: new(big.Int), Threshold: 900000, Quorum: 1,
		Validators: []common.Address{dep.Accounts[2].Address, dep.Accounts[3].Address}, AcceptBy: big.NewInt(now.Add(5 * time.Second).Unix()),
		RunWindow: 3600, AttestWindow: 3600, ManifestCID: "bafymanifest", ManifestHash: sha256.Sum256([]byte("m")),
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		sponsor.work.sponsored.Reclaim(ctx)
		if j, err := sponsor.store.Get(sponsored.Key("1")); err == nil && j.State == sponsored.Settled {
			break
		}
		if time.Now().After(deadline) {
			j, err := sponsor.store.Get(sponsored.Key("1"))
			t.Fatalf("the sponsor's node did not reclaim the job: %+v %v", j, err)
		}
	}
	if v, err := sponsor.market.Job(ctx, big.NewInt(1)); err != nil || market.JobState(v.State) != market.StateExpired {
		t.Errorf("job on chain: %v %v, want expired", v.State, err)
	}
	want := new(big.Int).Add(reward, new(big.Int).Mul(fee, big.NewInt(2)))
	if got, _ := sponsor.market.Credit(ctx, common.Address{}, sponsor.addr); got.Cmp(want) != 0 {
		t.Errorf("sponsor credit %s, want the whole escrow %s", got, want)
	}
	// Settled jobs are left alone, and listed with how they ended.
	sponsor.work.sponsored.Reclaim(ctx)
	if list, err := sponsor.work.sponsored.List(ctx); err != nil || len(list) != 1 || list[0].State != "expired" || !strings.HasPrefix(list[0].Settlement, "refunded") {
		t.Errorf("posted jobs: %+v %v", list, err)
	}
}

// TestProviderRegistersReport: the provider registers with its benchmark report, again
// when the report changes, and keeps the registered one when a new one cannot be
// published.
func TestProviderRegistersReport(t *testing.T) {
	dep := startDevchain(t)
	ctx := t.Context()
	provider := newChainNode(t, dep, 1, &memContent{blobs: map[string][]byte{}, trees: map[string]string{}})
	var cid string
	var hash common.Hash
	var fail error
	reg := providerrole.NewRegistrar(provider.market, "12D3KooWtestpeer1", func(context.Context) (string, common.Hash, error) { return cid, hash, fail }, quietLog())
	for i, c := range []struct {
		cid  string
		hash common.Hash
		fail error
	}{
		{"", common.Hash{}, nil},                        // no benchmark yet
		{"bafyreport1", common.Hash{1}, nil},            // the first report
		{"bafyreport1", common.Hash{1}, nil},            // unchanged: nothing to do
		{"bafyreport2", common.Hash{2}, nil},            // a new benchmark
		{"", common.Hash{}, errors.New("ipfs is down")}, // keep report 2
	} {
		cid, hash, fail = c.cid, c.hash, c.fail
		err := reg.Register(ctx)
		if (err != nil) != (c.fail != nil) {
			t.Fatalf("round %d: %v", i, err)
		}
		ok, onChain, err := provider.market.Provider(ctx, provider.addr)
		want := c.hash
		if c.fail != nil {
			want = common.Hash{2}
		}
		if err != nil || !ok || onChain != want {
			t.Errorf("round %d: registered %v with report %x (%v), want %x", i, ok, onChain, err, want)
		}
		if c.fail == nil && reg.Published() != c.cid {
			t.Errorf("round %d: published report %q, want %q", i, reg.Published(), c.cid)
		}
	}
}

// TestValidatorsNoShow: validators that never attest do not hold a provider's bond: past
// the attest deadline the provider's node expires the job, gets its bond back, and the
// sponsor the reward and the unearned fees.
func TestValidatorsNoShow(t *testing.T) {
	dep := startDevchain(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}
	jcfg := jobs.Default()
	jcfg.OutcomePoll = configfile.Duration(50 * time.Millisecond)
	jcfg.MinAttestWindow = configfile.Duration(time.Second) // the validators are meant to miss it
	trainer := &procRuntime{done: map[string]runtime.Result{}, run: func(s runtime.Spec) int {
		os.WriteFile(filepath.Join(s.OutputDir, "model.json"), []byte(`{}`), 0o644)
		return 0
	}}
	provider := newChainNode(t, dep, 1, content, nodeOpts{jobs: jcfg, runtime: trainer})
	sponsor := newChainNode(t, dep, 4, content)
	if err := provider.work.registrar.Register(ctx); err != nil {
		t.Fatal(err)
	}
	machine := provider.work.machine

	manifestCID, sum := testManifest(content)
	now, err := sponsor.market.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reward, fee, bond := big.NewInt(1000), big.NewInt(10), big.NewInt(100)
	if _, _, err := sponsor.market.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: reward, ValidatorFee: fee, Bond: bond, Threshold: 900000, Quorum: 2,
		Validators: []common.Address{dep.Accounts[2].Address, dep.Accounts[3].Address}, AcceptBy: big.NewInt(now.Add(time.Hour).Unix()),
		RunWindow: 3600, AttestWindow: 5, ManifestCID: manifestCID, ManifestHash: sum,
	}); err != nil {
		t.Fatal(err)
	}
	waitJobState(t, machine, "1", jobs.Expired, 60*time.Second)
	for who, want := range map[common.Address]*big.Int{
		provider.addr: bond,
		sponsor.addr:  new(big.Int).Add(reward, new(big.Int).Mul(fee, big.NewInt(2))),
	} {
		if got, _ := provider.market.Credit(ctx, common.Address{}, who); got.Cmp(want) != 0 {
			t.Errorf("credit of %s: %s, want %s", who, got, want)
		}
	}
}
