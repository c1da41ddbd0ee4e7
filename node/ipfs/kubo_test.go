package ipfs

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
)

// kuboBin returns the kubo binary built by scripts/setup.d/40-kubo.sh.
func kuboBin(t testing.TB) string {
	t.Helper()
	testenv.RequireIntegration(t, "kubo")
	p := filepath.Join(testenv.Cache(), "bin", "ipfs")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("kubo not found at %s: build it with `bash scripts/setup.d/40-kubo.sh` (about 7 minutes the first time); %s", p, testenv.Setup)
	}
	return p
}

// kubo is a kubo repository, and a daemon on loopback once started.
type kubo struct {
	t    testing.TB
	bin  string
	repo string
	api  string // http://127.0.0.1:port
	id   peer.ID
	addr peer.AddrInfo
	cmd  *exec.Cmd
	// netns, if set, is the network namespace the daemon runs in.
	netns string
}

// newKubo initializes a repository with the test profile (loopback only, no
// bootstrap peers, no autoconf).
func newKubo(t testing.TB) *kubo {
	t.Helper()
	k := &kubo{t: t, bin: kuboBin(t), repo: t.TempDir()}
	k.run("init", "--profile", "test")
	k.run("config", "Routing.Type", "none")
	return k
}

func (k *kubo) command(args ...string) *exec.Cmd {
	cmd := exec.Command(k.bin, args...)
	cmd.Env = append(os.Environ(), "IPFS_PATH="+k.repo)
	return cmd
}

func (k *kubo) run(args ...string) string {
	k.t.Helper()
	var stderr bytes.Buffer
	cmd := k.command(args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		k.t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// start runs the daemon and waits until its API answers.
func (k *kubo) start() {
	k.t.Helper()
	k.cmd = k.command("daemon", "--offline=false")
	if k.netns != "" {
		k.cmd.Args = append([]string{"ip", "netns", "exec", k.netns}, k.cmd.Args...)
		k.cmd.Path = testenv.LookPath(k.t, "ip", "iproute2")
	}
	logf, err := os.Create(filepath.Join(k.repo, "daemon.log"))
	if err != nil {
		k.t.Fatal(err)
	}
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	if err := k.cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(k.stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(k.repo, "api")); err == nil {
			ma, err := multiaddr.NewMultiaddr(strings.TrimSpace(string(b)))
			if err == nil {
				port, _ := ma.ValueForProtocol(multiaddr.P_TCP)
				ip, err := ma.ValueForProtocol(multiaddr.P_IP4)
				if err != nil {
					ip = "127.0.0.1"
				}
				k.api = "http://" + ip + ":" + port
				var id struct {
					ID        string
					Addresses []string
				}
				if err := k.rpc("id", &id); err == nil && len(id.Addresses) > 0 {
					info, err := peer.AddrInfoFromString(id.Addresses[0])
					if err != nil {
						k.t.Fatal(err)
					}
					k.id, k.addr = info.ID, *info
					return
				}
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(k.repo, "daemon.log"))
			k.t.Fatalf("kubo daemon did not start within 60s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (k *kubo) stop() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	k.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { k.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		k.cmd.Process.Kill()
		<-done
	}
	k.cmd = nil
}

// rpc calls the daemon's RPC API and decodes the answer.
func (k *kubo) rpc(cmd string, out any, args ...string) error {
	c := newKuboClient(k.api)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v := map[string][]string{}
	for i := 0; i+1 < len(args); i += 2 {
		v[args[i]] = append(v[args[i]], args[i+1])
	}
	resp, err := c.call(ctx, cmd, v, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// onlyHash is the reference: `ipfs add --only-hash --cid-version 1 --raw-leaves`.
func (k *kubo) onlyHash(path string) string {
	k.t.Helper()
	return k.run("add", "--only-hash", "--cid-version", "1", "--raw-leaves", "-r", "--hidden", "-Q", path)
}

// newHost is a libp2p host on loopback.
func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func testLogger(t testing.TB) *slog.Logger { return testkit.Logger(t) }

// newNode opens an embedded node in dir (a temporary one if empty) on host h.
func newNode(t testing.TB, dir string, h host.Host, mod func(*Config)) *Node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := Default()
	cfg.Dir = dir
	cfg.SyncWrites = false // tests: durability is not what they check
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg, dir, h, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func connect(t testing.TB, h host.Host, to peer.AddrInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, to); err != nil {
		t.Fatalf("connect to %s: %v", to.ID, err)
	}
}

func addrInfo(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

func writeRandom(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, newPRNG(seed), size); err != nil {
		t.Fatal(err)
	}
}

// prng is a fast deterministic byte stream (xorshift), so big test files are cheap.
type prng struct{ s uint64 }

func newPRNG(seed uint64) *prng { return &prng{s: seed*0x9E3779B97F4A7C15 + 1} }

func (p *prng) Read(b []byte) (int, error) {
	for i := 0; i+8 <= len(b); i += 8 {
		p.s ^= p.s << 13
		p.s ^= p.s >> 7
		p.s ^= p.s << 17
		v := p.s
		b[i], b[i+1], b[i+2], b[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		b[i+4], b[i+5], b[i+6], b[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		p.s ^= p.s << 13
		p.s ^= p.s >> 7
		p.s ^= p.s << 17
		b[i] = byte(p.s)
	}
	return len(b), nil
}
