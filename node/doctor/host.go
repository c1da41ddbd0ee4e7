package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/multiformats/go-multiaddr"
	"golang.org/x/sys/unix"

	"github.com/gpunode/gpunode/runtime/docker"
)

// Fixes of the host checks.
const (
	FixDocker     = "start dockerd (systemctl start docker) or set runtime.host to the engine's socket; a node not running as root must be in the docker group"
	FixShmMissing = "mount a tmpfs on /dev/shm (systemd's dev-shm.mount, or: mount -t tmpfs -o mode=1777 tmpfs /dev/shm)"
	FixShmSmall   = "give /dev/shm more room: mount -o remount,size=1G /dev/shm (and the same in /etc/fstab)"
	FixDisk       = "free space on that filesystem, or move data_dir to a larger disk"
	FixQuota      = "run the node as root with mkfs.ext4 installed (apt install e2fsprogs) and runtime.output_quota = \"auto\" or \"loop\", so each job's output is a size-limited filesystem"
	FixListen     = "stop the program holding the port (ss -tulpn | grep PORT shows it) or choose another port in p2p.listen_addrs"
	FixIPFSDir    = "make the folder writable by the node's user (chown -R gpunode: DIR) or set ipfs.dir"
	FixKubo       = "start kubo (ipfs daemon) or point ipfs.kubo_api at its RPC endpoint, or set ipfs.mode = \"embedded\""
)

// Pinger asks the container engine whether it answers (runtime/docker).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Docker checks that the engine answers: openErr is how connecting failed, if it did.
func Docker(ctx context.Context, p Pinger, openErr error) Result {
	const name = "docker"
	err := openErr
	if err == nil {
		ctx, cancel := bounded(ctx)
		defer cancel()
		err = p.Ping(ctx)
	}
	if err != nil {
		return Result{Name: name, Status: Fail, Detail: err.Error(), Fix: FixDocker}
	}
	return ok(name, "the Docker Engine answers")
}

// MinShmBytes is the smallest /dev/shm that is not a warning: Docker's own default for a
// container.
const MinShmBytes = 64 << 20

// Shm checks the host's /dev/shm (path): present, a tmpfs, not tiny.
func Shm(path string) Result {
	const name = "dev-shm"
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s: %v", path, err), Fix: FixShmMissing}
	}
	size := uint64(st.Blocks) * uint64(st.Bsize)
	if st.Type != unix.TMPFS_MAGIC {
		return Result{Name: name, Status: Warn, Detail: fmt.Sprintf("%s is not a tmpfs (filesystem type %#x)", path, st.Type), Fix: FixShmMissing}
	}
	if size < MinShmBytes {
		return Result{Name: name, Status: Warn, Detail: fmt.Sprintf("%s is %s, less than %s", path, bytesText(size), bytesText(MinShmBytes)), Fix: FixShmSmall}
	}
	return ok(name, "%s: tmpfs of %s", path, bytesText(size))
}

// Disk checks the free space of the filesystem holding dir (or, before the node first
// ran, its nearest existing parent): below failBelow bytes jobs cannot run, below
// warnBelow large ones will not fit.
func Disk(dir string, failBelow, warnBelow uint64) Result {
	const name = "disk"
	at := existingParent(dir)
	var st unix.Statfs_t
	if err := unix.Statfs(at, &st); err != nil {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s: %v", at, err), Fix: FixDisk}
	}
	free := st.Bavail * uint64(st.Bsize)
	detail := fmt.Sprintf("%s free on the filesystem of %s", bytesText(free), dir)
	switch {
	case free < failBelow:
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s, less than %s: jobs cannot fetch inputs or write output", detail, bytesText(failBelow)), Fix: FixDisk}
	case free < warnBelow:
		return Result{Name: name, Status: Warn, Detail: fmt.Sprintf("%s, less than %s: large jobs will be declined", detail, bytesText(warnBelow)), Fix: FixDisk}
	}
	return ok(name, "%s", detail)
}

func existingParent(dir string) string {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
			return p
		}
	}
}

// QuotaReader says how job output caps are enforced here (runtime/docker).
type QuotaReader interface {
	QuotaMode() (mode, note string)
}

// Quota checks that job output gets a hard size limit (loop mode).
func Quota(q QuotaReader) Result {
	const name = "output-quota"
	mode, note := q.QuotaMode()
	if mode == docker.QuotaLoop {
		return ok(name, "loop: each job writes its output to a filesystem of its cap")
	}
	return Result{Name: name, Status: Warn, Detail: mode + ": " + note, Fix: FixQuota}
}

