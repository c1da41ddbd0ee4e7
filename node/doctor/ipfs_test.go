//go:build integration

package doctor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/gpunode/gpunode/internal/testenv"
)

func TestIPFS(t *testing.T) {
	ctx := t.Context()
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
				if kuboID(t.Context(), api) == nil {
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
