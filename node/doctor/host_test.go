package doctor

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gpunode/gpunode/node/api"
)

func TestShm(t *testing.T) {
	want(t, Shm("/dev/shm"), OK, "/dev/shm: tmpfs of", "")
	want(t, Shm(filepath.Join(t.TempDir(), "shm")), Fail, "no such file", FixShmMissing)
	// A folder on a disk filesystem is not shared memory.
	var st unix.Statfs_t
	dir := t.TempDir()
	if err := unix.Statfs(dir, &st); err != nil || st.Type == unix.TMPFS_MAGIC {
		t.Fatalf("%s should be on a disk filesystem: %v, type %#x", dir, err, st.Type)
	}
	want(t, Shm(dir), Warn, "is not a tmpfs", FixShmMissing)
	// A tmpfs smaller than Docker's default /dev/shm.
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a small tmpfs (tests run as root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(small, 0) })
	want(t, Shm(small), Warn, "is 1.0 MiB, less than 64.0 MiB", FixShmSmall)
}

func TestDisk(t *testing.T) {
	dir := t.TempDir()
	want(t, Disk(dir, 1, 2), OK, "free on the filesystem of "+dir, "")
	// Before the first start the data directory does not exist: its parent is measured.
	want(t, Disk(filepath.Join(dir, "not", "yet"), 1, 2), OK, "free", "")
	want(t, Disk(dir, 1, 1<<62), Warn, "large jobs will be declined", FixDisk)
	want(t, Disk(dir, 1<<62, 1<<62), Fail, "jobs cannot fetch inputs or write output", FixDisk)
}

// freePort is a loopback port nothing listens on (TCP and UDP).
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func TestListen(t *testing.T) {
	port := freePort(t)
	addrs := []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)}
	want(t, Listen(true, addrs, false), OK, "bindable: "+addrs[0]+", "+addrs[1], "")

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", held.Addr().(*net.TCPAddr).Port)
	want(t, Listen(true, []string{addrs[1], taken}, false), Fail, "cannot bind "+taken, FixListen)

	heldUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer heldUDP.Close()
	takenUDP := fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", heldUDP.LocalAddr().(*net.UDPAddr).Port)
	want(t, Listen(true, []string{takenUDP}, false), Fail, "address already in use", FixListen)

	want(t, Listen(true, []string{"/dns4/example.org/tcp/1"}, false), Fail, "want /ip4/", "correct p2p.listen_addrs")
	want(t, Listen(true, []string{"not a multiaddr"}, false), Fail, "not a multiaddr", "correct p2p.listen_addrs")
	want(t, Listen(true, nil, false), Fail, "listen_addrs is empty", "set p2p.listen_addrs")
	want(t, Listen(false, addrs, false), Skip, "p2p.enabled is false", "")
	want(t, Listen(true, []string{taken}, true), Skip, "the daemon is running", "")
}

func TestReachability(t *testing.T) {
	want(t, Reachability(true, &api.P2PPeers{Reachability: "public", Peers: make([]api.P2PPeer, 3)}), OK, "public, peers dial this rig directly (3 connected)", "")
	want(t, Reachability(true, &api.P2PPeers{Reachability: "private"}), Warn, "cannot dial this rig directly", FixPrivate)
	want(t, Reachability(true, &api.P2PPeers{Reachability: "unknown"}), Skip, "no verdict yet", "")
	want(t, Reachability(true, nil), Skip, "the daemon is not running", "")
	want(t, Reachability(false, nil), Skip, "p2p.enabled is false", "")
}

// FuzzSocketOf: whatever p2p.listen_addrs holds, reading its socket answers without
// panicking, and a socket it returns is one net can bind.
func FuzzSocketOf(f *testing.F) {
	for _, s := range []string{"/ip4/0.0.0.0/tcp/4011", "/ip6/::/udp/4011/quic-v1", "/ip4/127.0.0.1/udp/0/webrtc-direct", "/dns4/x/tcp/1", "/ip4/1.2.3.4", "", "/p2p-circuit", "/ip4/127.0.0.1/tcp/65536"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		network, hostport, err := socketOf(addr)
		if err != nil {
			return
		}
		if network != "tcp" && network != "udp" {
			t.Fatalf("%q: network %q", addr, network)
		}
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			t.Fatalf("%q: socket %q: %v", addr, hostport, err)
		}
	})
}
