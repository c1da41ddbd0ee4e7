package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	routedhost "github.com/libp2p/go-libp2p/p2p/host/routed"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/duties"
	"github.com/gpunode/gpunode/node/earnings"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/offers"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/pooljobs"
	"github.com/gpunode/gpunode/node/poolmember"
	"github.com/gpunode/gpunode/node/provider"
	"github.com/gpunode/gpunode/node/sponsored"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/validator"
	"github.com/gpunode/gpunode/runtime"
)

// ContainerRuntime is what the job machine and the validator need of the runtime.
type ContainerRuntime interface {
	Start(ctx context.Context, spec runtime.Spec) (runtime.Handle, error)
	Wait(ctx context.Context, jobID string) (runtime.Result, error)
	Stop(ctx context.Context, jobID string) error
	Recover(ctx context.Context) ([]runtime.Handle, error)
}

// work is the node's job-taking side: the job machine and, on the contract, the provider
// (its chain adapter and registration), the validator's duties, the ledger, the jobs the
// node posted as a researcher, and the desk answering offers. It exists when the node
// has a chain, a container runtime and content (IPFS).
type work struct {
	self      common.Address
	store     *store.Store
	machine   *jobs.Machine
	registrar *provider.Registrar
	// v2 is the node's side of JobMarketV2, nil when the chain has none.
	v2        *workV2
	duties    *duties.Judge
	ledger    *earnings.Ledger
	sponsored *sponsored.Jobs
	offers    *offers.Desk
	// pool takes the coordinator's dispatches on a pool member, which takes no chain
	// postings or offers itself; nil on other nodes.
	pool *poolmember.Accepter
	// coord is the pool coordinator's job flow: on a coordinator, the jobs posted on
	// chain go to it, not to the machine. Nil on any other node.
	coord *pooljobs.Flow
	log   *slog.Logger
	// measured and reports are the benchmark's: the first registration waits for the
	// benchmark at start, and each new report is registered at once. Nil without one.
	measured, reports <-chan struct{}
}

// workDeps are what the job side is built over.
type workDeps struct {
	Market  *market.Market
	Store   *store.Store
	Content jobs.Content
	Runtime ContainerRuntime
	// Admitter judges jobs by the policy; DutyPolicy judges validation duties by its
	// [validator] rules. Nil: everything is allowed.
	Admitter   jobs.Admitter
	DutyPolicy validator.DutyPolicy
	// GPUs are the GPUs jobs may be given, Usable whether one may be given now, Score the
	// rig's benchmark score.
	GPUs   []string
	Usable func(string) bool
	Score  func() float64
	// PeerID is registered on chain with the provider; "" when the p2p network is off.
	PeerID string
	// Report publishes the benchmark report registered with the provider; nil: none.
	Report provider.Report
	// Measured and Reports are the benchmark's (Benchmark.Measured, NewReports).
	Measured, Reports <-chan struct{}
	// RetryGap is the pause between attempts at a failed validation (0: the default).
	RetryGap time.Duration
	// Idle is the operator's idle workload, held while jobs run; nil: none.
	Idle jobs.Idler
	// Host is the node's libp2p host, where a JobMarketV2 provider answers key requests
	// and a validator asks for keys; nil when the p2p network is off.
	Host host.Host
	// Logs opens a job's container log (hashed when a failed job is given back on v2).
	Logs provider.Logs
	// PoolResults, on a pool member, hands results to the coordinator PoolCoordinator:
	// the machine's chain is then the pool's. Nil on other nodes.
	PoolResults     poolmember.Sender
	PoolCoordinator peer.ID
	// Coordinator is the pool's coordinator side, on a pool coordinator: the jobs posted
	// on chain are the pool's, dispatched to its members. Nil otherwise.
	Coordinator *pool.Coordinator
	// Booker books the coordinator's paid jobs' splits (its payouts ledger); nil: the
	// flow only logs them.
	Booker pooljobs.Booker
}

