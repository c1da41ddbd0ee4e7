// Package runtime holds what every container runtime of gpunode shares: the spec of a
// job's container, the handle of a started one, its result, the errors a caller can
// check for, and the Runtime contract that the conformance suite (runtime/conformance)
// holds implementations to.
//
// A job is untrusted code. A Spec therefore describes what the job may have (image by
// digest, GPUs by UUID, read-only inputs and datasets, one writable output directory,
// limits); the runtime adds everything the job may not have (network, capabilities,
// privileges, a writable root filesystem, host namespaces).
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"
)

// Errors a caller checks with errors.Is.
var (
	// ErrJobExists means a job with this ID was already started by this node; a job
	// never runs twice. Wait for its result instead.
	ErrJobExists = errors.New("job already started")
	// ErrUnknownJob means the runtime has no record of the job.
	ErrUnknownJob = errors.New("unknown job")
	// ErrTagNotAllowed means an image reference names a tag, not a digest, and the
	// caller did not allow tags.
	ErrTagNotAllowed = errors.New("image reference has no digest (repo@sha256:…); tags are refused unless allowed")
	// ErrDigestMismatch means the pulled image does not have the digest that was asked for.
	ErrDigestMismatch = errors.New("image digest mismatch")
	// ErrUnauthorized means the registry refused the credentials (or their absence).
	ErrUnauthorized = errors.New("registry refused the credentials")
	// ErrImageNotFound means neither the engine nor the registry has the image.
	ErrImageNotFound = errors.New("image not found")
	// ErrNoGPURuntime means GPUs were requested but the engine cannot attach them:
	// the NVIDIA Container Toolkit is missing or not configured.
	ErrNoGPURuntime = errors.New("the Docker Engine cannot attach NVIDIA GPUs: the NVIDIA Container Toolkit is not installed or not configured for Docker; install nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker` and restart dockerd")
	// ErrDatasetRefused means a dataset path is outside the operator's allowlist,
	// possibly after following symlinks.
	ErrDatasetRefused = errors.New("dataset path refused")
	// ErrMountRefused means an input mount would expose the host: its root, or the
	// container engine's socket.
	ErrMountRefused = errors.New("mount refused")
	// ErrInterrupted means the node stopped while the job was being prepared, before
	// its container existed. The job never ran.
	ErrInterrupted = errors.New("job interrupted before its container started")
	// ErrImageRefused means the image's own config asks for something a job may not
	// have (LD_PRELOAD in its ENV).
	ErrImageRefused = errors.New("image refused")
	// ErrGPURuntimeOutdated means the NVIDIA Container Toolkit or runc is older than the
	// release that fixed a container escape: GPU jobs do not run until it is upgraded.
	ErrGPURuntimeOutdated = errors.New("the NVIDIA Container Toolkit or runc on this rig has a known container escape")
)

// Network modes a Spec may ask for.
const (
	// NetworkNone gives the container only a loopback interface. The default.
	NetworkNone = "none"
	// NetworkBridge gives the container egress through the engine's bridge. Only when
	// the operator's policy grants egress.
	NetworkBridge = "bridge"
)

// Mount is a host path made visible inside the container.
type Mount struct {
	// Source is the absolute host path.
	Source string `json:"source"`
	// Target is the absolute path inside the container.
	Target string `json:"target"`
}

// Resources limits what a job may use. Zero means the runtime's default.
type Resources struct {
	// CPUs is the number of CPUs (fractions allowed).
	CPUs float64 `json:"cpus,omitempty"`
	// MemoryBytes caps memory; swap is not granted on top. Exceeding it is an OOM kill.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// PIDs caps the number of processes and threads.
	PIDs int64 `json:"pids,omitempty"`
	// TmpBytes caps the tmpfs mounted on /tmp (the root filesystem is read-only).
	TmpBytes int64 `json:"tmp_bytes,omitempty"`
	// ShmBytes sizes /dev/shm (PyTorch data loader workers share tensors through it);
	// it counts against MemoryBytes as it is used.
	ShmBytes int64 `json:"shm_bytes,omitempty"`
	// OutputBytes caps what the job writes to its output directory, while it runs:
	// past it the job is stopped (Result.OutputFull).
	OutputBytes int64 `json:"output_bytes,omitempty"`
}

