// Package node is the gpunode daemon: it wires the subsystems together, runs them under
// one errgroup, reports readiness and liveness to systemd, and serves the node's status.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gpunode/gpunode/node/capcheck"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/apiserver"
	"github.com/gpunode/gpunode/node/ipfs"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/metrics"
	"github.com/gpunode/gpunode/node/policy"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/poolmember"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/ui"
	"github.com/gpunode/gpunode/runtime/docker"
	"github.com/gpunode/gpunode/runtime/gpu"
	"github.com/gpunode/gpunode/runtime/idle"
	"github.com/gpunode/gpunode/version"
)

// GPUs is what the node needs of the GPU inventory.
type GPUs interface {
	metrics.GPUs
	// Allocatable lists the UUIDs jobs may be given now (GPUs in service, MIG instances).
	Allocatable() []string
	// Usable tells whether the GPU or MIG instance may be given to a job now.
	Usable(uuid string) bool
	Driver() string
	CUDA() string
	WatchHealth(ctx context.Context, log *slog.Logger) error
	Close() error
}

// Runtime is what the node needs of the container runtime as a service.
type Runtime interface {
	Ping(ctx context.Context) error
	PreflightGPU(ctx context.Context, gpus []string) error
	Run(ctx context.Context) error
	// GPUStack is the GPU software stack the engine runs containers with, each part
	// checked against its minimum version.
	GPUStack() []docker.Component
	Close() error
	// The control API serves the image cache and job logs.
	RuntimeBackend
	// The idle workload runs its containers on it.
	idle.Runtime
}

// Market is what the node needs of the chain side.
type Market interface {
	Run(ctx context.Context) error
	Collector() prometheus.Collector
	// The control API serves the chain side (Status included).
	MarketBackend
}

// Deps are the adapters a node runs on. Open builds the real ones; tests pass their own.
type Deps struct {
	// GPUs is nil on a CPU-only node; GPUNote then says why.
	GPUs    GPUs
	GPUNote string
	// GPUProblem is why a rig with a driver runs CPU-only, with the fix; a failed check.
	GPUProblem error
	// Runtime runs job containers; nil on a node that takes no jobs.
	Runtime Runtime
	// Benchmark measures the rig and keeps its signed report; nil to leave it out.
	Benchmark Benchmark
	// Market is the chain side; nil when no chain is configured.
	Market Market
	// Network is the node's libp2p presence; nil when [p2p] is off or failed to start.
	Network Network
}

// Node is a running gpunode daemon.
type Node struct {
	cfg      Config
	log      *slog.Logger
	deps     Deps
	started  time.Time
	hostname string
	state    atomic.Value // string
	reg      *prometheus.Registry
	checks   checks
	policy   *policy.Holder
	work     *work
	ipfs     *ipfs.Node
	// poolTopic serves the pool's policy topic; nil outside a pool or off the network.
	poolTopic func(ctx context.Context) error
	// idle is the operator's idle workload, inert without an idle image.
	idle *idle.Workload
	// challenges answers and poses capacity challenges; nil off the network.
	challenges *capcheck.Service
	// poolCoordinator lists the pool's members on a coordinator; poolMember reports to
	// the coordinator on a member. Both nil outside a pool.
	poolCoordinator *pool.Coordinator
	poolMember      *pool.Member
	// poolAccepter takes a member's dispatches once its job side exists (attachWork).
	poolAccepter atomic.Pointer[poolmember.Accepter]
	// poolPay is the pool's payouts: the coordinator's ledger, contract and publisher, or
	// a member's view of what it is owed. Nil outside a pool or without a chain.
	poolPay *poolPayouts
}

