//go:build integration

package ipfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/gpunode/gpunode/internal/testenv"
)

// testNet is a network namespace the test makes, joined to this one by a veth pair: a
// private /24 with this side at .1 and the namespace at .2. The public DHT ignores
// loopback addresses, even on its LAN side, so its test needs hosts with real (private)
// addresses; the namespace keeps every packet on this machine.
type testNet struct{ name, here, there string }

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	ip := testenv.LookPath(t, "ip", "iproute2")
	if os.Geteuid() != 0 {
		t.Fatal("creating a network namespace needs root: run the tests as root (make test does, as CI)")
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// Namespaces left by a test process that was killed: their names carry its pid.
	if out, err := exec.Command(ip, "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			var pid int
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "gpnt") {
				if _, err := fmt.Sscanf(f[0], "gpnt%d", &pid); err == nil && pid != os.Getpid() && exec.Command("kill", "-0", fmt.Sprint(pid)).Run() != nil {
					exec.Command(ip, "netns", "del", f[0]).Run()
				}
			}
		}
	}
	pid := os.Getpid()
	n := &testNet{name: fmt.Sprintf("gpnt%d", pid)}
	subnet := fmt.Sprintf("10.231.%d", 16+pid%200)
	n.here, n.there = subnet+".1", subnet+".2"
	veth, peerVeth := fmt.Sprintf("gpv%da", pid), fmt.Sprintf("gpv%db", pid)
	run("netns", "add", n.name)
	t.Cleanup(func() {
		exec.Command(ip, "link", "del", veth).Run()
		exec.Command(ip, "netns", "del", n.name).Run()
	})
	run("link", "add", veth, "type", "veth", "peer", "name", peerVeth)
	run("link", "set", peerVeth, "netns", n.name)
	run("addr", "add", n.here+"/24", "dev", veth)
	run("link", "set", veth, "up")
	run("netns", "exec", n.name, "ip", "addr", "add", n.there+"/24", "dev", peerVeth)
	run("netns", "exec", n.name, "ip", "link", "set", peerVeth, "up")
	run("netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	return n
}

// kuboIn starts a kubo daemon with the DHT on (kubo's own dual DHT) in the namespace.
func kuboIn(t *testing.T, n *testNet) *kubo {
	t.Helper()
	k := &kubo{t: t, bin: kuboBin(t), repo: t.TempDir(), netns: n.name}
	k.run("init", "--profile", "test")
	k.run("config", "Routing.Type", "dht")
	k.run("config", "--json", "Addresses.Swarm", `["/ip4/`+n.there+`/tcp/0"]`)
	k.run("config", "Addresses.API", "/ip4/"+n.there+"/tcp/0")
	k.start()
	return k
}

func hostOn(t *testing.T, ip string) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/" + ip + "/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// findProviders asks k's DHT for the providers of c; the query ends when the DHT has
// asked every close peer, so an empty answer is a complete one.
func findProviders(t *testing.T, k *kubo, c string) string {
	t.Helper()
	cmd := k.command("--timeout=30s", "routing", "findprovs", "--num-providers=5", c)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestPublicDHT: with public_dht on, content the node adds is found by a plain kubo
// through the DHT that kubo peers form among themselves (`ipfs routing findprovs`), as a
// researcher's kubo or a gateway would find a checkpoint; with it off, it is not.
func TestPublicDHT(t *testing.T) {
	tn := newTestNet(t)
	a, b := kuboIn(t, tn), kuboIn(t, tn)
	aAddr := a.addr.Addrs[0].String() + "/p2p/" + a.id.String()
	b.run("swarm", "connect", aAddr)

	pub := newNode(t, "", hostOn(t, tn.here), func(c *Config) {
		c.PublicDHT = PublicDHTOn
		c.PublicBootstrapPeers = []string{aAddr}
	})
	off := newNode(t, "", hostOn(t, tn.here), func(c *Config) { c.PublicDHT = PublicDHTOff })
	connect(t, off.host, a.addr)

	deadline := time.Now().Add(90 * time.Second)
	for pub.PublicPeers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the public DHT found no peer within 90s of bootstrapping from a kubo peer")
		}
		time.Sleep(100 * time.Millisecond)
	}

	dir := t.TempDir()
	add := func(n *Node, name string, seed uint64) string {
		path := filepath.Join(dir, name)
		writeRandom(t, path, 64<<10, seed)
		res, err := n.Add(t.Context(), path, name)
		if err != nil {
			t.Fatal(err)
		}
		return res.CID
	}
	hidden := add(off, "hidden.bin", 2)
	published := add(pub, "checkpoint.bin", 1)

	var got string
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(got, pub.host.ID().String()); {
		if time.Now().After(deadline) {
			t.Fatalf("kubo did not find the node as a provider of %s within 2 minutes: %q", published, got)
		}
		got = findProviders(t, b, published)
	}
	// The DHT works: a node with the public DHT off is not announced there.
	if got := findProviders(t, b, hidden); strings.Contains(got, off.host.ID().String()) {
		t.Errorf("content of a node with public_dht off was announced on the public DHT: %q", got)
	}
}
