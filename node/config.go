package node

import (
	_ "embed"
	"errors"
	"fmt"
	"github.com/gpunode/gpunode/node/capcheck"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/datadir"
	"github.com/gpunode/gpunode/node/ipfs"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/metrics"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/policy"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/ui"
	"github.com/gpunode/gpunode/node/validator"
	"github.com/gpunode/gpunode/runtime/docker"
	"github.com/gpunode/gpunode/runtime/gpu"
	"github.com/gpunode/gpunode/runtime/idle"
)

// Config is the whole node configuration: one section per component.
type Config struct {
	// DataDir holds the node's state: keys, the job store, caches, job logs.
	DataDir string         `toml:"data_dir"`
	Log     LogConfig      `toml:"log"`
	API     api.Config     `toml:"api"`
	Metrics metrics.Config `toml:"metrics"`
	GPU     gpu.Config     `toml:"gpu"`
	Runtime docker.Config  `toml:"runtime"`
	Jobs    jobs.Config    `toml:"jobs"`
	P2P     p2p.Config     `toml:"p2p"`
	IPFS    ipfs.Config    `toml:"ipfs"`
	// Policy is the workload policy: the local file, and the pool's key and signed policy.
	Policy policy.Config `toml:"policy"`
	// Market is the chain side: RPC endpoint, JobMarket contract, keystore, confirmations.
	Market market.Config `toml:"market"`
	// Validator is the oracle role: judging the jobs that name this node's account.
	Validator validator.Config `toml:"validator"`
	// UI is the operator's read-only web dashboard.
	UI ui.Config `toml:"ui"`
	// Idle is the operator's idle workload (a miner): it runs whenever the rig has no
	// job and gives way within its stop timeout when one is accepted. None by default.
	Idle idle.Config `toml:"idle"`
	// Pool is a miner pool's money: the fee the coordinator keeps of each job's reward
	// before splitting the rest among the members that worked on it.
	Pool pool.Config `toml:"pool"`
	// Benchmark is when the daemon measures the rig by itself.
	Benchmark BenchmarkConfig `toml:"benchmark"`
	// Challenge is the capacity challenges the node answers and poses.
	Challenge capcheck.Config `toml:"challenge"`
	// Datasets are the operator's private data sets: tag → host directory. A job asking
	// for local:TAG gets it read-only, with no network; it never leaves the rig.
	Datasets map[string]string `toml:"datasets"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Format is "text" (logfmt, readable in journalctl) or "json".
	Format string `toml:"format"`
	// Level is "debug", "info", "warn" or "error".
	Level string `toml:"level"`
}

// BenchmarkConfig says when the daemon measures the rig by itself.
type BenchmarkConfig struct {
	// OnStart runs the quick benchmark when the daemon starts and the rig has no report,
	// or its report was made with another backend or on other hardware or another
	// driver; it waits until no job runs, and the node registers on chain with the
	// new report. Off: only `gpunode bench` measures.
	OnStart bool `toml:"on_start"`
}

// DefaultDataDir is where a node keeps its state unless told otherwise; systemd's
// StateDirectory=gpunode creates it.
const DefaultDataDir = "/var/lib/gpunode"

// DefaultConfigFile is read by `gpunode daemon` when it exists and --config is not given.
const DefaultConfigFile = "/etc/gpunode/gpunode.toml"

// Default returns the embedded defaults: everything a node needs to start with no file.
func Default() Config {
	return Config{
		DataDir: DefaultDataDir,
		Log:     LogConfig{Format: "text", Level: "info"},
		API:     api.Default(),
		Metrics: metrics.Default(),
		GPU:     gpu.Default(),
		Runtime: runtimeDefaults(),
		Jobs:    jobs.Default(),
		Idle:    idle.Default(),
		Pool:    pool.Default(),
		P2P:     p2p.Default(),
		IPFS:    ipfs.Default(),
		Policy:  policy.Default(),
		Market:  market.Default(),

		Validator: validator.Default(),
		UI:        ui.Default(),
		Benchmark: BenchmarkConfig{OnStart: true},
		Challenge: capcheck.Default(),
	}
}

// runtimeDefaults are the runtime's defaults with its directories left empty: they are
// derived from data_dir unless the file sets them.
func runtimeDefaults() docker.Config {
	c := docker.Default()
	c.StateDir, c.LogDir = "", ""
	return c
}

// Resolved returns the configuration with every path that defaults to a place under
// data_dir filled in.
func (c Config) Resolved() Config {
	l := c.Layout()
	if c.Runtime.StateDir == "" {
		c.Runtime.StateDir = l.RuntimeState()
	}
	if c.Runtime.LogDir == "" {
		c.Runtime.LogDir = l.RuntimeLogs()
	}
	c.Market = c.Market.Resolved(c.DataDir)
	if c.Policy.PoolKey != "" && c.Policy.PoolPolicyFile == "" {
		c.Policy.PoolPolicyFile = l.PoolPolicy()
	}
	return c
}

// Layout is the data directory's layout: where each thing the node keeps lives.
func (c Config) Layout() datadir.Layout { return datadir.New(c.DataDir) }

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the complete, commented default configuration file.
func DefaultTOML() []byte { return append([]byte(nil), defaultTOML...) }

// LoadConfig reads a config file over the defaults and validates the result, reporting
// every problem at once.
func LoadConfig(path string) (Config, error) {
	cfg := Default()
	if err := configfile.Load(path, &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Check(path)
}

// Check validates the configuration; file names the source in the errors.
func (c Config) Check(file string) error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, fmt.Errorf("%s: data_dir: must not be empty", file))
	} else if !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("%s: data_dir: %q must be an absolute path", file, c.DataDir))
	}
	errs = append(errs, configfile.Problems(file, "log", c.Log.Validate())...)
	errs = append(errs, configfile.Problems(file, "api", c.API.Validate())...)
	errs = append(errs, configfile.Problems(file, "metrics", c.Metrics.Validate())...)
	errs = append(errs, configfile.Problems(file, "gpu", c.GPU.Validate())...)
	errs = append(errs, configfile.Problems(file, "runtime", c.Resolved().Runtime.Validate())...)
	errs = append(errs, configfile.Problems(file, "jobs", c.Jobs.Validate())...)
	errs = append(errs, configfile.Problems(file, "idle", c.Idle.Validate())...)
	errs = append(errs, configfile.Problems(file, "pool", c.Pool.Validate())...)
	errs = append(errs, configfile.Problems(file, "p2p", c.P2P.Validate())...)
	errs = append(errs, configfile.Problems(file, "ipfs", c.IPFS.Validate())...)
	errs = append(errs, configfile.Problems(file, "policy", c.Resolved().Policy.Validate())...)
	errs = append(errs, configfile.Problems(file, "market", c.Resolved().Market.Validate())...)
	errs = append(errs, configfile.Problems(file, "validator", c.Validator.Validate())...)
	errs = append(errs, configfile.Problems(file, "ui", c.UI.Validate())...)
	errs = append(errs, configfile.Problems(file, "challenge", c.Challenge.Validate())...)
	for tag, dir := range c.Datasets {
		if !filepath.IsAbs(dir) {
			errs = append(errs, fmt.Errorf("%s: datasets.%s: %q must be an absolute path", file, tag, dir))
		}
	}
	return errors.Join(errs...)
}

// Validate reports every problem with the logging configuration.
func (c LogConfig) Validate() []error {
	var errs []error
	if c.Format != "text" && c.Format != "json" {
		errs = append(errs, fmt.Errorf("format: %q is not one of text, json", c.Format))
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		errs = append(errs, fmt.Errorf("level: %q is not one of debug, info, warn, error", c.Level))
	}
	return errs
}

// NewLogger returns the logger the configuration asks for, writing to w.
func (c LogConfig) NewLogger(w *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