// Open builds a node's real adapters from cfg. A machine without the NVIDIA driver is not
// an error: the node logs one line saying so and runs CPU-only.
func Open(cfg Config, log *slog.Logger) (*Node, error) {
	cfg = cfg.Resolved()
	var deps Deps
	inv, err := gpu.Open(cfg.GPU, log)
	if err := useGPUs(&deps, inv, err, log); err != nil {
		return nil, err
	}
	if inv != nil && inv.Simulated() {
		log.Warn("GPUs are SIMULATED: not real hardware", "simulation", cfg.GPU.Simulate, "gpus", len(inv.Devices()))
	}
	rt, err := docker.New(cfg.Runtime, log)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	deps.Runtime = rt
	bench, harnessBackend, err := openBenchmark(cfg, log, deps.GPUs, rt)
	if err != nil {
		return nil, err
	}
	deps.Benchmark = bench
	st, err := store.Open(cfg.Layout().State())
	if err != nil {
		return nil, err
	}
	// The market and the network exist before the job side, which runs on both: they
	// hand it chain events and offers through the gate once it is built.
	var g gate
	mk, err := market.New(cfg.Market, log, nil, g.chainEvent)
	switch {
	case errors.Is(err, market.ErrNoChain):
		log.Warn("no chain: the node takes no jobs", "err", err)
	case err != nil:
		st.Close()
		return nil, fmt.Errorf("market: %w", err)
	default:
		deps.Market = mk
	}
	n, err := New(cfg, log, deps)
	if err != nil {
		st.Close()
		return nil, err
	}
	if cfg.P2P.Enabled {
		// A node whose network cannot start still runs; status says why. Offers are
		// declined until the node takes jobs.
		if err := n.openNetwork(context.Background(), mk, g.offer); err != nil {
			n.setCheck("p2p", fmt.Errorf("not on the network: %w", err))
		} else {
			n.setCheck("p2p", nil)
			if err := n.openChallenges(harnessBackend); err != nil {
				n.setCheck("challenge", err)
			}
		}
	}
	if err := n.openContent(); err != nil {
		n.setCheck("ipfs", err)
	}
	if mk == nil || n.ipfs == nil {
		st.Close()
		log.Warn("the node takes no jobs: it needs a chain ([market]) and IPFS on the p2p network ([p2p], [ipfs])")
		return n, nil
	}
	if err := n.openPoolPay(mk, st, n.p2pHost()); err != nil {
		n.setCheck("pool_payouts", err)
	}
	w := openWork(n.cfg, n.workDeps(mk, st, n.ipfs.Content(), rt), log)
	n.attachWork(w)
	g.open(w)
	if harnessBackend != nil {
		// The benchmark measures only GPUs no job holds, and holds them meanwhile.
		harnessBackend.SetReserver(allocatorGPUs{w.machine})
	}
	// The benchmark at start waits until no job runs: beside one it would slow the job
	// and sign a low score (on the CPU backend too).
	bench.SetIdle(func() bool { return w.machine.Active() == 0 })
	return n, nil
}

// useGPUs puts the outcome of opening the GPU inventory into deps. No driver, or a driver
// NVML cannot use, leaves the node CPU-only: the note says why, and an unusable driver is
// a failed check that says how to fix it. Only an unexpected error is returned.
func useGPUs(deps *Deps, inv *gpu.Inventory, err error, log *slog.Logger) error {
	switch {
	case errors.Is(err, gpu.ErrNoDriver):
		log.Warn(err.Error())
		deps.GPUNote = err.Error()
		return nil
	case errors.Is(err, gpu.ErrUnavailable):
		log.Error("gpus unusable: running CPU-only", "err", err)
		deps.GPUNote = err.Error()
		deps.GPUProblem = err
		return nil
	case err != nil:
		return fmt.Errorf("gpus: %w", err)
	}
	deps.GPUs = inv
	if !inv.Simulated() {
		log.Info("gpus found", "gpus", len(inv.Devices()), "driver", inv.Driver(), "cuda", inv.CUDA())
	}
	for _, d := range inv.Devices() {
		if !d.Healthy {
			log.Error("gpu out of service: the node runs on the others", "gpu", d.Index, "gpu_uuid", d.UUID, "problem", d.Problem)
		}
		if d.MIG && len(d.Instances) == 0 {
			log.Warn("gpu has MIG on but no MIG instances: no job can use it", "gpu", d.Index, "gpu_uuid", d.UUID)
		}
	}
	return nil
}

// New returns a node over the given adapters.
func New(cfg Config, log *slog.Logger, deps Deps) (*Node, error) {
	cfg = cfg.Resolved()
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	n := &Node{
		cfg:     cfg,
		log:     log,
		deps:    deps,
		started: time.Now(),
	}
	n.state.Store("starting")
	if deps.GPUProblem != nil {
		n.setCheck("nvml", deps.GPUProblem)
	}
	n.hostname = cfg.Metrics.Hostname
	if n.hostname == "" {
		n.hostname, _ = os.Hostname()
	}
	n.reg = metrics.NewRegistry(n.started)
	if deps.GPUs != nil {
		n.reg.MustRegister(metrics.NewGPUCollector(deps.GPUs, n.hostname, log.With("component", "metrics")))
	}
	pol, err := policy.New(cfg.Policy, log, n.reg)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	pol.ObserveNode(nodeState(deps.GPUs, n.verifiedTFLOPS))
	n.policy = pol
	if deps.Benchmark != nil {
		if err := deps.Benchmark.Register(n.reg); err != nil {
			return nil, fmt.Errorf("benchmark metrics: %w", err)
		}
	}
	if deps.Market != nil {
		n.reg.MustRegister(deps.Market.Collector())
	}
	if err := n.openIdle(); err != nil {
		return nil, err
	}
	return n, nil
}

