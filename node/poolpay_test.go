package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/params"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/pooljobs"
	"github.com/gpunode/gpunode/node/store"
)

// payoutsMarket is a Market acting as dev account i.
func payoutsMarket(t *testing.T, dep devchain.Deployment, depFile string, i int) *market.Market {
	t.Helper()
	dir := t.TempDir()
	w := market.NewWallet(filepath.Join(dir, "ks"), true)
	if _, err := w.ImportHex(dep.Accounts[i].PrivateKey, "pw"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := market.Default()
	cfg.Deployment, cfg.Keystore, cfg.PasswordFile = depFile, w.Dir(), filepath.Join(dir, "pw")
	cfg.CursorFile, cfg.Confirmations, cfg.PollInterval = filepath.Join(dir, "c.json"), 1, 20*time.Millisecond
	m, err := market.New(cfg, quietLog(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// payoutsNode starts a pool node on nw with its chain side mk and its payouts.
func payoutsNode(t *testing.T, nw *p2p.Network, mk *market.Market, edit func(*pool.Config)) (*Node, *api.Client) {
	t.Helper()
	cfg := Default()
	dir := t.TempDir()
	cfg.DataDir, cfg.API.Socket, cfg.Metrics.Listen, cfg.UI.Listen = dir, filepath.Join(dir, "api.sock"), "", ""
	cfg.Pool.Heartbeat, cfg.Pool.HeartbeatBound = configfile.Duration(200*time.Millisecond), configfile.Duration(2*time.Second)
	edit(&cfg.Pool)
	if err := cfg.Check("test"); err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Deps{Market: mk})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.openPool(nw); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(cfg.Layout().State())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.openPoolPay(mk, st, nw.Host()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		st.Close()
	})
	return n, api.NewClient(cfg.API.Socket)
}

// TestPoolPayoutsThroughDaemons: a coordinator daemon deploys its PoolPayouts on start
// (address kept in its data dir); a paid job's split booked in its ledger shows in
// `pool payouts` on the coordinator (every member) and on the member (its own); `pool
// publish` publishes it; `pool claim` on the member claims it (its balance moves by its
// share less gas) and its status says what the pool owes it; the roles' wrong commands
// are refused; the coordinator's metrics show the published total.
func TestPoolPayoutsThroughDaemons(t *testing.T) {
	t.Parallel() // its own dev chain and hosts; the longest of the package's tests
	dep := devchain.StartTest(t, 20*time.Millisecond)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	if err := devchain.WriteDeployment(depFile, dep); err != nil {
		t.Fatal(err)
	}
	coMk, memMk := payoutsMarket(t, dep, depFile, 1), payoutsMarket(t, dep, depFile, 3)
	coNW, memNW := offerNetwork(t, nil, nil, nil), offerNetwork(t, nil, nil, nil)
	if err := memNW.Host().Connect(t.Context(), peer.AddrInfo{ID: coNW.ID(), Addrs: coNW.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	co, coAPI := payoutsNode(t, coNW, coMk, func(c *pool.Config) { c.Coordinator, c.FeeBPS = true, 1000 })
	mem, memAPI := payoutsNode(t, memNW, memMk, func(c *pool.Config) { c.CoordinatorPeer = coNW.ID().String() })
	ctx := t.Context()

	testkit.Eventually(t, 30*time.Second, func() bool {
		m, err := coAPI.PoolMembers(ctx)
		return err == nil && len(m.Members) == 1 && m.Members[0].Account == memMk.Account().Hex()
	}, "the member never reported its account to the coordinator")
	testkit.Eventually(t, 30*time.Second, func() bool {
		_, err := coAPI.PoolPayouts(ctx)
		return err == nil
	}, "the coordinator's payouts never became ready (contract deploy)")
	if _, err := os.Stat(co.cfg.Layout().PoolPayouts()); err != nil {
		t.Fatalf("the deployed contract's address is not kept: %v", err)
	}

	other := common.HexToAddress("0x00000000000000000000000000000000000000b2")
	reward := new(big.Int).Mul(big.NewInt(2), big.NewInt(params.Ether))
	work := []pool.Work{{Member: memMk.Account(), GPUSeconds: 300, Score: 10}, {Member: other, GPUSeconds: 100, Score: 10}}
	if err := co.poolBooker().Book(ctx, "42", reward, work); err != nil {
		t.Fatal(err)
	}
	split, err := pool.Divide(reward, 1000, work)
	if err != nil {
		t.Fatal(err)
	}
	share := pool.Owed(split)[memMk.Account()]

	all, err := coAPI.PoolPayouts(ctx)
	if err != nil || all.Role != "coordinator" || len(all.Shares) != 2 || all.FeeWei != split.Fee.String() {
		t.Fatalf("coordinator's payouts: %+v %v", all, err)
	}
	own, err := memAPI.PoolPayouts(ctx)
	if err != nil || own.Role != "member" || len(own.Shares) != 1 || own.Shares[0].Wei != share.String() || own.Shares[0].State != api.ShareBooked {
		t.Fatalf("member's payouts: %+v %v", own, err)
	}
	if o := mem.Status().PoolOwed; o == nil || o.BookedWei != share.String() {
		t.Fatalf("member's status: %+v", o)
	}

	pub, err := coAPI.PoolPublish(ctx)
	if err != nil || pub.Epoch != 0 || pub.Members != 2 || pub.Jobs != 1 || pub.TxHash == "" {
		t.Fatalf("publish: %+v %v", pub, err)
	}
	if _, err := coAPI.PoolPublish(ctx); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "no booked shares") {
		t.Fatalf("publish with nothing booked: %v", err)
	}
	if _, err := memAPI.PoolPublish(ctx); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Fatalf("publish on a member: %v", err)
	}
	if _, err := coAPI.PoolClaim(ctx); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Fatalf("claim on the coordinator: %v", err)
	}

	before, err := memMk.Balance(ctx, memMk.Account())
	if err != nil {
		t.Fatal(err)
	}
	claim, err := memAPI.PoolClaim(ctx)
	if err != nil || len(claim.Claims) != 1 || claim.TotalWei != share.String() {
		t.Fatalf("claim: %+v %v", claim, err)
	}
	r, err := memMk.Receipt(ctx, common.HexToHash(claim.Claims[0].TxHash))
	if err != nil {
		t.Fatal(err)
	}
	after, _ := memMk.Balance(ctx, memMk.Account())
	gas := new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice)
	if moved := new(big.Int).Sub(after, before); moved.Cmp(new(big.Int).Sub(share, gas)) != 0 {
		t.Fatalf("the member's balance moved by %s, want its share %s less gas %s", moved, share, gas)
	}
	if o := mem.Status().PoolOwed; o == nil || o.ClaimedWei != share.String() || o.BookedWei != "0" || o.PublishedWei != "0" {
		t.Fatalf("member's status after claiming: %+v", o)
	}
	if again, err := memAPI.PoolClaim(ctx); err != nil || len(again.Claims) != 0 {
		t.Fatalf("second claim: %+v %v", again, err)
	}
	all, err = coAPI.PoolPayouts(ctx)
	if err != nil || all.Owed.ClaimedWei != share.String() || all.Owed.PublishedWei != pool.Owed(split)[other].String() {
		t.Fatalf("coordinator's payouts after the claim: %+v %v", all.Owed, err)
	}
	published := new(big.Float).SetInt(new(big.Int).Sub(reward, split.Fee))
	want, _ := published.Float64()
	fee, _ := new(big.Float).SetInt(split.Fee).Float64()
	if err := testutil.GatherAndCompare(co.reg, strings.NewReader(`# HELP gpunode_pool_payouts_wei A pool coordinator's ledger, in wei: members' shares booked (not yet published) and published (in an epoch of its PoolPayouts), and the pool's fees.
# TYPE gpunode_pool_payouts_wei gauge
gpunode_pool_payouts_wei{state="booked"} 0
gpunode_pool_payouts_wei{state="fee"} `+strconv.FormatFloat(fee, 'e', -1, 64)+`
gpunode_pool_payouts_wei{state="published"} `+strconv.FormatFloat(want, 'e', -1, 64)+`
`), "gpunode_pool_payouts_wei"); err != nil {
		t.Fatal(err)
	}
}

