package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/ipfs"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/validator"
	"github.com/gpunode/gpunode/runtime"
)

// ContainerRuntime is what the job machine and the validator need of the runtime.
type ContainerRuntime interface {
	Start(ctx context.Context, spec runtime.Spec) (runtime.Handle, error)
	Wait(ctx context.Context, jobID string) (runtime.Result, error)
	Recover(ctx context.Context) ([]runtime.Handle, error)
}

// work is the node's job-taking side: the job machine, the validator, and the chain glue
// between them and the contract. It exists when the node has a chain, a container
// runtime and content (IPFS).
type work struct {
	chain   *chain
	machine *jobs.Machine
	log     *slog.Logger
	// measured and reports are the benchmark's: the first registration waits for the
	// benchmark at start, and each new report is registered at once. Nil without one.
	measured, reports <-chan struct{}
}

// openWork builds the job machine and the validator over the market, the content store
// and the runtime; the market must have been created with c.handle as its event handler.
func openWork(cfg Config, log *slog.Logger, st *store.Store, c *chain, content jobs.Content, rt ContainerRuntime, admitter jobs.Admitter, gpus []string, usable func(string) bool, score func() float64, idle jobs.Idler) *work {
	machine := jobs.New(cfg.Jobs, jobs.Deps{
		RigScore:  score,
		Store:     st,
		Chain:     c,
		Content:   content,
		Runtime:   rt,
		Admitter:  admitter,
		GPUs:      gpus,
		GPUUsable: usable,
		Datasets:  cfg.Datasets,
		WorkDir:   filepath.Join(cfg.DataDir, "jobs"),
		Idle:      idle,
	}, log)
	var val *validator.Validator
	if cfg.Validator.Enabled {
		val = validator.New(cfg.Validator, st, c, content, rt, filepath.Join(cfg.DataDir, "validator"), log)
		if c.dutyPolicy != nil {
			val.SetConsent(validator.PolicyConsent(c.dutyPolicy))
		}
	}
	c.attach(machine, val)
	return &work{chain: c, machine: machine, log: log.With("component", "jobs")}
}

// run drives the jobs and the validations until ctx ends. The machine starts by
// re-attaching to containers; while the engine does not answer, it waits and tries again
// (the docker check in status says why).
func (w *work) run(ctx context.Context) error {
	defer w.chain.wait()
	if err := w.chain.resume(ctx); err != nil {
		return fmt.Errorf("resume validations: %w", err)
	}
	w.chain.wg.Add(1)
	go func() {
		defer w.chain.wg.Done()
		w.chain.reclaimLoop(ctx, 30*time.Second)
	}()
	go func() {
		// Accepting needs the registration; until it is made, accepts fail and retry.
		// It waits for the benchmark at start, so that a new rig registers measured;
		// later rounds register again when a new benchmark report is made.
		if w.measured != nil {
			select {
			case <-ctx.Done():
				return
			case <-w.measured:
			}
		}
		for ctx.Err() == nil {
			wait := 10 * time.Minute
			if err := w.chain.register(ctx); err != nil {
				w.log.Warn("cannot register as provider; retrying", "err", err)
				wait = time.Minute
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			case <-w.reports:
			}
		}
	}()
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

func (w *work) routes(s *api.Server) {
	w.machine.Routes(s)
	w.chain.routes(s)
}

// storePath is the node's state file.
func storePath(cfg Config) string { return filepath.Join(cfg.DataDir, "state.db") }

// attachWork makes the node take jobs over d: the job machine and the validator, their
// routes and metrics, and the policy's count of active jobs for drain.
func (n *Node) attachWork(d *jobDeps) {
	n.deps.jobs = d
	score := func() float64 {
		if n.deps.Benchmark != nil {
			if s := n.deps.Benchmark.Summary(); s != nil {
				return s.RigScore
			}
		}
		return 0
	}
	var usable func(string) bool
	if n.deps.GPUs != nil {
		usable = n.deps.GPUs.Usable
	}
	d.chain.dutyPolicy = n.policy
	n.work = openWork(n.cfg, n.log, d.store, d.chain, d.content, d.runtime, NewAdmitter(n.policy), jobGPUs(n.deps.GPUs), usable, score, n.idle)
	if n.deps.Benchmark != nil {
		n.work.measured, n.work.reports = n.deps.Benchmark.Measured(), n.deps.Benchmark.NewReports()
	}
	n.work.routes(n.api)
	n.reg.MustRegister(n.work.machine.Collector(), ledgerCollector{d.chain})
	n.policy.CountRunning(n.work.machine.Active)
}

// openContent starts the embedded IPFS node on the network's libp2p host.
func (n *Node) openContent() error {
	nw, ok := n.deps.Network.(*p2p.Network)
	if !ok || nw == nil {
		return errors.New("no IPFS: it runs on the p2p network's host, which is off or failed to start")
	}
	cfg := n.cfg.IPFS
	var chainID uint64
	if n.deps.Market != nil {
		chainID = n.deps.Market.Status().ChainID
	}
	cfg.PublicDHT = ipfs.ResolvePublicDHT(cfg.PublicDHT, chainID, n.deps.Market != nil)
	x, err := ipfs.New(cfg, n.cfg.DataDir, nw.Host(), nw.Routing(), n.log)
	if err != nil {
		return fmt.Errorf("ipfs: %w", err)
	}
	// The control socket's host-path routes never read or write the node's own state.
	x.Protect(n.cfg.DataDir, n.cfg.Market.Keystore, n.cfg.Market.PasswordFile, n.cfg.IPFS.RemotePinning.TokenFile, n.cfg.Runtime.StateDir, n.cfg.Runtime.LogDir)
	x.Routes(n.api)
	n.reg.MustRegister(x.Collector())
	n.ipfs = x
	return nil
}