// Registry is the node's metrics registry, for subsystems to register their collectors.
func (n *Node) Registry() prometheus.Registerer { return n.reg }

// Policy is the node's workload policy and admission state (drain, cordon).
func (n *Node) Policy() *policy.Holder { return n.policy }

// Run runs the node until ctx is cancelled. Cancellation is a clean stop, not an error.
// Each value from reload makes the node re-read its policy files (main sends one on
// SIGHUP); nil never reloads.
func (n *Node) Run(ctx context.Context, reload <-chan struct{}) error {
	defer n.close()
	srv, err := apiserver.New(n.cfg.API, n.log, Routes(n.backends(), n.log))
	if err != nil {
		return err
	}
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, ln) })
	g.Go(func() error { return metrics.Serve(gctx, n.cfg.Metrics, n.reg, n.log.With("component", "metrics")) })
	g.Go(func() error { return n.serveUI(gctx, srv.Handler()) })
	if n.deps.GPUs != nil {
		g.Go(func() error { return n.deps.GPUs.WatchHealth(gctx, n.log.With("component", "gpu")) })
	}
	if n.deps.Runtime != nil {
		g.Go(func() error { n.runRuntime(gctx); return nil })
	}
	if n.deps.Network != nil {
		g.Go(func() error { return n.deps.Network.Run(gctx) })
	}
	g.Go(func() error { return n.policy.Run(gctx, reload) })
	if n.deps.Benchmark != nil {
		g.Go(func() error { return n.deps.Benchmark.Run(gctx) })
	}
	if n.deps.Market != nil {
		g.Go(func() error { return n.deps.Market.Run(gctx) })
	}
	if n.work != nil {
		g.Go(func() error { return n.work.run(gctx) })
		// Finished jobs' folders and the inputs they fetched go after jobs.retention.
		var inputs jobs.InputSweeper
		if n.ipfs != nil {
			inputs = n.ipfs
		}
		g.Go(func() error { n.work.machine.Retain(gctx, inputs); return nil })
	}
	if n.ipfs != nil {
		g.Go(func() error { return n.ipfs.Run(gctx) })
	}
	if n.poolTopic != nil {
		g.Go(func() error { return n.poolTopic(gctx) })
	}
	g.Go(func() error { return n.idle.Run(gctx) })
	g.Go(func() error { return n.runPool(gctx) })
	if n.poolPay != nil {
		g.Go(func() error { return n.poolPay.run(gctx) })
	}
	g.Go(func() error { return n.supervise(gctx) })
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// supervise tells systemd the node is ready, pings its watchdog while the node is
// healthy, and says STOPPING when the node shuts down.
func (n *Node) supervise(ctx context.Context) error {
	n.state.Store("running")
	n.notify(daemon.SdNotifyReady)
	n.log.Info("node running", "version", version.Get(), "data_dir", n.cfg.DataDir)
	var tick <-chan time.Time
	if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
		t := time.NewTicker(interval / 3)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			n.state.Store("stopping")
			n.notify(daemon.SdNotifyStopping)
			n.log.Info("node stopping")
			return nil
		case <-tick:
			n.notify(daemon.SdNotifyWatchdog)
		}
	}
}

func (n *Node) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("systemd notify failed", "state", state, "err", err)
	}
}

