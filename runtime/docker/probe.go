package docker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/docker/docker/client"
)

// NewProbe connects to the engine for checking prerequisites (`gpunode doctor`): unlike
// New it makes no directory and never touches a job. Close it when done.
func NewProbe(cfg Config, log *slog.Logger) (*Runtime, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	if cfg.Instance == "" {
		cfg.Instance = Default().Instance
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runtime{
		cfg: cfg, log: log.With("component", "runtime"), cli: cli, ctx: ctx, cancel: cancel,
		jobs: map[string]*job{}, preflightOK: map[string]bool{},
	}, nil
}

// QuotaMode is how job output caps are enforced on this host ("loop" or "watch"), with
// the reason when it is not a hard limit.
func (r *Runtime) QuotaMode() (mode, note string) { return r.quotaMode() }

// ComponentVersion is a GPU-path component's version output, as CheckVersion reads it:
// "nvidia-container-toolkit" from its tools, "runc" as the engine reports it.
func (r *Runtime) ComponentVersion(ctx context.Context, component string) (string, error) {
	switch component {
	case "nvidia-container-toolkit":
		return r.toolkitVersion(ctx)
	case "runc":
		return r.runcVersion(ctx)
	}
	return "", fmt.Errorf("component %q: unknown (want nvidia-container-toolkit or runc)", component)
}

// TryGPUs starts a container with the device request a job on these GPUs (UUIDs or CDI
// names) would get, as the GPU preflight does, and removes it. The error says what to
// fix.
func (r *Runtime) TryGPUs(ctx context.Context, devices []string) error {
	return r.tryGPUs(ctx, devices)
}

// CDISpecDirs are the folders the engine reads CDI specs from; none when the engine has
// CDI off (Docker before 25, or not enabled).
func (r *Runtime) CDISpecDirs(ctx context.Context) ([]string, error) {
	info, err := r.cli.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker info: %w", err)
	}
	return info.CDISpecDirs, nil
}