// openWork builds the node's job side, each part complete.
func openWork(cfg Config, d workDeps, log *slog.Logger) *work {
	var chain jobs.Chain = provider.NewChain(d.Market, jobs.Records{Store: d.Store}, log)
	v2, err := openWorkV2(cfg, d, log)
	if err != nil {
		log.Warn("JobMarketV2 unavailable: taking and judging v1 jobs only", "err", err)
	}
	var sealer jobs.Sealer
	if v2 != nil {
		chain = provider.Router{V1: chain, V2: v2.chain, Jobs: jobs.Records{Store: d.Store}}
		sealer = v2.keys
	}
	if d.PoolResults != nil {
		// A pool member's jobs come from its coordinator, and their results go back to it.
		chain = poolmember.NewChain(d.PoolCoordinator, d.PoolResults, d.Market, jobs.Records{Store: d.Store}, log)
	}
	machine := jobs.New(cfg.Jobs, jobs.Deps{
		RigScore:  d.Score,
		Store:     d.Store,
		Sealer:    sealer,
		Chain:     chain,
		Content:   d.Content,
		Runtime:   d.Runtime,
		Admitter:  d.Admitter,
		GPUs:      d.GPUs,
		GPUUsable: d.Usable,
		Datasets:  cfg.Datasets,
		WorkDir:   cfg.Layout().Jobs(),
		Idle:      d.Idle,
	}, log)
	var val duties.Validator
	if cfg.Validator.Enabled {
		v := validator.New(cfg.Validator, d.Store, duties.NewAttester(d.Market, d.Store), d.Content, d.Runtime, cfg.Layout().Validator(), log)
		if d.DutyPolicy != nil {
			v.SetConsent(validator.PolicyConsent(d.DutyPolicy))
		}
		if v2 != nil && v2.keySource != nil {
			v.SetSealed(v2.keySource, duties.NewCommitReveal(v2.m), d.Market.Account())
		}
		val = v
	}
	var pool *poolmember.Accepter
	if d.PoolResults != nil {
		pool = poolmember.NewAccepter(machine, d.Market, log)
	}
	var coord *pooljobs.Flow
	if d.Coordinator != nil {
		coord = openPoolJobs(cfg, d, log)
	}
	return &work{
		coord:     coord,
		pool:      pool,
		self:      d.Market.Account(),
		store:     d.Store,
		machine:   machine,
		registrar: provider.NewRegistrar(d.Market, d.PeerID, d.Report, log),
		v2:        v2,
		duties: duties.New(duties.Deps{Store: d.Store, Content: d.Content, Validator: val, Policy: d.DutyPolicy,
			RetryGap: d.RetryGap, Log: log}),
		ledger:    earnings.New(d.Market, d.Store, d.Market.Config().AutoWithdraw(), log),
		sponsored: sponsored.New(d.Market, d.Store, log),
		offers:    offers.New(d.Market, machine),
		log:       log.With("component", "jobs"),
		measured:  d.Measured,
		reports:   d.Reports,
	}
}

// openPoolJobs builds the pool coordinator's job flow: it accepts and submits with the
// node's account (the pool's), and takes the members' results.
func openPoolJobs(cfg Config, d workDeps, log *slog.Logger) *pooljobs.Flow {
	jc := cfg.Jobs
	admit := d.Admitter
	if a, ok := admit.(Admitter); ok {
		admit = poolAdmitter{Admitter: a, members: d.Coordinator.Members}
	}
	f, err := pooljobs.New(pooljobs.Config{
		HeartbeatBound:  time.Duration(cfg.Pool.HeartbeatBound),
		ManifestTimeout: time.Duration(jc.ManifestTimeout),
		FetchTimeout:    time.Duration(jc.UploadTimeout),
		OutcomePoll:     time.Duration(jc.OutcomePoll),
		MinAttestWindow: time.Duration(jc.MinAttestWindow),
		RetryBase:       time.Duration(jc.RetryBase),
		RetryMax:        time.Duration(jc.RetryMax),
		MaxAttempts:     jc.MaxAttempts,
	}, pooljobs.Deps{
		Store:    d.Store,
		Chain:    provider.NewChain(d.Market, pooljobs.Postings{Store: d.Store}, log),
		Content:  d.Content,
		Pool:     d.Coordinator,
		Admitter: admit,
		Booker:   d.Booker,
	}, log)
	if err != nil {
		// Only a misconfiguration gets here; the configuration's validation refuses it first.
		log.Error("pool coordinator: no job flow", "err", err)
		return nil
	}
	d.Coordinator.SetResultHandler(f.Result)
	return f
}

// handle is the market's event handler. Every confirmed event arrives once; acting on one
// twice is harmless anyway (the machine, the duties and the ledger ignore what they know).
func (w *work) handle(ctx context.Context, e market.Event) error {
	ev, err := market.DecodeEvent(e)
	if err != nil {
		w.log.Warn("undecodable chain event", "event", e.ID(), "err", err)
		return nil
	}
	if e.V2 {
		return w.handleV2(ctx, ev)
	}
	switch v := ev.(type) {
	case *bindings.JobMarketJobPosted:
		p := provider.Posting(v)
		switch {
		case provider.Names(v.Validators, w.self):
			return w.duties.Named(p, v.Threshold, v.ValidatorFee)
		case v.Sponsor == w.self:
			return w.sponsored.Record(p.ID) // our own job, as a researcher
		case w.coord != nil:
			return w.coord.Posted(ctx, p) // the pool's, on its coordinator
		case w.pool != nil:
			return nil // a pool member: its coordinator faces the market
		}
		return w.machine.Discover(ctx, p)
	case *bindings.JobMarketResultSubmitted:
		return w.duties.Submitted(ctx, v)
	case *bindings.JobMarketJobCompleted:
		if v.Provider == w.self {
			return w.ledger.Reward(ctx, e, v.JobId)
		}
	case *bindings.JobMarketAttested:
		if v.Validator == w.self {
			return w.ledger.Fee(ctx, e, v.JobId)
		}
	case *bindings.JobMarketWithdrawn:
		if v.Account == w.self {
			return w.ledger.Withdrawal(ctx, e, v.Token, v.Amount)
		}
	}
	return nil
}

