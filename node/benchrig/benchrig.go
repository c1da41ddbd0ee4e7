// Package benchrig assembles the rig's benchmark the same way for the daemon and for
// `gpunode bench`: reports signed by the node's identity key and kept in the data
// directory's benchmark folder, and the PyTorch harness run as a container job with its
// run folders under the data directory (dockerd must be able to mount them, and under
// the unit's PrivateTmp= the node's /tmp is a private one that dockerd does not see).
package benchrig

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/harness"
	"github.com/gpunode/gpunode/node/datadir"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/runtime/docker"
)

// Key is the key reports are signed with: the node's identity, which its peer ID names.
func Key(l datadir.Layout) (ed25519.PrivateKey, error) {
	return p2p.SigningKey(l.Identity())
}

// Config is the benchmark service's default configuration, its reports kept in the data
// directory.
func Config(l datadir.Layout) benchmark.Config {
	c := benchmark.Default()
	c.StateDir = l.Benchmark()
	return c
}

// HarnessConfig is the harness hcfg on gpus with its run folders under the data directory.
func HarnessConfig(l datadir.Layout, hcfg harness.Config, gpus []string) harness.Config {
	hcfg.GPUs = gpus
	hcfg.WorkDir = l.Harness()
	return hcfg
}

// Harness is the harness hcfg on gpus (HarnessConfig), run as jobs of the container
// runtime.
func Harness(l datadir.Layout, hcfg harness.Config, gpus []string, jobs harness.Jobs) (*harness.Backend, error) {
	return harness.New(HarnessConfig(l, hcfg, gpus), harness.RuntimeContainers{Jobs: jobs})
}

// Instance is the container runtime instance `gpunode bench` runs the harness in: its
// own, so that a running daemon does not adopt these containers.
const Instance = "gpunode-bench"

// Runtime opens the container runtime `gpunode bench` runs the harness with, its state
// apart from the daemon's.
func Runtime(l datadir.Layout, log *slog.Logger) (*docker.Runtime, error) {
	rcfg := docker.Default()
	rcfg.Instance = Instance
	rcfg.StateDir, rcfg.LogDir = l.BenchRuntimeState(), l.BenchRuntimeLogs()
	rcfg.ImageCacheBytes = 0
	rt, err := docker.New(rcfg, log)
	if err != nil {
		return nil, fmt.Errorf("container runtime: %w", err)
	}
	return rt, nil
}
