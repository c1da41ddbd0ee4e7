package docker

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"time"
)

// Config configures the Docker runtime. Its resource limits are ceilings: a job gets what
// its spec asks up to them, and the limit itself when it asks nothing.
type Config struct {
	// Host is the Docker Engine endpoint (unix:///var/run/docker.sock); empty means
	// DOCKER_HOST or the default socket.
	Host string `toml:"host"`
	// Instance names this node in container labels, so that two nodes (or tests) that
	// share an engine only re-attach to their own containers.
	Instance string `toml:"instance"`
	// StateDir holds one record per job, written before its container is created; it is
	// what makes restarts re-attach instead of starting a job twice.
	StateDir string `toml:"state_dir"`
	// LogDir holds one log file per job, kept after the container is removed.
	LogDir string `toml:"log_dir"`
	// LogMaxBytes caps each job's log file; what a job prints beyond it is dropped.
	LogMaxBytes int64 `toml:"log_max_bytes"`
	// DatasetAllowlist are the host directories datasets may come from; a dataset path
	// is resolved through symlinks before it is checked.
	DatasetAllowlist []string `toml:"dataset_allowlist"`
	// StopGrace is how long a cancelled job has between SIGTERM and SIGKILL.
	StopGrace time.Duration `toml:"stop_grace"`
	// PrepareTimeout bounds pulling the image and checking inputs, unless the job says.
	PrepareTimeout time.Duration `toml:"prepare_timeout"`
	// RunTimeout bounds a job's run: the job's own bound, at most this.
	RunTimeout time.Duration `toml:"run_timeout"`
	// CPUs caps a job's CPUs (fractions allowed); 0 derives it from the host (every CPU).
	CPUs float64 `toml:"cpus"`
	// MemoryBytes caps a job's memory, swap not granted; 0 derives it from the host (RAM
	// less the larger of 2 GiB and a tenth).
	MemoryBytes int64 `toml:"memory_bytes"`
	// PIDs is the default limit on a job's processes and threads.
	PIDs int64 `toml:"pids"`
	// TmpBytes caps the size of the tmpfs on /tmp.
	TmpBytes int64 `toml:"tmp_bytes"`
	// ShmBytes is the default size of /dev/shm.
	ShmBytes int64 `toml:"shm_bytes"`
	// OutputBytes is the default cap on a job's output directory, enforced while it runs.
	OutputBytes int64 `toml:"output_bytes"`
	// OutputQuota is how the output cap is enforced while a job runs: "loop" (a
	// loop-mounted filesystem of the cap per job: a hard limit; needs root and
	// mkfs.ext4), "watch" (measured every second, the job stopped past the cap), or
	// "auto" (loop where possible, else watch, said at startup).
	OutputQuota string `toml:"output_quota"`
	// NoFile and NProc are the jobs' open-file and process ulimits; core dumps are off.
	NoFile int64 `toml:"nofile"`
	NProc  int64 `toml:"nproc"`
	// User runs jobs as this uid[:gid] unless the job says; empty keeps the image's user.
	User string `toml:"user"`
	// ImageCacheBytes caps the size of images this node pulled; above it the least
	// recently used ones are removed. 0 disables pruning.
	ImageCacheBytes int64 `toml:"image_cache_bytes"`
	// DockerConfig is the Docker client config file with registry credentials
	// (auths, credsStore, credHelpers); empty means $DOCKER_CONFIG/config.json or
	// ~/.docker/config.json.
	DockerConfig string `toml:"docker_config"`
	// Registries holds per-registry credentials that override the Docker config file,
	// keyed by registry host (ghcr.io, 127.0.0.1:5000).
	Registries map[string]Registry `toml:"registries"`
}

// Registry is one registry's credentials.
type Registry struct {
	// Username and Password for basic auth.
	Username string `toml:"username"`
	Password string `toml:"password"`
	// IdentityToken is an OAuth refresh token, used instead of a password.
	IdentityToken string `toml:"identity_token"`
	// CredHelper names a docker-credential-<name> helper to ask instead.
	CredHelper string `toml:"cred_helper"`
}

// Default returns a configuration for a node whose state lives in /var/lib/gpunode.
func Default() Config {
	return Config{
		Instance:        "gpunode",
		StateDir:        "/var/lib/gpunode/runtime/jobs",
		LogDir:          "/var/lib/gpunode/runtime/logs",
		LogMaxBytes:     64 << 20,
		StopGrace:       30 * time.Second,
		PrepareTimeout:  30 * time.Minute,
		RunTimeout:      24 * time.Hour,
		CPUs:            0,
		MemoryBytes:     0,
		PIDs:            4096,
		TmpBytes:        1 << 30,
		ShmBytes:        1 << 30,
		OutputBytes:     50 << 30,
		OutputQuota:     QuotaAuto,
		NoFile:          8192,
		NProc:           65536,
		ImageCacheBytes: 100 << 30,
	}
}

var instanceRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if !instanceRe.MatchString(c.Instance) {
		errs = append(errs, fmt.Errorf("instance %q: want 1-64 of [a-zA-Z0-9_.-]", c.Instance))
	}
	if !filepath.IsAbs(c.StateDir) {
		errs = append(errs, fmt.Errorf("state_dir %q: must be an absolute path", c.StateDir))
	}
	if !filepath.IsAbs(c.LogDir) {
		errs = append(errs, fmt.Errorf("log_dir %q: must be an absolute path", c.LogDir))
	}
	if c.LogMaxBytes < 4096 {
		errs = append(errs, fmt.Errorf("log_max_bytes %d: must be at least 4096", c.LogMaxBytes))
	}
	for _, d := range c.DatasetAllowlist {
		if !filepath.IsAbs(d) {
			errs = append(errs, fmt.Errorf("dataset_allowlist %q: must be an absolute path", d))
		}
	}
	if c.StopGrace < 0 {
		errs = append(errs, errors.New("stop_grace: must not be negative"))
	}
	if c.PrepareTimeout <= 0 {
		errs = append(errs, errors.New("prepare_timeout: must be positive"))
	}
	if c.RunTimeout <= 0 {
		errs = append(errs, errors.New("run_timeout: must be positive"))
	}
	if c.CPUs < 0 || c.MemoryBytes < 0 || c.PIDs < 0 || c.TmpBytes < 0 || c.ShmBytes < 0 || c.ImageCacheBytes < 0 {
		errs = append(errs, errors.New("cpus, memory_bytes, pids, tmp_bytes, shm_bytes, image_cache_bytes: must not be negative"))
	}
	if c.TmpBytes == 0 || c.ShmBytes == 0 || c.OutputBytes <= 0 || c.NoFile <= 0 || c.NProc <= 0 {
		errs = append(errs, errors.New("tmp_bytes, shm_bytes, output_bytes, nofile, nproc: must be positive (0 would mean no limit)"))
	}
	switch c.OutputQuota {
	case QuotaAuto, QuotaLoop, QuotaWatch:
	default:
		errs = append(errs, fmt.Errorf("output_quota %q: want %q, %q or %q", c.OutputQuota, QuotaAuto, QuotaLoop, QuotaWatch))
	}
	if c.MemoryBytes > 0 && c.MemoryBytes < 6<<20 {
		errs = append(errs, errors.New("memory_bytes: Docker needs at least 6 MiB"))
	}
	for host, r := range c.Registries {
		if r.Password != "" && r.IdentityToken != "" {
			errs = append(errs, fmt.Errorf("registries.%q: set password or identity_token, not both", host))
		}
	}
	return errs
}