// run drives the jobs, the validations, the registration and the reclaiming of posted
// jobs until ctx ends. The machine starts by re-attaching to containers; while the engine
// does not answer, it waits and tries again (the docker check in status says why).
func (w *work) run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		w.duties.Wait()
		w.ledger.Wait()
	}()
	if err := w.duties.Resume(ctx); err != nil {
		return fmt.Errorf("resume validations: %w", err)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		w.sponsored.Run(ctx, 30*time.Second)
	}()
	go func() {
		defer wg.Done()
		w.registrar.Run(ctx, w.measured, w.reports)
	}()
	if w.v2 != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.v2.registrar.Run(ctx, w.measured, w.reports)
		}()
	}
	if w.coord != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.coord.Run(ctx); err != nil {
				w.log.Error("pool job flow stopped", "err", err)
			}
		}()
	}
	for {
		err := w.machine.Run(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		w.log.Warn("job machine cannot start; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(15 * time.Second):
		}
	}
}

// gate hands chain events and offers to the node's job side once it is built. The
// market and the p2p network exist before it (the job side runs on both), so they are
// given the gate: until it opens — for good, on a node that takes no jobs — chain events
// pass by and offers are declined.
type gate struct{ w atomic.Pointer[work] }

func (g *gate) open(w *work) { g.w.Store(w) }

// chainEvent is the market's event handler.
func (g *gate) chainEvent(ctx context.Context, e market.Event) error {
	if w := g.w.Load(); w != nil {
		return w.handle(ctx, e)
	}
	return nil
}

// offer is the network's p2p.OfferHandler.
func (g *gate) offer(ctx context.Context, from peer.ID, o p2p.Offer) p2p.Decision {
	if w := g.w.Load(); w != nil && w.pool != nil {
		return p2p.Decision{Reason: "this rig is a pool member: it takes jobs from its pool's coordinator only"}
	} else if w != nil {
		return w.offers.Decide(ctx, from, o)
	}
	return p2p.Decision{Reason: "this node takes no jobs"}
}

// attachWork makes the node take jobs with w: its metrics, and the policy's count of
// active jobs for drain. The route table serves it (Node.backends).
func (n *Node) attachWork(w *work) {
	n.work = w
	n.attachPoolMember(w)
	n.reg.MustRegister(w.machine.Collector(), w.ledger.Collector())
	if w.coord != nil {
		n.reg.MustRegister(w.coord)
	}
	n.policy.CountRunning(w.machine.Active)
}

// workDeps are the node's parts the job side runs on, over the market m, the store st,
// the content and the runtime rt.
func (n *Node) workDeps(m *market.Market, st *store.Store, content jobs.Content, rt ContainerRuntime) workDeps {
	d := workDeps{
		Market: m, Store: st, Content: content, Runtime: rt,
		Admitter: NewAdmitter(n.policy), DutyPolicy: n.policy, Idle: n.idle,
		GPUs:   jobGPUs(n.deps.GPUs),
		Report: n.publishReport,
		Score: func() float64 {
			if n.deps.Benchmark != nil {
				if s := n.deps.Benchmark.Summary(); s != nil {
					return s.RigScore
				}
			}
			return 0
		},
	}
	if n.deps.GPUs != nil {
		d.Usable = n.deps.GPUs.Usable
	}
	if r := n.deps.Runtime; r != nil {
		d.Logs = func(ctx context.Context, id string) (io.ReadCloser, error) { return r.Logs(ctx, id, false) }
	}
	if n.deps.Network != nil {
		d.PeerID = n.deps.Network.ID().String()
		// Routed: a validator finds the provider it asks for a key through the DHT.
		d.Host = routedhost.Wrap(n.deps.Network.Host(), n.deps.Network.Routing())
	}
	if n.deps.Benchmark != nil {
		d.Measured, d.Reports = n.deps.Benchmark.Measured(), n.deps.Benchmark.NewReports()
	}
	n.poolMemberDeps(&d)
	d.Coordinator = n.poolCoordinator
	if b := n.poolBooker(); b != nil {
		d.Booker = b
	}
	return d
}
