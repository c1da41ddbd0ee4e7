package idle

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/runtime"
)

// Config is the operator's idle workload. With no image there is none: the default.
type Config struct {
	// Image is the idle workload's image, by digest (`repo@sha256:…`) or a local image
	// ID (`sha256:…`); empty turns the idle workload off.
	Image string `toml:"image"`
	// Command is the whole argv of its process (it replaces the image's entrypoint, as
	// a job's command does); required with an image.
	Command []string `toml:"command"`
	// Env is KEY=VALUE pairs (a miner's wallet and pool, say).
	Env []string `toml:"env"`
	// GPUs gives the idle workload every GPU of the rig (a miner needs them); off, it
	// gets none.
	GPUs bool `toml:"gpus"`
	// Network is "none" (the default) or "bridge" (egress through the engine's
	// bridge: a miner must reach its pool).
	Network string `toml:"network"`
	// StopTimeout bounds how long the idle workload takes to give way to a job: SIGTERM,
	// then SIGKILL a second before the bound. At least 2s.
	StopTimeout configfile.Duration `toml:"stop_timeout"`
	// RestartDelay is the pause before the idle workload is started again after it
	// exited on its own (a crash loop must not spin).
	RestartDelay configfile.Duration `toml:"restart_delay"`
	// CPUs and MemoryBytes cap it below the runtime's job ceilings; 0 = those ceilings.
	CPUs        float64 `toml:"cpus"`
	MemoryBytes int64   `toml:"memory_bytes"`
}

// Default returns the shipped configuration: no idle workload.
func Default() Config {
	return Config{
		Network:      runtime.NetworkNone,
		StopTimeout:  configfile.Duration(10 * time.Second),
		RestartDelay: configfile.Duration(30 * time.Second),
	}
}

// Enabled tells whether an idle workload is configured.
func (c Config) Enabled() bool { return c.Image != "" }

// minStopTimeout leaves a second of grace and a second for the kill.
const minStopTimeout = 2 * time.Second

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if time.Duration(c.StopTimeout) < minStopTimeout {
		errs = append(errs, fmt.Errorf("stop_timeout: %s is below the minimum of %s (a second of grace, a second to kill)", time.Duration(c.StopTimeout), minStopTimeout))
	}
	if c.RestartDelay <= 0 {
		errs = append(errs, errors.New("restart_delay: must be positive"))
	}
	if c.CPUs < 0 || c.MemoryBytes < 0 {
		errs = append(errs, errors.New("cpus, memory_bytes: must not be negative"))
	}
	switch c.Network {
	case runtime.NetworkNone, runtime.NetworkBridge:
	default:
		errs = append(errs, fmt.Errorf("network: %q is not one of %q, %q", c.Network, runtime.NetworkNone, runtime.NetworkBridge))
	}
	if !c.Enabled() {
		return errs
	}
	if !strings.HasPrefix(c.Image, "sha256:") && !strings.Contains(c.Image, "@sha256:") {
		errs = append(errs, fmt.Errorf("image: %q has no digest; name it as repo@sha256:… (or a local image ID sha256:…)", c.Image))
	}
	if len(c.Command) == 0 {
		errs = append(errs, errors.New("command: must not be empty when an image is set (the image's own entrypoint is not used)"))
	}
	for _, kv := range c.Env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("env %q: want KEY=VALUE", kv))
			continue
		}
		if err := runtime.ReservedEnv(name); err != nil {
			errs = append(errs, fmt.Errorf("env: %w", err))
		}
	}
	return errs
}

// grace is the SIGTERM→SIGKILL period that keeps a stop within StopTimeout: the
// engine counts it in whole seconds and needs a moment for the kill.
func (c Config) grace() time.Duration {
	g := (time.Duration(c.StopTimeout) - time.Second).Truncate(time.Second)
	return max(g, time.Second)
}
