package doctor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/deploy"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/runtime/docker"
	"github.com/gpunode/gpunode/runtime/gpu"
)

// Options are the thresholds of the checks.
type Options struct {
	// DiskFailBytes and DiskWarnBytes bound the data directory's free space.
	DiskFailBytes, DiskWarnBytes uint64
	// MinBalanceWei is the wallet balance under which the wallet check warns.
	MinBalanceWei *big.Int
	// ShmPath is the host's shared-memory mount.
	ShmPath string
	// Now is the clock the clock and benchmark checks read.
	Now func() time.Time
}

// DefaultOptions are the thresholds `gpunode doctor` uses.
func DefaultOptions() Options {
	return Options{DiskFailBytes: 1 << 30, DiskWarnBytes: 20 << 30, MinBalanceWei: DefaultMinBalanceWei, ShmPath: "/dev/shm", Now: time.Now}
}

// Run checks every prerequisite of a node with this configuration, with the real
// adapters (NVML, the Docker Engine, the chain's endpoint, the daemon's API). It changes
// nothing on the host but for a short-lived container (and its empty image) when it
// checks the GPU path.
func Run(ctx context.Context, cfg node.Config, opts Options, log *slog.Logger) Report {
	cfg = cfg.Resolved()
	rep := Report{CheckedAt: opts.Now().UTC()}

	var g GPUs
	var gpus []string
	inv, gerr := gpu.Open(cfg.GPU, log)
	if gerr == nil {
		defer inv.Close()
		g = inv
		if !inv.Simulated() {
			// Simulated GPUs never reach a container: the GPU path is not theirs.
			gpus = inv.Allocatable()
		}
	}
	rep.add(NVIDIA(g, gerr))
	rep.add(Persistence(g, gerr))

	eng, eerr := docker.NewProbe(cfg.Runtime, log)
	if eerr == nil {
		defer eng.Close()
	}
	res := Docker(ctx, eng, eerr)
	rep.add(res)
	engineErr := eerr
	if res.Status == Fail {
		engineErr = errors.New(res.Detail)
	}
	if eerr != nil {
		rep.add(skip("runc", "the Docker Engine does not answer (see the docker check)"))
	} else {
		rep.add(Runc(ctx, eng, gpus, engineErr))
	}
	if gerr == nil && inv.Simulated() {
		const why = "simulated GPUs (gpu.simulate): the container path is not checked"
		rep.add(skip("container-toolkit", why))
		rep.add(skip("gpu-container", why))
		rep.add(skip("cdi-spec", why))
	} else {
		rep.add(Toolkit(ctx, eng, gpus))
		rep.add(GPUContainer(ctx, eng, gpus, engineErr))
		rep.add(CDISpec(CDIDirs, gpus))
	}
	if eerr != nil {
		rep.add(skip("output-quota", "the Docker Engine does not answer (see the docker check)"))
	} else {
		rep.add(Quota(eng))
	}
	rep.add(Shm(opts.ShmPath))
	rep.add(Disk(cfg.DataDir, opts.DiskFailBytes, opts.DiskWarnBytes))

	st := daemonStatus(ctx, cfg.API.Socket)
	rep.add(Listen(cfg.P2P.Enabled, cfg.P2P.ListenAddrs, st != nil))
	var peers *api.P2PPeers
	if st != nil && cfg.P2P.Enabled {
		peers = daemonPeers(ctx, cfg.API.Socket)
	}
	rep.add(Reachability(cfg.P2P.Enabled, peers))

	rep.add(IPFS(ctx, IPFSConfig{Mode: cfg.IPFS.Mode, Dir: cfg.Layout().Resolve(cfg.IPFS.Dir), KuboAPI: cfg.IPFS.KuboAPI}))

	chainCfg := chainOf(cfg.Market)
	var chain Chain
	if chainCfg.URL != "" && chainCfg.Err == nil {
		c, err := market.Dial(market.ClientConfig{URL: chainCfg.URL, CallTimeout: cfg.Market.CallTimeout}, log, nil)
		if err != nil {
			chainCfg.Err = err
		} else {
			defer c.Close()
			chain = c
		}
	}
	rep.add(ChainRPC(ctx, chain, chainCfg))
	if r := rep.Checks[len(rep.Checks)-1]; r.Status == Fail && chainCfg.Err == nil {
		chainCfg.Err = errors.New(r.Detail)
	}
	rep.add(Clock(ctx, chain, chainCfg, opts.Now()))
	account, accountErr := accountOf(cfg.Market)
	rep.add(Wallet(ctx, chain, chainCfg, account, accountErr, opts.MinBalanceWei))

	rep.add(Benchmark(cfg.Layout().BenchmarkReport(), cfg.DataDir, opts.Now()))
	rep.add(Daemon(st, cfg.API.Socket))
	return rep
}

// chainOf resolves the chain the market section names, as node/market does.
func chainOf(mc market.Config) ChainConfig {
	c := ChainConfig{URL: mc.RPCURL, ID: mc.ChainID}
	if mc.Deployment == "" {
		return c
	}
	d, err := deploy.Read(mc.Deployment)
	switch {
	case errors.Is(err, os.ErrNotExist) && mc.RPCURL == "":
		c.NotConfigured = fmt.Sprintf("no market.rpc_url and no deployment file %s", mc.Deployment)
	case err != nil:
		c.URL, c.Err = mc.Deployment, err
	default:
		c.URL, c.ID = d.RPCURL, d.ChainID
	}
	return c
}

// accountOf is the node's account: market.account, or the keystore's only key.
func accountOf(mc market.Config) (common.Address, error) {
	if mc.Account != "" {
		return common.HexToAddress(mc.Account), nil
	}
	list, err := market.NewWallet(mc.Keystore, true).List()
	if err != nil {
		return common.Address{}, err
	}
	if len(list) != 1 {
		return common.Address{}, fmt.Errorf("keystore %s holds %d keys (want one, or set market.account)", mc.Keystore, len(list))
	}
	return list[0], nil
}

// daemonStatus asks a running daemon for its status; nil when none answers.
func daemonStatus(ctx context.Context, socket string) *api.Status {
	if _, err := os.Stat(socket); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := api.NewClient(socket).Status(ctx)
	if err != nil {
		return nil
	}
	return &st
}
