//go:build integration

package docker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/errdefs"

	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

// member opens one rig's runtime, as its daemon would: its own instance and state.
func member(t *testing.T) *docker.Runtime {
	d := t.TempDir()
	return openRuntime(t, testConfig(conformance.Options{StateDir: filepath.Join(d, "state"), LogDir: filepath.Join(d, "logs")}))
}

// clusterID names a test's multi-rig job; what a failed run leaves of its network goes.
func clusterID(t *testing.T) string {
	id := fmt.Sprintf("cl%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		cli := engine(t)
		list, _ := cli.NetworkList(context.Background(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", docker.LabelCluster+"="+id))})
		for _, nw := range list {
			cli.NetworkRemove(context.Background(), nw.ID)
		}
	})
	return id
}

// hostListener listens on every host address: a service of the host a job must not reach.
func hostListener(t *testing.T) int {
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// hostAddrs are the host's own non-loopback IPv4 addresses (docker0's among them).
func hostAddrs(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
			out = append(out, p.Addr().String())
		}
	}
	return out
}

func logOf(t *testing.T, rt *docker.Runtime, id string) string {
	rc, err := rt.Logs(t.Context(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// TestClusterMembersReachOnlyEachOther starts a two-rig job's containers through two
// runtimes, as two daemons on one engine would: each gets the rendezvous environment,
// they reach each other on the rendezvous and collective ports, their listeners take
// collective ports, and neither reaches the host's ports, the engine's gateway, another
// address or a name outside.
func TestClusterMembersReachOnlyEachOther(t *testing.T) {
	img := probeImage(t)
	cli := engine(t)
	id := clusterID(t) // first: its cleanup runs after the members' containers are gone
	rt0, rt1 := member(t), member(t)
	port := hostListener(t)
	// Reachable from the test: it is a real service on every host address.
	for _, a := range hostAddrs(t) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(a, strconv.Itoa(port)), time.Second)
		if err != nil {
			t.Fatalf("the host listener does not answer on %s: %v", a, err)
		}
		c.Close()
	}
	var forbidden []string
	for _, a := range append(hostAddrs(t), bridgeGateway(t, cli)...) {
		forbidden = append(forbidden, "tcp:"+net.JoinHostPort(a, strconv.Itoa(port)))
	}
	// (No UDP probe: a UDP send "succeeds" whether or not anything can answer.)
	forbidden = append(forbidden, "tcp:192.0.2.1:80", "dns:example.com")

	spec := func(rank int, verbs ...string) runtime.Spec {
		return runtime.Spec{
			JobID: id, Image: img, RunTimeout: 2 * time.Minute,
			Command:   append([]string{"/probe"}, verbs...),
			Env:       []string{"MASTER_ADDR=203.0.113.9", "RANK=7"}, // the job's own are dropped
			OutputDir: filepath.Join(t.TempDir(), "out"),
			Resources: runtime.Resources{MemoryBytes: 128 << 20, PIDs: 64},
			Cluster:   &runtime.Cluster{ID: id, NodeRank: rank, NNodes: 2, NProcPerNode: 1},
		}
	}
	envVerbs := []string{"env:MASTER_ADDR", "env:MASTER_PORT", "env:WORLD_SIZE", "env:RANK", "env:NODE_RANK", "env:NNODES", "env:NPROC_PER_NODE", "env:GLOO_SOCKET_IFNAME"}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// Rank 1 first: it makes the network, and rank 0's address is fixed by it.
	v1 := append(append([]string{}, envVerbs...), "listen:29610", "listen:0", "tcpretry:$MASTER_ADDR:29500")
	v1 = append(append(v1, forbidden...), "sleep:4s")
	if _, err := rt1.Start(ctx, spec(1, v1...)); err != nil {
		t.Fatal(err)
	}
	nw, err := cli.NetworkInspect(ctx, docker.ClusterNetworkName(id), network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !nw.Internal || nw.Options["com.docker.network.bridge.inhibit_ipv4"] != "true" {
		t.Fatalf("cluster network not locked down: internal %v options %v", nw.Internal, nw.Options)
	}
	subnet := netip.MustParsePrefix(nw.IPAM.Config[0].Subnet)
	addr0, addr1 := docker.ClusterAddr(subnet, 0).String(), docker.ClusterAddr(subnet, 1).String()
	v0 := append(append([]string{}, envVerbs...), "listen:29500", "listen:0", "tcpretry:"+addr1+":29610")
	v0 = append(append(v0, forbidden...), "sleep:4s")
	if _, err := rt0.Start(ctx, spec(0, v0...)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]runtime.Result, 2)
	errs := make([]error, 2)
	for i, rt := range []*docker.Runtime{rt0, rt1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = rt.Wait(ctx, id)
		}()
	}
	wg.Wait()
	for rank, rt := range []*docker.Runtime{rt0, rt1} {
		log := logOf(t, rt, id)
		if errs[rank] != nil || !results[rank].Succeeded() {
			t.Fatalf("rank %d: %+v %v\n%s", rank, results[rank], errs[rank], log)
		}
		for _, want := range []string{
			"env: MASTER_ADDR=" + addr0, "env: MASTER_PORT=29500", "env: WORLD_SIZE=2",
			fmt.Sprintf("env: RANK=%d", rank), fmt.Sprintf("env: NODE_RANK=%d", rank),
			"env: NNODES=2", "env: NPROC_PER_NODE=1", "env: GLOO_SOCKET_IFNAME=eth0",
		} {
			if !strings.Contains(log, want+"\n") {
				t.Errorf("rank %d: log lacks %q:\n%s", rank, want, log)
			}
		}
		peer := addr0 + ":29500"
		if rank == 0 {
			peer = addr1 + ":29610"
		}
		if !strings.Contains(log, "tcpretry: ok "+peer) {
			t.Errorf("rank %d did not reach its peer at %s:\n%s", rank, peer, log)
		}
		// An ephemeral listener (gloo's) gets a collective port.
		m := regexp.MustCompile(`listen: ok \[::\]:(\d+)\n`).FindAllStringSubmatch(log, -1)
		if len(m) != 2 {
			t.Fatalf("rank %d: want two listeners in the log:\n%s", rank, log)
		}
		if p, _ := strconv.Atoi(m[1][1]); p < runtime.DefaultPortBase || p >= runtime.DefaultPortBase+runtime.DefaultPortCount {
			t.Errorf("rank %d: ephemeral listener on port %d, outside the collective ports %d-%d", rank, p, runtime.DefaultPortBase, runtime.DefaultPortBase+runtime.DefaultPortCount-1)
		}
		for _, f := range forbidden {
			verb, target, _ := strings.Cut(f, ":")
			if !strings.Contains(log, verb+": error") || strings.Contains(log, verb+": ok "+target) {
				t.Errorf("rank %d reached %s:\n%s", rank, f, log)
			}
		}
	}
	// The last member out removes the network.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cli.NetworkInspect(t.Context(), docker.ClusterNetworkName(id), network.InspectOptions{})
		if errdefs.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster network still there after both members finished: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A network squatting the cluster's name that is not locked down (a job would get out
// through it) is refused, and left alone.
func TestClusterRefusesOpenNetwork(t *testing.T) {
	img := probeImage(t)
	cli := engine(t)
	id := clusterID(t)
	rt := member(t)
	name := docker.ClusterNetworkName(id)
	if _, err := cli.NetworkCreate(t.Context(), name, network.CreateOptions{Driver: "bridge",
		Labels: map[string]string{docker.LabelCluster: id}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), name) })
	_, err := rt.Start(t.Context(), runtime.Spec{JobID: id, Image: img, Command: []string{"/probe", "echo:out"},
		OutputDir: filepath.Join(t.TempDir(), "out"), Cluster: &runtime.Cluster{ID: id, NNodes: 2, NProcPerNode: 1}})
	if err == nil || !strings.Contains(err.Error(), "not locked down") {
		t.Fatalf("start on an open network: %v, want refused as not locked down", err)
	}
	if _, ierr := cli.NetworkInspect(t.Context(), name, network.InspectOptions{}); ierr != nil {
		t.Fatalf("the squatting network was removed: %v", ierr)
	}
	var exists error = runtime.ErrJobExists
	if errors.Is(err, exists) {
		t.Fatal("wrong error class")
	}
}
