package doctor

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"
	"golang.org/x/sys/unix"

	"github.com/gpunode/gpunode/internal/testenv"
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

func TestIPFS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	want(t, IPFS(ctx, IPFSConfig{Mode: "embedded", Dir: dir}), OK, "embedded store "+dir+" is writable", "")
	want(t, IPFS(ctx, IPFSConfig{Mode: "embedded", Dir: filepath.Join(dir, "ipfs")}), OK, "will be created in "+dir, "")
	// A store whose parent is a file cannot be created, even by root.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	want(t, IPFS(ctx, IPFSConfig{Mode: "embedded", Dir: filepath.Join(file, "ipfs")}), Fail, "cannot write in "+file, "chown -R gpunode: "+file)

	api := startKubo(t)
	want(t, IPFS(ctx, IPFSConfig{Mode: "kubo", KuboAPI: api}), OK, "kubo answers at "+api, "")
	want(t, IPFS(ctx, IPFSConfig{Mode: "kubo", KuboAPI: api + "/not-the-api"}), Fail, "404", FixKubo)
	closed := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	want(t, IPFS(ctx, IPFSConfig{Mode: "kubo", KuboAPI: closed}), Fail, "connection refused", FixKubo)
}

// startKubo runs kubo (built by scripts/setup.d/40-kubo.sh) offline on loopback and
// returns its RPC endpoint once it answers.
func startKubo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(testenv.Cache(), "bin", "ipfs")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kubo not found at %s: build it with `bash scripts/setup.d/40-kubo.sh`; %s", bin, testenv.Setup)
	}
	repo := t.TempDir()
	command := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "IPFS_PATH="+repo)
		return cmd
	}
	for _, args := range [][]string{{"init", "--profile", "test"}, {"config", "Routing.Type", "none"}} {
		if out, err := command(args...).CombinedOutput(); err != nil {
			t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	daemon := command("daemon", "--offline")
	logf, err := os.Create(filepath.Join(repo, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	daemon.Stdout, daemon.Stderr = logf, logf
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Process.Kill(); daemon.Wait(); logf.Close() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(repo, "api")); err == nil {
			if ma, err := multiaddr.NewMultiaddr(strings.TrimSpace(string(b))); err == nil {
				port, _ := ma.ValueForProtocol(multiaddr.P_TCP)
				api := "http://127.0.0.1:" + port
				if kuboID(context.Background(), api) == nil {
					return api
				}
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(repo, "daemon.log"))
			t.Fatalf("kubo did not answer within 60s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
