package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
	config := filepath.Join(dir, "gpunode.toml")
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(poolPolicy, "version = 1\n[limits]\nmax_gpus = 4\n")
	write(local, "version = 1\n[limits]\nmax_gpus = 2\n[datasets]\n\"medical-ct\" = [\"*\"]\n")
	write(config, fmt.Sprintf("[policy]\nfile = %q\npool_key = %q\n", local, strings.TrimSpace(string(pub))))
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
