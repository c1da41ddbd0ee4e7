package doctor

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
)

// devChain is a real EVM serving JSON-RPC on loopback, with the node's client to it.
func devChain(t *testing.T) (devchain.Deployment, *market.Client) {
	t.Helper()
	d := devchain.StartTest(t, time.Second) // blocks are stamped max(now, parent+1s): faster ones run ahead of the clock
	c, err := market.Dial(market.ClientConfig{URL: d.RPCURL, CallTimeout: 5 * time.Second}, testkit.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return d, c
}

func TestChainRPC(t *testing.T) {
	ctx := t.Context()
	d, c := devChain(t)
	want(t, ChainRPC(ctx, c, ChainConfig{URL: d.RPCURL, ID: d.ChainID}), OK, fmt.Sprintf("answers, chain %d", d.ChainID), "")
	want(t, ChainRPC(ctx, c, ChainConfig{URL: d.RPCURL, ID: 1}), Fail, fmt.Sprintf("serves chain %d, the node is configured for chain 1", d.ChainID), FixChainID)

	closedURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	closed, err := market.Dial(market.ClientConfig{URL: closedURL, CallTimeout: 5 * time.Second}, testkit.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	want(t, ChainRPC(ctx, closed, ChainConfig{URL: closedURL, ID: d.ChainID}), Fail, "connection refused", FixChainRPC)
	want(t, ChainRPC(ctx, nil, ChainConfig{URL: "/x/devchain.json", Err: fmt.Errorf("deployment /x/devchain.json: unexpected end of JSON input")}), Fail, "unexpected end", FixChainRPC)
	want(t, ChainRPC(ctx, nil, ChainConfig{NotConfigured: "no market.rpc_url"}), Skip, "no chain configured (no market.rpc_url)", FixNoChain)
}

func TestClock(t *testing.T) {
	ctx := t.Context()
	d, c := devChain(t)
	// On the dev chain the check is skipped: a mining dev chain's time runs ahead.
	want(t, Clock(ctx, c, ChainConfig{URL: d.RPCURL, ID: d.ChainID}, time.Now()), Skip, "stamps its blocks ahead of real time", "")
	// The in-process chain stamps blocks with this machine's clock: it stands in for a
	// real chain's endpoint here.
	cfg := ChainConfig{URL: d.RPCURL, ID: 8453}
	want(t, Clock(ctx, c, cfg, time.Now()), OK, "of the chain's latest block", "")
	want(t, Clock(ctx, c, cfg, time.Now().Add(-time.Hour)), Fail, "this clock is 1h0m", FixClockBehind)
	want(t, Clock(ctx, c, cfg, time.Now().Add(time.Hour)), Warn, "the clock runs ahead, or the chain has stalled", FixClockAhead)
	want(t, Clock(ctx, nil, ChainConfig{}, time.Now()), Skip, "no chain configured", "")
	want(t, Clock(ctx, nil, ChainConfig{URL: d.RPCURL, Err: fmt.Errorf("down")}, time.Now()), Skip, "does not answer", "")
}

func TestWallet(t *testing.T) {
	ctx := t.Context()
	d, c := devChain(t)
	cfg := ChainConfig{URL: d.RPCURL, ID: d.ChainID}
	funded := d.Accounts[0].Address
	want(t, Wallet(ctx, c, cfg, funded, nil, DefaultMinBalanceWei), OK, funded.Hex()+" holds", "")
	empty := common.HexToAddress("0x00000000000000000000000000000000000d0c70")
	want(t, Wallet(ctx, c, cfg, empty, nil, DefaultMinBalanceWei), Warn, "holds 0 ETH, less than 0.01 ETH", "send at least 0.01 ETH to "+empty.Hex())
	want(t, Wallet(ctx, c, cfg, common.Address{}, fmt.Errorf("keystore /k holds 0 keys"), DefaultMinBalanceWei), Skip, "no account: keystore /k holds 0 keys", FixNoAccount)
	want(t, Wallet(ctx, nil, ChainConfig{}, funded, nil, DefaultMinBalanceWei), Skip, "no chain configured", "")
}

func TestChainOfDeployment(t *testing.T) {
	d, _ := devChain(t)
	path := filepath.Join(t.TempDir(), "devchain.json")
	if err := devchain.WriteDeployment(path, d); err != nil {
		t.Fatal(err)
	}
	if c := chainOf(market.Config{Deployment: path}); c.URL != d.RPCURL || c.ID != d.ChainID || c.Err != nil {
		t.Errorf("deployment: %+v", c)
	}
	if c := chainOf(market.Config{Deployment: path + ".none"}); c.URL != "" || c.NotConfigured == "" {
		t.Errorf("no deployment file: %+v", c)
	}
	os.WriteFile(path, []byte("{"), 0o600)
	if c := chainOf(market.Config{Deployment: path}); c.Err == nil {
		t.Errorf("broken deployment file: %+v", c)
	}
}

// report writes a signed benchmark report made at created to path.
func report(t *testing.T, path string, created time.Time) {
	t.Helper()
	plan, err := benchmark.NewPlan(benchmark.Quick, benchmark.Capabilities{Precisions: map[benchmark.Class][]benchmark.Precision{benchmark.ClassGEMM: {benchmark.FP32}}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	var rs []benchmark.Result
	for i, p := range plan.Problems {
		ms := float64(i + 1)
		rs = append(rs, benchmark.Result{Problem: p, Device: "cpu", Warmup: 1, Repeats: 3, MinMS: ms * 0.9, MedianMS: ms, MaxMS: ms * 1.3})
	}
	r, err := benchmark.NewReport("cpu", "cpu/1 test", plan, benchmark.Hardware{OS: "linux", CPU: "test cpu", Cores: 2}, rs, created)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	if err := r.Sign(key); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBenchmark(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "last-report.json")
	now := time.Now()
	fix := "gpunode bench --data-dir " + dir
	want(t, Benchmark(path, dir, now), Warn, "no benchmark report", fix)
	report(t, path, now.Add(-24*time.Hour))
	want(t, Benchmark(path, dir, now), OK, "cpu report from", "")
	report(t, path, now.Add(-40*24*time.Hour))
	want(t, Benchmark(path, dir, now), Warn, "is 40 days old", fix)
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 1
	os.WriteFile(path, b, 0o600)
	want(t, Benchmark(path, dir, now), Warn, "does not verify", fix)
}

func TestDaemon(t *testing.T) {
	want(t, Daemon(nil, "/run/gpunode/api.sock"), Skip, "no daemon answers on /run/gpunode/api.sock", "systemctl start gpunode")
	st := &api.Status{State: "running", Checks: []api.Check{{Name: "docker", OK: true}, {Name: "chain", OK: true}}}
	want(t, Daemon(st, ""), OK, "running, its 2 checks pass", "")
	st.Checks[1] = api.Check{Name: "chain", Message: "chain rpc http://127.0.0.1:8545: connection refused: check market.rpc_url"}
	want(t, Daemon(st, ""), Fail, "failing checks: chain", "chain: chain rpc http://127.0.0.1:8545: connection refused: check market.rpc_url")
}
