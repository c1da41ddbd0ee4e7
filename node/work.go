package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
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
}

// openWork builds the job machine and the validator over the market, the content store
// and the runtime; the market must have been created with c.handle as its event handler.
func openWork(cfg Config, log *slog.Logger, st *store.Store, c *chain, content jobs.Content, rt ContainerRuntime, admitter jobs.Admitter, gpus []string) *work {
	machine := jobs.New(cfg.Jobs, jobs.Deps{
		Store:    st,
		Chain:    c,
		Content:  content,
		Runtime:  rt,
		Admitter: admitter,
		GPUs:     gpus,
		Datasets: cfg.Datasets,
		WorkDir:  filepath.Join(cfg.DataDir, "jobs"),
	}, log)
	val := validator.New(st, c, content, rt, filepath.Join(cfg.DataDir, "validator"), log)
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

func (w *work) routes(s *api.Server) { w.machine.Routes(s) }

// storePath is the node's state file.
func storePath(cfg Config) string { return filepath.Join(cfg.DataDir, "state.db") }

var _ market.Handler = (*chain)(nil).handle
