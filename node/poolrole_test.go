package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/pool"
)

// poolNode starts a node whose pool role runs on nw; its control API is on a socket.
func poolNode(t *testing.T, nw *p2p.Network, edit func(*pool.Config), deps Deps) (*Node, *api.Client, func()) {
	t.Helper()
	cfg := Default()
	dir := t.TempDir()
	cfg.DataDir, cfg.API.Socket, cfg.Metrics.Listen, cfg.UI.Listen = dir, filepath.Join(dir, "api.sock"), "", ""
	cfg.Pool.Heartbeat, cfg.Pool.HeartbeatBound = configfile.Duration(200*time.Millisecond), configfile.Duration(2*time.Second)
	edit(&cfg.Pool)
	if err := cfg.Check("test"); err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.openPool(nw); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, nil) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stop)
	return n, api.NewClient(cfg.API.Socket), stop
}

// A member daemon reports to its coordinator daemon over libp2p; `gpunode pool members`'s
// route lists it alive with its payout account; the member, which has no job side here
// (no chain, runtime or IPFS), refuses dispatched jobs with the reason; once the member
// stops, the coordinator lists it gone within the heartbeat bound.
func TestPoolMembersThroughDaemons(t *testing.T) {
	t.Parallel() // its own dev chain and hosts; the longest of the package's tests
	coNW := offerNetwork(t, nil, nil, nil)
	memNW := offerNetwork(t, nil, nil, nil)
	if err := memNW.Host().Connect(t.Context(), peer.AddrInfo{ID: coNW.ID(), Addrs: coNW.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	co, client, _ := poolNode(t, coNW, func(c *pool.Config) { c.Coordinator = true }, Deps{})
	const account = "0x00000000000000000000000000000000000000A1"
	_, _, stopMember := poolNode(t, memNW, func(c *pool.Config) { c.CoordinatorPeer = coNW.ID().String() },
		Deps{Market: fakeMarket{st: api.MarketStatus{ChainID: 1337, Account: account, Connected: true}}})

	var members api.PoolMembers
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		members, err = client.PoolMembers(t.Context())
		if err == nil && len(members.Members) == 1 && members.Members[0].Alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member not listed alive within 20s: %+v %v", members, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := members.Members[0]
	if members.Coordinator != coNW.ID().String() || m.PeerID != memNW.ID().String() || !strings.EqualFold(m.Account, account) || m.Admission != "active" {
		t.Fatalf("members %+v", members)
	}
	ack, err := co.poolCoordinator.Dispatch(t.Context(), memNW.ID(), pool.Dispatch{JobID: "7", ManifestCID: "bafkreigh2akiscaildc",
		ManifestHash: strings.Repeat("ab", 32), Deadline: time.Now().Add(time.Hour).Unix()})
	if err != nil || ack.Accepted || !strings.Contains(ack.Reason, "this member takes no jobs") {
		t.Fatalf("dispatch to the member: %+v %v", ack, err)
	}

	stopMember()
	deadline = time.Now().Add(2*time.Second + 10*time.Second)
	for {
		members, err := client.PoolMembers(t.Context())
		if err == nil && len(members.Members) == 1 && !members.Members[0].Alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stopped member still alive: %+v %v", members, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A node outside any pool answers the members route with not_found, saying how to turn
// the coordinator on.
func TestPoolMembersOffOutsideAPool(t *testing.T) {
	nw := offerNetwork(t, nil, nil, nil)
	_, client, _ := poolNode(t, nw, func(*pool.Config) {}, Deps{})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := client.PoolMembers(t.Context())
		if errors.Is(err, api.ErrNotFound) && strings.Contains(err.Error(), "coordinator = true") {
			return
		}
		if time.Now().After(deadline) { // the socket is up by then; the answer is wrong
			t.Fatalf("members outside a pool: %v, want not_found naming [pool] coordinator", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A member reports in its heartbeats the tags of the datasets its policy shares — not a
// dataset its policy keeps to itself, nor a tag its policy names but the rig lacks, and
// never a path.
func TestPoolInventoryReportsSharedDatasetTags(t *testing.T) {
	cfg := Default()
	dir := t.TempDir()
	cfg.DataDir, cfg.API.Socket, cfg.Metrics.Listen, cfg.UI.Listen = dir, filepath.Join(dir, "api.sock"), "", ""
	data := t.TempDir()
	cfg.Datasets = map[string]string{"medical-ct": data, "genomes": data, "private": data}
	cfg.Policy.File = filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(cfg.Policy.File, []byte("version = 1\n[datasets]\n\"medical-ct\" = [\"*\"]\ngenomes = [\"0x1111111111111111111111111111111111111111\"]\nabsent = [\"*\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check("test"); err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	hb := n.poolInventory()
	if got := strings.Join(hb.Datasets, ","); got != "genomes,medical-ct" {
		t.Fatalf("heartbeat datasets %q, want genomes,medical-ct", got)
	}
	if strings.Contains(fmt.Sprint(hb), data) {
		t.Fatalf("heartbeat %+v holds a dataset's path", hb)
	}
}