// Spec is what a job's container is made of.
type Spec struct {
	// JobID identifies the job; a runtime starts a given JobID at most once.
	JobID string `json:"job_id"`
	// Image is `repo@sha256:<digest>` (pulled if absent, digest verified) or a local
	// image ID `sha256:<id>`. A tag-only reference needs AllowTag.
	Image string `json:"image"`
	// AllowTag lets Image be a tag-only reference. Off for jobs from the market.
	AllowTag bool `json:"allow_tag,omitempty"`
	// Command is the whole argv of the process; it replaces the image's entrypoint and
	// command.
	Command []string `json:"command"`
	// Env is KEY=VALUE pairs.
	Env []string `json:"env,omitempty"`
	// WorkDir is the working directory inside the container.
	WorkDir string `json:"work_dir,omitempty"`
	// User runs the process as uid[:gid] instead of the image's user.
	User string `json:"user,omitempty"`
	// GPUs are NVIDIA GPU UUIDs (`GPU-…`) or CDI device names (`nvidia.com/gpu=0`).
	GPUs []string `json:"gpus,omitempty"`
	// Resources are the job's limits.
	Resources Resources `json:"resources"`
	// Inputs are mounted read-only (fetched inputs, harness files).
	Inputs []Mount `json:"inputs,omitempty"`
	// Datasets are the operator's private data, mounted read-only after their paths
	// are resolved through symlinks and checked against the allowlist.
	Datasets []Mount `json:"datasets,omitempty"`
	// OutputDir is the host directory mounted writable at OutputTarget; it is kept
	// after the container is removed.
	OutputDir string `json:"output_dir"`
	// OutputTarget is where OutputDir appears inside the container; default /out.
	OutputTarget string `json:"output_target,omitempty"`
	// Network is NetworkNone (default) or NetworkBridge.
	Network string `json:"network,omitempty"`
	// PrepareTimeout bounds pulling the image and checking inputs; 0 = default.
	PrepareTimeout time.Duration `json:"prepare_timeout,omitempty"`
	// RunTimeout bounds the container's run, counted from its start; 0 = default.
	RunTimeout time.Duration `json:"run_timeout,omitempty"`
	// Cluster makes the container one member of a multi-rig job: it gets the rendezvous
	// environment and the job's cluster network (its members and nothing else) instead
	// of Network. Nil for a job on one rig.
	Cluster *Cluster `json:"cluster,omitempty"`
	// StopGrace is the time between SIGTERM and SIGKILL when the container is stopped
	// (Stop, the run timeout); 0 = the runtime's default. A workload that must give way
	// within a bound (the idle workload) sets it.
	StopGrace time.Duration `json:"stop_grace,omitempty"`
}

var jobIDRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// ValidJobID reports whether id can name a job (and so a file and a container).
func ValidJobID(id string) bool { return jobIDRe.MatchString(id) }

// Validate reports every problem with the spec that does not need the host to check.
func (s Spec) Validate() []error {
	var errs []error
	if !jobIDRe.MatchString(s.JobID) {
		errs = append(errs, fmt.Errorf("job_id %q: want 1-128 of [a-zA-Z0-9_.-], starting alphanumeric", s.JobID))
	}
	if s.Image == "" {
		errs = append(errs, errors.New("image: must not be empty"))
	}
	if len(s.Command) == 0 {
		errs = append(errs, errors.New("command: must not be empty"))
	}
	if s.OutputDir == "" || !path.IsAbs(s.OutputDir) {
		errs = append(errs, fmt.Errorf("output_dir %q: must be an absolute host path", s.OutputDir))
	}
	if s.OutputTarget != "" && !path.IsAbs(s.OutputTarget) {
		errs = append(errs, fmt.Errorf("output_target %q: must be absolute", s.OutputTarget))
	}
	for i, m := range append(append([]Mount{}, s.Inputs...), s.Datasets...) {
		if !path.IsAbs(m.Source) || !path.IsAbs(m.Target) {
			errs = append(errs, fmt.Errorf("mount %d (%s -> %s): source and target must be absolute", i, m.Source, m.Target))
		}
	}
	switch s.Network {
	case "", NetworkNone, NetworkBridge:
	default:
		errs = append(errs, fmt.Errorf("network %q: want %q or %q", s.Network, NetworkNone, NetworkBridge))
	}
	for _, kv := range s.Env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("env %q: want KEY=VALUE", kv))
			continue
		}
		if err := ReservedEnv(name); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Cluster != nil {
		if s.Network != "" && s.Network != NetworkNone {
			errs = append(errs, fmt.Errorf("network %q: a cluster job gets its cluster network only", s.Network))
		}
		errs = append(errs, s.Cluster.WithDefaults().Validate()...)
	}
	r := s.Resources
	if r.CPUs < 0 || r.MemoryBytes < 0 || r.PIDs < 0 || r.TmpBytes < 0 || r.ShmBytes < 0 || r.OutputBytes < 0 || s.PrepareTimeout < 0 || s.RunTimeout < 0 || s.StopGrace < 0 {
		errs = append(errs, errors.New("resources and timeouts: must not be negative"))
	}
	return errs
}

