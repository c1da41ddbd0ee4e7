//go:build integration

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/node/api"
)

// TestDaemonPolicy runs a pool member daemon: a signed pool policy pushed through the CLI
// takes effect, a loosening local edit is refused, SIGHUP with a broken file keeps the
// policy in force (log and metric), and cordon/drain/uncordon show in status and metrics.
func TestDaemonPolicy(t *testing.T) {
	dir := t.TempDir()
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := gpunode(t, args...)
		if (err == nil) != wantOK {
			t.Fatalf("gpunode %s: err %v, want ok=%v\n%s", strings.Join(args, " "), err, wantOK, out)
		}
		return out
	}
	run(true, "pool", "keygen", "--dir", dir)
	pub, err := os.ReadFile(filepath.Join(dir, "pool.pub"))
	if err != nil {
		t.Fatal(err)
	}
	poolPolicy := filepath.Join(dir, "pool.toml")
	local := filepath.Join(dir, "local.toml")
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(poolPolicy, "version = 1\n[limits]\nmax_gpus = 4\n")
	write(local, "version = 1\n[limits]\nmax_gpus = 2\n[datasets]\n\"medical-ct\" = [\"*\"]\n")
	c := node.Default()
	c.Policy.File, c.Policy.PoolKey = local, strings.TrimSpace(string(pub))
	config := writeConfig(t, c)
	run(true, "pool", "sign", poolPolicy, "--key", filepath.Join(dir, "pool.key"), "--seq", "3")

	d := startDaemon(t, "--config", config)
	sock := []string{"--api-socket", d.socket}
	manifest := filepath.Join("..", "job", "testdata", "valid.json")

	// A member without its pool's policy takes nothing.
	out := run(false, append([]string{"policy", "check", manifest, "--daemon"}, sock...)...)
	if !strings.Contains(out, "no signed pool policy yet") {
		t.Errorf("check before the pool policy:\n%s", out)
	}
	out = run(true, append([]string{"pool", "push", poolPolicy + ".signed"}, sock...)...)
	if !strings.Contains(out, "seq 3 in force") {
		t.Errorf("push: %s", out)
	}
	out = run(true, append([]string{"policy", "check", manifest, "--daemon"}, sock...)...)
	if !strings.Contains(out, "pass pool limits.max_gpus: job asks for 2 GPUs, limit 4") || !strings.Contains(out, "ALLOW") {
		t.Errorf("check with the pool policy:\n%s", out)
	}

	// A local edit that loosens the pool's is refused; the old local policy stays.
	write(local, "version = 1\n[limits]\nmax_gpus = 8\n")
	out = run(false, append([]string{"policy", "reload"}, sock...)...)
	if !strings.Contains(out, "limits.max_gpus = 8 exceeds the pool's 4") {
		t.Errorf("loosening reload:\n%s", out)
	}
	// SIGHUP with a broken file: the policy in force stays, the log and a metric say why.
	write(local, "version = 1\n[limits\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, d.metrics, `gpunode_policy_reloads_total{result="error"} 2`)
	if !strings.Contains(d.stderr.String(), "policy reload failed; keeping the policy in force") {
		t.Errorf("log does not say the reload failed:\n%s", d.stderr)
	}
	out = run(true, append([]string{"policy", "check", manifest, "--daemon"}, sock...)...)
	if !strings.Contains(out, "pass local limits.max_gpus: job asks for 2 GPUs, limit 2") {
		t.Errorf("check after the broken reload:\n%s", out)
	}

	// Cordon, drain, uncordon.
	status := func() api.Status {
		t.Helper()
		var st api.Status
		if err := json.Unmarshal([]byte(run(true, append([]string{"status", "--json"}, sock...)...)), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if out := run(true, append([]string{"cordon", "--reason", "fan swap"}, sock...)...); !strings.Contains(out, "node cordoned") {
		t.Errorf("cordon: %s", out)
	}
	if st := status(); st.Admission == nil || st.Admission.State != "cordoned" || st.Admission.Reason != "fan swap" {
		t.Errorf("status after cordon: %+v", st.Admission)
	}
	waitMetric(t, d.metrics, `gpunode_node_admission_state{state="cordoned"} 1`)
	if out := run(true, append([]string{"status"}, sock...)...); !strings.Contains(out, "cordoned since") || !strings.Contains(out, "(fan swap)") {
		t.Errorf("status table does not show the cordon:\n%s", out)
	}
	out = run(false, append([]string{"policy", "check", manifest, "--daemon"}, sock...)...)
	if !strings.Contains(out, "FAIL node admission: node is cordoned") {
		t.Errorf("check on a cordoned node:\n%s", out)
	}
	if out := run(true, append([]string{"drain"}, sock...)...); !strings.Contains(out, "node drained") {
		t.Errorf("drain without running jobs: %s", out)
	}
	if out := run(true, append([]string{"uncordon"}, sock...)...); !strings.Contains(out, "node active") {
		t.Errorf("uncordon: %s", out)
	}
	if err, _ := d.stop(t); err != nil {
		t.Errorf("stop: %v\n%s", err, d.stderr)
	}
}

// waitMetric polls /metrics for a line, for at most 20 seconds.
func waitMetric(t *testing.T, addr, line string) {
	t.Helper()
	var body string
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, line) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("metric line %q not found in /metrics", line)
}

// TestPoolPolicyBetweenDaemons: a pool operator pushes a signed policy to one member
// daemon, and another member, connected to it only through the p2p network, gets it over
// the pool's topic; a tampered policy is refused.
func TestPoolPolicyBetweenDaemons(t *testing.T) {
	dir := t.TempDir()
	if out, err := gpunode(t, "pool", "keygen", "--dir", dir); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "pool.pub"))
	if err != nil {
		t.Fatal(err)
	}
	// Each member keeps the signed pool policy it received in a file of its own.
	withPool := func(c node.Config) string {
		c.Policy.PoolKey = strings.TrimSpace(string(pub))
		c.Policy.PoolPolicyFile = filepath.Join(t.TempDir(), "pool.signed")
		return writeConfig(t, c)
	}
	first := startDaemon(t, "--config", withPool(loopbackConfig("127.0.0.1", nil)))
	boot := loopbackAddr(t, first)
	second := startDaemon(t, "--config", withPool(loopbackConfig("127.0.0.2", []string{boot})))

	policyFile := filepath.Join(dir, "pool.toml")
	os.WriteFile(policyFile, []byte("version = 1\n[limits]\nmax_gpus = 4\n"), 0o600)
	if out, err := gpunode(t, "pool", "sign", policyFile, "--key", filepath.Join(dir, "pool.key"), "--seq", "7"); err != nil {
		t.Fatalf("sign: %v\n%s", err, out)
	}
	signed := policyFile + ".signed"
	tampered := filepath.Join(dir, "tampered.signed")
	b, _ := os.ReadFile(signed)
	// A raised sequence number under the old signature: what a forger would try.
	forged := strings.Replace(string(b), `"seq": 7`, `"seq": 8`, 1)
	if forged == string(b) {
		t.Fatalf("signed file has no seq 7 to tamper with:\n%s", b)
	}
	os.WriteFile(tampered, []byte(forged), 0o600)
	if out, err := gpunode(t, "pool", "push", tampered, "--api-socket", first.socket); err == nil {
		t.Errorf("a tampered policy was accepted:\n%s", out)
	}
	if out, err := gpunode(t, "pool", "push", signed, "--api-socket", first.socket); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	ctx := t.Context()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := api.NewClient(second.socket).Policy(ctx)
		if err == nil && st.HasPool && st.PoolSeq == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second member never got the pool policy over the network: %+v %v\n%s", st, err, second.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// loopbackAddr is a daemon's loopback TCP address with its peer ID, for bootstrapping.
func loopbackAddr(t *testing.T, d *daemon) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p, err := api.NewClient(d.socket).P2PPeers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Addrs {
			if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
				return a
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("daemon has no loopback TCP address:\n%s", d.stderr)
	return ""
}
