package docker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/mount"

	"github.com/gpunode/gpunode/runtime"
)

// engineSockets are host paths a job must never see: whoever reaches them owns the host.
var engineSockets = []string{
	"/var/run/docker.sock", "/run/docker.sock", "/run/containerd", "/var/run/containerd",
	"/run/docker", "/var/run/docker",
}

// mounts builds the job's bind mounts: inputs and datasets read-only, the output
// directory writable. Every source is resolved through symlinks first and the resolved
// path is what gets mounted, so what was checked is what the job sees.
func (r *Runtime) mounts(spec runtime.Spec) ([]mount.Mount, error) {
	var out []mount.Mount
	bind := func(src, dst string, ro bool) {
		out = append(out, mount.Mount{
			Type: mount.TypeBind, Source: src, Target: dst, ReadOnly: ro,
			BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate, NonRecursive: true},
		})
	}
	for _, m := range spec.Inputs {
		real, err := filepath.EvalSymlinks(m.Source)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", m.Source, err)
		}
		if err := refuseHostPath(real); err != nil {
			return nil, fmt.Errorf("input %s: %w", m.Source, err)
		}
		bind(real, m.Target, true)
	}
	for _, m := range spec.Datasets {
		real, err := CheckDataset(m.Source, r.cfg.DatasetAllowlist)
		if err != nil {
			return nil, err
		}
		bind(real, m.Target, true)
	}
	if err := os.MkdirAll(spec.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	realOut, err := filepath.EvalSymlinks(spec.OutputDir)
	if err != nil {
		return nil, fmt.Errorf("output dir %s: %w", spec.OutputDir, err)
	}
	if err := refuseHostPath(realOut); err != nil {
		return nil, fmt.Errorf("output dir %s: %w", spec.OutputDir, err)
	}
	// The job writes its raw output folder in the runtime's state; the output dir
	// gets a normalised copy once it has exited (see publishOutput).
	bind(r.rawOutput(spec.JobID), spec.OutputTarget, false)
	return out, nil
}

// CheckDataset resolves path through every symlink and returns the real path if it
// lies inside one of the allowlisted directories (themselves resolved). A path that is,
// or passes through, a symlink leading outside the allowlist is refused.
func CheckDataset(path string, allowlist []string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("dataset %s: %w: not an absolute path", path, runtime.ErrDatasetRefused)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("dataset %s: %w: %v", path, runtime.ErrDatasetRefused, err)
	}
	if _, err := os.Stat(real); err != nil {
		return "", fmt.Errorf("dataset %s: %w: %v", path, runtime.ErrDatasetRefused, err)
	}
	for _, a := range allowlist {
		ra, err := filepath.EvalSymlinks(a)
		if err != nil {
			continue
		}
		if within(real, ra) {
			if err := refuseHostPath(real); err != nil {
				return "", fmt.Errorf("dataset %s: %w", path, err)
			}
			return real, nil
		}
	}
	if real != filepath.Clean(path) {
		return "", fmt.Errorf("dataset %s: %w: it resolves through symlinks to %s, outside the allowlist %v", path, runtime.ErrDatasetRefused, real, allowlist)
	}
	return "", fmt.Errorf("dataset %s: %w: outside the allowlist %v (set runtime.dataset_allowlist)", path, runtime.ErrDatasetRefused, allowlist)
}

func within(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// refuseHostPath refuses the host root and anything that is or contains the engine's socket.
func refuseHostPath(real string) error {
	if real == "/" {
		return fmt.Errorf("%w: the host's root directory", runtime.ErrMountRefused)
	}
	for _, s := range engineSockets {
		if within(s, real) || within(real, s) {
			return fmt.Errorf("%w: %s exposes the container engine (%s)", runtime.ErrMountRefused, real, s)
		}
	}
	return nil
}