// Listen checks that the p2p listen addresses can be bound. While the daemon runs they
// are its own, and are not checked.
func Listen(enabled bool, addrs []string, daemonRunning bool) Result {
	const name = "p2p-listen"
	switch {
	case !enabled:
		return skip(name, "p2p.enabled is false: the node is not on the network")
	case daemonRunning:
		return skip(name, "the daemon is running and holds its listen ports (gpunode peers shows its addresses)")
	case len(addrs) == 0:
		return Result{Name: name, Status: Fail, Detail: "p2p.listen_addrs is empty: no peer can reach this rig", Fix: "set p2p.listen_addrs, e.g. [\"/ip4/0.0.0.0/tcp/4011\", \"/ip4/0.0.0.0/udp/4011/quic-v1\"]"}
	}
	var free, busy []string
	for _, a := range addrs {
		network, hostport, err := socketOf(a)
		if err != nil {
			return Result{Name: name, Status: Fail, Detail: err.Error(), Fix: "correct p2p.listen_addrs"}
		}
		if err := bind(network, hostport); err != nil {
			if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) {
				// An address family the host does not have (IPv6 off): libp2p skips it too.
				continue
			}
			busy = append(busy, fmt.Sprintf("%s (%v)", a, err))
			continue
		}
		free = append(free, a)
	}
	if len(busy) > 0 {
		return Result{Name: name, Status: Fail, Detail: "cannot bind " + strings.Join(busy, ", "), Fix: FixListen}
	}
	if len(free) == 0 {
		return Result{Name: name, Status: Fail, Detail: "no address of p2p.listen_addrs exists on this host", Fix: "listen on 0.0.0.0 or an address of this host in p2p.listen_addrs"}
	}
	return ok(name, "bindable: %s", strings.Join(free, ", "))
}

// socketOf reads the transport socket of a listen multiaddr: "/ip4/0.0.0.0/tcp/4011"
// is tcp 0.0.0.0:4011, "/ip6/::/udp/4011/quic-v1" udp [::]:4011.
func socketOf(addr string) (network, hostport string, err error) {
	ma, err := multiaddr.NewMultiaddr(addr)
	if err != nil {
		return "", "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	host, err := ma.ValueForProtocol(multiaddr.P_IP4)
	if err != nil {
		if host, err = ma.ValueForProtocol(multiaddr.P_IP6); err != nil {
			return "", "", fmt.Errorf("listen address %q: want /ip4/… or /ip6/…", addr)
		}
	}
	if port, err := ma.ValueForProtocol(multiaddr.P_TCP); err == nil {
		return "tcp", net.JoinHostPort(host, port), nil
	}
	if port, err := ma.ValueForProtocol(multiaddr.P_UDP); err == nil {
		return "udp", net.JoinHostPort(host, port), nil
	}
	return "", "", fmt.Errorf("listen address %q: want a /tcp/ or /udp/ port", addr)
}

func bind(network, hostport string) error {
	if network == "tcp" {
		l, err := net.Listen(network, hostport)
		if err != nil {
			return err
		}
		return l.Close()
	}
	c, err := net.ListenPacket(network, hostport)
	if err != nil {
		return err
	}
	return c.Close()
}

// IPFSConfig is what the IPFS check reads of the node's [ipfs] section.
type IPFSConfig struct {
	// Mode is "embedded" or "kubo".
	Mode string
	// Dir is the embedded store's folder (absolute).
	Dir string
	// KuboAPI is kubo's RPC endpoint in kubo mode.
	KuboAPI string
}

// IPFS checks the embedded store's folder is writable, or that kubo's API answers.
func IPFS(ctx context.Context, cfg IPFSConfig) Result {
	const name = "ipfs"
	if cfg.Mode == "kubo" {
		ctx, cancel := bounded(ctx)
		defer cancel()
		if err := kuboID(ctx, cfg.KuboAPI); err != nil {
			return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("kubo at %s: %v", cfg.KuboAPI, err), Fix: FixKubo}
		}
		return ok(name, "kubo answers at %s", cfg.KuboAPI)
	}
	at := existingParent(cfg.Dir)
	f, err := os.CreateTemp(at, ".gpunode-doctor-*")
	if err != nil {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("embedded store %s: cannot write in %s: %v", cfg.Dir, at, err), Fix: strings.ReplaceAll(FixIPFSDir, "DIR", at)}
	}
	f.Close()
	os.Remove(f.Name())
	if at != filepath.Clean(cfg.Dir) {
		return ok(name, "embedded store %s will be created in %s (writable)", cfg.Dir, at)
	}
	return ok(name, "embedded store %s is writable", cfg.Dir)
}

// kuboID asks kubo for its identity: the cheapest call that proves its API answers.
func kuboID(ctx context.Context, api string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(api, "/")+"/api/v0/id", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ID"`) {
		return fmt.Errorf("POST /api/v0/id: %s", resp.Status)
	}
	return nil
}

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