// runRuntime keeps the container runtime going: while the engine does not answer, the
// node says so (status, log) and asks again; once it answers, the runtime re-attaches to
// its jobs and runs until the node stops or the engine goes away.
func (n *Node) runRuntime(ctx context.Context) {
	const retry = 15 * time.Second
	for ctx.Err() == nil {
		err := n.deps.Runtime.Ping(ctx)
		if err == nil {
			n.setCheck("docker", nil)
			n.preflightGPUs(ctx)
			err = n.deps.Runtime.Run(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		n.setCheck("docker", fmt.Errorf("jobs cannot run: %w", err))
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// preflightGPUs checks that the engine can attach the rig's real GPUs (the NVIDIA
// Container Toolkit), so a rig that cannot run GPU jobs says so before the first one.
func (n *Node) preflightGPUs(ctx context.Context) {
	g := n.deps.GPUs
	if g == nil || g.Simulated() {
		return
	}
	alloc := g.Allocatable()
	if len(alloc) == 0 {
		return
	}
	n.setCheck("nvidia-container-toolkit", n.deps.Runtime.PreflightGPU(ctx, alloc[:1]))
}

// serveUI serves the dashboard until ctx ends. The dashboard is a convenience: when it
// cannot be served (its port taken, its token file unreadable) the node says so in its
// checks and goes on taking jobs.
func (n *Node) serveUI(ctx context.Context, backend http.Handler) error {
	if n.cfg.UI.Listen == "" {
		<-ctx.Done()
		return nil
	}
	n.setCheck("dashboard", nil)
	if err := ui.Serve(ctx, n.cfg.UI, backend, n.log.With("component", "ui")); err != nil {
		n.setCheck("dashboard", fmt.Errorf("%w: set ui.listen to a free address, or \"\" to turn the dashboard off", err))
		<-ctx.Done()
	}
	return nil
}

// setCheck records a prerequisite's state, logging when it changes.
func (n *Node) setCheck(name string, err error) {
	if !n.checks.set(name, err) {
		return
	}
	if err != nil {
		n.log.Error("prerequisite missing", "check", name, "err", err)
	} else {
		n.log.Info("prerequisite ok", "check", name)
	}
}

// jobGPUs are the GPUs the job machine may hand out: those in service at start (MIG
// instances in place of MIG-enabled GPUs); none on a simulated rig, whose GPUs no
// container can use.
func jobGPUs(g GPUs) []string {
	if g == nil || g.Simulated() {
		return nil
	}
	return g.Allocatable()
}

func (n *Node) close() {
	if n.ipfs != nil {
		if err := n.ipfs.Close(); err != nil {
			n.log.Warn("close ipfs", "err", err)
		}
	}
	if n.work != nil {
		if err := n.work.store.Close(); err != nil {
			n.log.Warn("close store", "err", err)
		}
	}
	if n.deps.Network != nil {
		if err := n.deps.Network.Close(); err != nil {
			n.log.Warn("close network", "err", err)
		}
	}
	if n.deps.Runtime != nil {
		if err := n.deps.Runtime.Close(); err != nil {
			n.log.Warn("close runtime", "err", err)
		}
	}
	if n.deps.GPUs != nil {
		if err := n.deps.GPUs.Close(); err != nil {
			n.log.Warn("close gpus", "err", err)
		}
	}
}

// Status reports the node's current status.
func (n *Node) Status() api.Status {
	s := api.Status{
		Version:       version.Get(),
		Hostname:      n.hostname,
		StartedAt:     n.started.UTC(),
		UptimeSeconds: time.Since(n.started).Seconds(),
		State:         n.state.Load().(string),
		GPUMode:       "cpu-only",
		GPUNote:       n.deps.GPUNote,
		GPUs:          []api.GPUStatus{},
		Checks:        n.checks.list(),
	}
	a := n.policy.Admission().API()
	s.Admission = &a
	s.PolicyPaused = n.policy.Paused()
	s.Idle = n.idleStatus()
	if n.deps.Benchmark != nil {
		s.Benchmark = apiBenchmarkSummary(n.deps.Benchmark.Summary())
	}
	if n.deps.Market != nil {
		ms := n.deps.Market.Status()
		s.Chain = &ms
	}
	if n.work != nil {
		if list, err := n.work.machine.List(); err == nil {
			s.Jobs = map[string]int{}
			for _, j := range list {
				s.Jobs[string(j.State)]++
			}
		}
		if d := n.work.duties.Counts(); len(d) > 0 {
			s.Validations = d
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.Earnings = n.work.ledger.Status(ctx)
		cancel()
	}
	if n.deps.Network != nil {
		s.PeerID = n.deps.Network.ID().String()
	}
	s.PoolOwed = n.poolPay.Owed()
	if g := n.deps.GPUs; g != nil {
		s.GPUMode = "nvml"
		if g.Simulated() {
			s.GPUMode = "simulated"
		}
		s.Driver, s.CUDA = g.Driver(), g.CUDA()
		if n.deps.Runtime != nil {
			for _, c := range n.deps.Runtime.GPUStack() {
				s.GPURuntime = append(s.GPURuntime, api.Component{Name: c.Name, Version: c.Version, Minimum: c.Minimum, OK: c.OK, Problem: c.Problem})
			}
		}
		for _, d := range g.Devices() {
			gs := api.GPUStatus{GPU: apiGPU(d)}
			if sample, err := g.Sample(d.Index); err != nil {
				gs.Error = err.Error()
			} else {
				as := api.GPUSample(sample)
				gs.Sample = &as
			}
			s.GPUs = append(s.GPUs, gs)
		}
	}
	return s
}

// DoctorReport is the last report of `gpunode doctor`, as it wrote it. The daemon does
// not run the checks itself: they open NVML and start containers, which the daemon's own
// GPU handling must not share.
func (n *Node) DoctorReport() (json.RawMessage, error) {
	f, err := os.Open(n.cfg.Layout().DoctorReport())
	if errors.Is(err, os.ErrNotExist) {
		return nil, api.WithClass(api.ErrNotFound, errors.New("gpunode doctor has not run on this rig yet: run `gpunode doctor` (with the daemon's --config)"))
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s: not JSON: run `gpunode doctor` again", n.cfg.Layout().DoctorReport())
	}
	return b, nil
}
