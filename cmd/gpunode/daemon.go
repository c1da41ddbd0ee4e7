package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node"
)

// configFlags are the flags that override the config file, shared by the commands that
// load it.
type configFlags struct {
	file          string
	dataDir       string
	apiSocket     string
	metricsListen string
	uiListen      string
	benchOnStart  bool
	logFormat     string
	logLevel      string
	simulateGPUs  string
	poolCoord     bool
}

func (f *configFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.file, "config", "", "config file (default "+node.DefaultConfigFile+" if it exists)")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the node's state (overrides data_dir)")
	apiSocketVar(fl, &f.apiSocket)
	fl.StringVar(&f.metricsListen, "metrics-listen", "", `address of /metrics, "" to disable (overrides metrics.listen)`)
	fl.StringVar(&f.uiListen, "ui-listen", "", `address of the web dashboard, "" to disable (overrides ui.listen)`)
	fl.BoolVar(&f.benchOnStart, "benchmark-on-start", true, "measure the rig at start when its report is missing or stale (overrides benchmark.on_start)")
	fl.StringVar(&f.logFormat, "log-format", "", "text or json (overrides log.format)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (overrides log.level)")
	fl.StringVar(&f.simulateGPUs, "simulate-gpus", "", "run on a simulated rig: dgxa100 (overrides gpu.simulate)")
	fl.BoolVar(&f.poolCoord, "pool-coordinator", false, "be the pool's coordinator: take the market's jobs for the pool's members (overrides pool.coordinator)")
}

// load applies defaults, then the config file, then the flags that were set.
func (f *configFlags) load(cmd *cobra.Command) (node.Config, error) {
	cfg := node.Default()
	source := "defaults"
	path := f.file
	if path == "" {
		if _, err := os.Stat(node.DefaultConfigFile); err == nil {
			path = node.DefaultConfigFile
		} else if !errors.Is(err, fs.ErrNotExist) {
			return cfg, fmt.Errorf("config %s: %w", node.DefaultConfigFile, err)
		}
	}
	if path != "" {
		var err error
		if cfg, err = node.LoadConfig(path); err != nil {
			return cfg, err
		}
		source = path
	}
	set := func(name string, dst *string, v string) {
		if cmd.Flags().Changed(name) {
			*dst = v
		}
	}
	set("data-dir", &cfg.DataDir, f.dataDir)
	set("api-socket", &cfg.API.Socket, f.apiSocket)
	set("metrics-listen", &cfg.Metrics.Listen, f.metricsListen)
	set("ui-listen", &cfg.UI.Listen, f.uiListen)
	if cmd.Flags().Changed("benchmark-on-start") {
		cfg.Benchmark.OnStart = f.benchOnStart
	}
	set("log-format", &cfg.Log.Format, f.logFormat)
	set("log-level", &cfg.Log.Level, f.logLevel)
	set("simulate-gpus", &cfg.GPU.Simulate, f.simulateGPUs)
	if cmd.Flags().Changed("pool-coordinator") {
		cfg.Pool.Coordinator = f.poolCoord
	}
	return cfg, cfg.Check(source + " with flags")
}

func newDaemonCmd() *cobra.Command {
	var flags configFlags
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the node (under systemd, or in the foreground)",
		Long: `Run the node: GPU inventory and telemetry, the control API, and /metrics.
Stops gracefully on SIGINT or SIGTERM; a second signal exits at once. SIGHUP re-reads
the policy files.
Under systemd (Type=notify) it reports READY, WATCHDOG and STOPPING.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load(cmd)
			if err != nil {
				return err
			}
			log := cfg.Log.NewLogger(os.Stderr)
			n, err := node.Open(cfg, log)
			if err != nil {
				return err
			}
			return n.Run(cmd.Context(), hangups(cmd.Context()))
		},
	}
	flags.register(cmd)
	return cmd
}

// hangups turns each SIGHUP into a reload of the daemon until ctx ends. One pending
// reload covers any number of signals received meanwhile.
func hangups(ctx context.Context) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	return reload
}
