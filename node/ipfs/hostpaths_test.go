package ipfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node/api"
)

// hostPaths calls the host-path methods as the control API's routes do.
type hostPaths struct{ n *Node }

func (h hostPaths) IPFSAdd(ctx context.Context, path, name string) (AddResult, error) {
	return h.n.AddHostPath(ctx, api.IPFSAddRequest{Path: path, Name: name})
}

func (h hostPaths) IPFSGet(ctx context.Context, cid, dir string) (Progress, error) {
	return h.n.GetHostPath(ctx, api.IPFSGetRequest{CID: cid, Dir: dir})
}

func serveAPI(_ *testing.T, n *Node) hostPaths { return hostPaths{n} }

// TestHostPathRoutes plays a local user of the control socket who asks the daemon to
// publish the node's keys (add) or to write where the daemon may (get): every such
// request is refused, and nothing of the node's state ends up in the blockstore.
func TestHostPathRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	state := t.TempDir() // the node's data dir
	keystore := filepath.Join(state, "keystore")
	identity := filepath.Join(state, "p2p", "identity.key")
	password := filepath.Join(t.TempDir(), "password")
	for _, f := range []string{filepath.Join(keystore, "UTC--key"), identity, password} {
		os.MkdirAll(filepath.Dir(f), 0o700)
		if err := os.WriteFile(f, []byte("secret of "+filepath.Base(f)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	shared := t.TempDir() // the operator's listed folder
	os.WriteFile(filepath.Join(shared, "ok.txt"), []byte("public"), 0o644)
	os.Symlink(keystore, filepath.Join(shared, "keys"))
	os.Symlink(identity, filepath.Join(shared, "id"))
	os.Symlink(password, filepath.Join(shared, "pw"))
	os.Symlink(filepath.Dir(shared), filepath.Join(shared, "up"))

	off := newNode(t, filepath.Join(state, "ipfs"), newHost(t), nil)
	cOff := serveAPI(t, off)
	if _, err := cOff.IPFSAdd(ctx, filepath.Join(shared, "ok.txt"), ""); err == nil || !strings.Contains(err.Error(), "ipfs.host_paths") {
		t.Errorf("add with no host_paths = %v; want refused, naming ipfs.host_paths", err)
	}

	n := newNode(t, filepath.Join(state, "ipfs"), newHost(t), func(c *Config) { c.HostPaths = []string{shared, state} })
	n.Protect(state, keystore, password)
	c := serveAPI(t, n)
	for _, p := range []string{
		keystore, filepath.Join(keystore, "UTC--key"), identity, password, state,
		filepath.Join(shared, "keys"), filepath.Join(shared, "keys", "UTC--key"), filepath.Join(shared, "id"),
		filepath.Join(shared, "pw"), filepath.Join(shared, "up"), filepath.Dir(shared),
		"/etc/passwd", "relative/path",
	} {
		t.Run("add "+p, func(t *testing.T) {
			testenv.Attack(t, "api", "POST /v1/ipfs/add "+p)
			if res, err := c.IPFSAdd(ctx, p, ""); err == nil {
				t.Errorf("add %s = %s; want refused", p, res.CID)
			} else if !errors.Is(err, api.ErrForbidden) {
				t.Errorf("add %s: %v; want api.ErrForbidden", p, err)
			}
		})
	}
	if res, err := c.IPFSAdd(ctx, filepath.Join(shared, "ok.txt"), ""); err != nil {
		t.Errorf("add of a file in a listed folder: %v", err)
	} else if res.Bytes != int64(len("public")) {
		t.Errorf("added %d bytes, want %d", res.Bytes, len("public"))
	}
	// Nothing secret reached the blockstore.
	filepath.WalkDir(filepath.Join(state, "ipfs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, _ := os.ReadFile(p); strings.Contains(string(b), "secret of") {
			t.Errorf("the blockstore holds a secret in %s", p)
		}
		return nil
	})

	okCID, err := Hash(ctx, filepath.Join(shared, "ok.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(state, "p2p"), keystore, filepath.Join(shared, "keys"), "/etc", filepath.Join(filepath.Dir(shared), "x")} {
		t.Run("get "+d, func(t *testing.T) {
			testenv.Attack(t, "api", "POST /v1/ipfs/get into "+d)
			if _, err := c.IPFSGet(ctx, okCID.String(), d); err == nil {
				t.Errorf("get into %s succeeded; want refused", d)
			}
			if _, err := os.Stat(filepath.Join(d, okCID.String())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("get wrote into %s", d)
			}
		})
	}
	if _, err := c.IPFSGet(ctx, okCID.String(), filepath.Join(shared, "got")); err != nil {
		t.Errorf("get into a listed folder: %v", err)
	}
}
