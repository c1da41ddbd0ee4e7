package ipfs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestFetchResumesAfterKill is acceptance 3 with a real kill: a child process (this
// test binary) fetches from a node of this process and is SIGKILLed once it has
// stored some blocks; a node reopened on its directory finishes the fetch, taking
// every block the dead one stored from disk and only the rest from the network.
func TestFetchResumesAfterKill(t *testing.T) {
	if os.Getenv("GPUNODE_IPFS_CHILD") != "" {
		fetchChild(t)
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srcFile := filepath.Join(t.TempDir(), "dataset.bin")
	writeRandom(t, srcFile, 64<<20, 5) // 256 leaves
	h1 := newHost(t)
	a := newNode(t, "", h1, nil)
	res, err := a.Add(ctx, srcFile, "")
	if err != nil {
		t.Fatal(err)
	}
	root := mustCID(t, res.CID)

	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestFetchResumesAfterKill$", "-test.v")
	child.Env = append(os.Environ(),
		"GPUNODE_IPFS_CHILD=1",
		"GPUNODE_IPFS_DIR="+dir,
		"GPUNODE_IPFS_CID="+res.CID,
		"GPUNODE_IPFS_PEER="+h1.Addrs()[0].String()+"/p2p/"+h1.ID().String())
	out, _ := os.Create(filepath.Join(t.TempDir(), "child.log"))
	child.Stdout, child.Stderr = out, out
	// The child slows itself down (see fetchChild) so the kill lands mid-fetch.
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	blocksDir := filepath.Join(dir, "blocks")
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if n := countFiles(blocksDir); n >= 40 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			log, _ := os.ReadFile(out.Name())
			t.Fatalf("child stored no blocks within 2 minutes:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	child.Process.Kill()
	child.Wait()
	stored := countBlocks(t, blocksDir)
	t.Logf("child killed with %d blocks stored", stored)

	h3 := newHost(t)
	connect(t, h3, addrInfo(h1))
	c := newNode(t, dir, h3, nil)
	path, err := c.Fetch(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, srcFile, filepath.Join(path, res.CID))
	p, _ := c.FetchProgress(root)
	total := countBlocks(t, blocksDir)
	t.Logf("resumed: %d local, %d from network, %d blocks in all", p.Local, p.FromNetwork, total)
	if stored >= total {
		t.Fatalf("the child finished before the kill (%d of %d blocks)", stored, total)
	}
	if p.Local != stored || p.FromNetwork != total-stored {
		t.Errorf("resumed fetch: %d local, %d from network; want %d local, %d from network",
			p.Local, p.FromNetwork, stored, total-stored)
	}
}

// fetchChild is the process that gets killed.
func fetchChild(t *testing.T) {
	dir := os.Getenv("GPUNODE_IPFS_DIR")
	info, err := peer.AddrInfoFromString(os.Getenv("GPUNODE_IPFS_PEER"))
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t)
	connect(t, h, *info)
	n := newNode(t, dir, h, nil)
	n.afterBlock = func(Progress) { time.Sleep(20 * time.Millisecond) }
	_, err = n.Fetch(t.Context(), mustCID(t, os.Getenv("GPUNODE_IPFS_CID")))
	t.Logf("child fetch finished: %v", err)
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".tmp") {
			n++
		}
		return nil
	})
	return n
}