// Handle identifies a started job's container.
type Handle struct {
	JobID       string    `json:"job_id"`
	ContainerID string    `json:"container_id"`
	StartedAt   time.Time `json:"started_at"`
}

// Result is how a job's container ended.
type Result struct {
	JobID    string `json:"job_id"`
	ExitCode int    `json:"exit_code"`
	// OOMKilled: the kernel killed the job for exceeding its memory limit.
	OOMKilled bool `json:"oom_killed"`
	// TimedOut: the run timeout expired and the runtime stopped the job.
	TimedOut bool `json:"timed_out"`
	// Cancelled: the job was stopped on request.
	Cancelled bool `json:"cancelled"`
	// OutputFull: the job wrote its output cap and the runtime stopped it.
	OutputFull bool          `json:"output_full,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at"`
	WallTime   time.Duration `json:"wall_time"`
	// GPUSeconds is wall time × GPUs attached.
	GPUSeconds float64 `json:"gpu_seconds"`
	// OutputDir and LogFile are kept after the container is removed.
	OutputDir string `json:"output_dir"`
	LogFile   string `json:"log_file"`
	// Error says why the job could not run or be observed to the end, if so.
	Error string `json:"error,omitempty"`
}

// Succeeded reports a clean exit within limits.
func (r Result) Succeeded() bool {
	return r.Error == "" && r.ExitCode == 0 && !r.OOMKilled && !r.TimedOut && !r.Cancelled && !r.OutputFull
}

// Runtime runs job containers. Implementations must pass runtime/conformance.
type Runtime interface {
	// Start prepares (pull, dataset checks) within the spec's prepare timeout and
	// starts the container. A job ID that was started before gives ErrJobExists.
	Start(ctx context.Context, spec Spec) (Handle, error)
	// Wait blocks until the job has finished and its result is recorded.
	Wait(ctx context.Context, jobID string) (Result, error)
	// Stop cancels a job: SIGTERM, a grace period, then SIGKILL.
	Stop(ctx context.Context, jobID string) error
	// Logs opens the job's log file; with follow it streams until the job ends.
	Logs(ctx context.Context, jobID string, follow bool) (io.ReadCloser, error)
	// Recover re-attaches after a restart: running jobs are watched again and jobs
	// that finished meanwhile get their results collected. It returns the running ones.
	Recover(ctx context.Context) ([]Handle, error)
}

// PullProgress is a snapshot of an image pull, updated as the engine reports layers.
type PullProgress struct {
	Image      string `json:"image"`
	Status     string `json:"status,omitempty"`
	Layers     int    `json:"layers"`
	LayersDone int    `json:"layers_done"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
}

// Image is an image in the node's cache.
type Image struct {
	ID          string    `json:"id"`
	Refs        []string  `json:"refs"`
	RepoDigests []string  `json:"repo_digests,omitempty"`
	SizeBytes   int64     `json:"size_bytes"`
	PulledAt    time.Time `json:"pulled_at"`
	LastUsed    time.Time `json:"last_used"`
}

// PruneReport says what pruning the image cache removed.
type PruneReport struct {
	Removed    []Image `json:"removed"`
	FreedBytes int64   `json:"freed_bytes"`
	TotalBytes int64   `json:"total_bytes"`
	CapBytes   int64   `json:"cap_bytes"`
}