// TestPoolBookerWired: the coordinator's job flow books paid jobs in its payouts ledger;
// a member's job side has no Booker (not a typed nil the flow would call).
func TestPoolBookerWired(t *testing.T) {
	dep := devchain.StartTest(t, 20*time.Millisecond)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	if err := devchain.WriteDeployment(depFile, dep); err != nil {
		t.Fatal(err)
	}
	mk := payoutsMarket(t, dep, depFile, 1)
	for _, coordinator := range []bool{true, false} {
		cfg := Default()
		cfg.DataDir = t.TempDir()
		if coordinator {
			cfg.Pool.Coordinator = true
		} else {
			cfg.Pool.CoordinatorPeer = offerNetwork(t, nil, nil, nil).ID().String()
		}
		n, err := New(cfg, quietLog(), Deps{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(cfg.Layout().State())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := n.openPoolPay(mk, st, nil); err != nil {
			t.Fatal(err)
		}
		d := n.workDeps(mk, st, nil, nil)
		if coordinator && (d.Booker == nil || d.Booker != pooljobs.Booker(n.poolBooker())) {
			t.Fatalf("coordinator's flow books in %v, want its ledger", d.Booker)
		}
		if !coordinator && d.Booker != nil {
			t.Fatalf("a member's job side has a Booker %#v", d.Booker)
		}
	}
}
