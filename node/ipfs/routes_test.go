//go:build integration

package ipfs_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/apiserver"
	. "github.com/gpunode/gpunode/node/ipfs"
)

var (
	newHost     = NewHostForTest
	newNode     = NewNodeForTest
	connect     = ConnectForTest
	addrInfo    = AddrInfoForTest
	writeRandom = WriteRandomForTest
	sameFile    = SameFileForTest
	testLogger  = TestLoggerForTest
)

// TestCLIThroughAPI runs `gpunode ipfs add|get|pins` against the daemon's route table
// serving this component.
func TestCLIThroughAPI(t *testing.T) {
	bin := testenv.Binary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	h1, h2 := newHost(t), newHost(t)
	src := newNode(t, "", h1, nil)
	n := newNode(t, "", h2, nil)
	connect(t, h2, addrInfo(h1))

	sock := filepath.Join(t.TempDir(), "api.sock")
	srv, err := apiserver.New(api.Config{Socket: sock}, testLogger(t), node.Routes(node.Backends{IPFS: n}, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() { stop(); <-done })

	gpunode := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append([]string{"ipfs", "--api-socket", sock}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gpunode ipfs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}

	file := filepath.Join(t.TempDir(), "out.bin")
	writeRandom(t, file, 600<<10, 51)
	c := gpunode("add", "--name", "run-7", file)
	want, _ := Hash(ctx, file)
	if c != want.String() {
		t.Fatalf("gpunode ipfs add printed %q, want %s", c, want)
	}
	if pins := gpunode("pins"); !strings.Contains(pins, c) || !strings.Contains(pins, "run-7") {
		t.Errorf("gpunode ipfs pins:\n%s", pins)
	}

	// get: content that only the other node has, fetched over bitswap.
	other := t.TempDir()
	writeRandom(t, filepath.Join(other, "data.bin"), 1<<20, 52)
	res, err := src.Add(ctx, other, "")
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	gpunode("get", res.CID, dst)
	sameFile(t, filepath.Join(other, "data.bin"), filepath.Join(dst, "data.bin"))

	// Content goes over the socket both ways: a directory added through the CLI has
	// the CID of the same directory added in place, and a file CID is written as
	// DIR/<cid>.
	if dirCID := gpunode("add", other); dirCID != res.CID {
		t.Errorf("directory added through the CLI: %s, in place: %s", dirCID, res.CID)
	}
	fileDst := filepath.Join(t.TempDir(), "file")
	gpunode("get", c, fileDst)
	sameFile(t, file, filepath.Join(fileDst, c))

	// Errors come back as messages.
	cmd := exec.CommandContext(ctx, bin, "ipfs", "--api-socket", sock, "get", "not-a-cid", dst)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cid") {
		t.Errorf("get of a bad CID: err %v, output %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dst, "data.bin")); err != nil {
		t.Error(err)
	}

	// unpin + gc frees the added file's blocks.
	gpunode("unpin", c)
	if out := gpunode("gc"); !strings.HasPrefix(out, "removed ") || strings.HasPrefix(out, "removed 0 ") {
		t.Errorf("gpunode ipfs gc: %q", out)
	}
	if pins := gpunode("pins"); strings.Contains(pins, c) {
		t.Errorf("still pinned after unpin:\n%s", pins)
	}
}
