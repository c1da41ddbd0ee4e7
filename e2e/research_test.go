//go:build integration

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
)

// devchainProcess runs `gpunode devchain` on a free port and returns its deployment file.
func devchainProcess(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "devchain.json")
	cmd := exec.Command(testenv.Binary(t), append([]string{"devchain", "--listen", freeAddr(t), "--out", out}, args...)...)
	var logs testkit.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if fi, err := os.Stat(out); err == nil && fi.Size() > 0 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("devchain wrote no deployment within 60s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestResearcherPostsJob: a daemon on a dev chain, with a wallet, posts a job through
// `gpunode job post`; a malformed manifest is refused before anything is posted, and
// `gpunode job fetch` says when no result exists yet.
func TestResearcherPostsJob(t *testing.T) {
	dep := devchainProcess(t)
	var d struct {
		Accounts []struct {
			Address    string `json:"address"`
			PrivateKey string `json:"private_key"`
		} `json:"accounts"`
	}
	raw, _ := os.ReadFile(dep)
	if err := json.Unmarshal(raw, &d); err != nil || len(d.Accounts) < 4 {
		t.Fatalf("deployment %s: %v", raw, err)
	}
	keystore, pw := importKey(t, t.TempDir(), d.Accounts[1].PrivateKey)
	c := loopbackConfig("127.0.0.1", nil)
	c.Market.Deployment, c.Market.Keystore, c.Market.PasswordFile, c.Market.Confirmations = dep, keystore, pw, 1
	cfg := writeConfig(t, c)
	node := startDaemon(t, "--config", cfg)
	sock := "--api-socket=" + node.socket

	validators := d.Accounts[2].Address + "," + d.Accounts[3].Address
	manifest := filepath.Join(testenv.RepoRoot(t), "job", "testdata", "valid.json")
	// The daemon needs its IPFS on the network before it can add the manifest.
	var out string
	var err error
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err = gpunode(t, "job", "post", manifest, "--validators", validators, "--reward", "1000000000000000000", "--validator-fee", "1000", sock)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil || !strings.Contains(out, "posted job 1") || !strings.Contains(out, "manifest baf") {
		t.Fatalf("job post: %v\n%s\n%s", err, out, node.stderr)
	}
	out, err = gpunode(t, "job", "fetch", "1", filepath.Join(t.TempDir(), "ckpt"), sock)
	if err == nil || !strings.Contains(out, "no result submitted") {
		t.Errorf("fetch before a result: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"version":1,"image":"trainer:latest"}`), 0o644)
	out, err = gpunode(t, "job", "post", bad, "--validators", validators, "--reward", "1", sock)
	if err == nil || !strings.Contains(out, "must be pinned by digest") {
		t.Errorf("malformed manifest: %v\n%s", err, out)
	}
}
