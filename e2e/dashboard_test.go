//go:build integration

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node/jobs"
)

// artifactsDir is where the dashboard test writes its screenshots (the README names it):
// $GPUNODE_TEST_ARTIFACTS/dashboard, by default var/test-artifacts/dashboard in the repo.
func artifactsDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("GPUNODE_TEST_ARTIFACTS")
	if base == "" {
		base = filepath.Join(testenv.RepoRoot(t), "var", "test-artifacts")
	}
	dir := filepath.Join(base, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts Debian's chromium, headless, with nothing reaching outside this machine.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := testenv.LookPath(t, "chromium", "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1400, 1000))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first run starts the browser, which lives as long as ctx: no timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// page opens the dashboard at url#hash, waits until it has rendered that page, saves a
// screenshot as NAME.png and returns the text of selector.
func page(t *testing.T, ctx context.Context, url, hash, selector, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	name0 := strings.SplitN(hash, "/", 2)[0]
	err := chromedp.Do(ctx, chromedp.Navigate(url+"/#"+hash), chromedp.WaitReady(chromedp.CSS(`body[data-loaded="`+name0+`"]`)))
	if err != nil {
		t.Fatalf("dashboard #%s: %v", hash, err)
	}
	if strings.Contains(hash, "/") { // a detail part renders after the list
		if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS(selector+" table"))); err != nil {
			t.Fatalf("dashboard #%s: %v", hash, err)
		}
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("dashboard #%s: text of %s: %v", hash, selector, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("dashboard #%s: screenshot: %v", hash, err)
	}
	path := filepath.Join(artifactsDir(t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
	return text
}

func wantText(t *testing.T, where, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s does not show %q:\n%s", where, w, text)
		}
	}
}

// TestDashboard loads every page of the web dashboard in a real browser: a simulated
// 8×A100 rig for the GPUs' live telemetry, then the provider of a running job loop with
// one job paid and one still training.
func TestDashboard(t *testing.T) {
	ctx := browser(t)

	t.Run("rig", func(t *testing.T) {
		addr := freeAddr(t)
		startDaemon(t, "--simulate-gpus", "dgxa100", "--ui-listen", addr)
		url := "http://" + addr
		text := page(t, ctx, url, "rig", "#page-rig", "rig")
		wantText(t, "the rig page", text, "simulated", "A100", "GPU-", "healthy", " %", " °C", " W", " GiB")
		if rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#gpus tbody tr").length`)); err != nil || rows != 8 {
			t.Errorf("%d GPU rows (%v), want 8", rows, err)
		}
		// Live: the page refreshes itself.
		first, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#updated")))
		deadline := time.Now().Add(20 * time.Second)
		for {
			later, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#updated")))
			if later != first && later != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page did not refresh within 20s (%q)", first)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Before any `gpunode doctor`, its page says how to get verdicts.
		text = page(t, ctx, url, "doctor", "#page-doctor", "doctor-none")
		wantText(t, "the doctor page before any run", text, "has not run", "gpunode doctor")
		// Nothing the browser can send changes the node: the API behind the page is GET only.
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/api/v1/policy/drain", {method: "POST"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
		if err != nil || status != 405 {
			t.Errorf("POST through the dashboard: %d %v, want 405", status, err)
		}
	})

	t.Run("job loop", func(t *testing.T) {
		l := startLoop(t)
		addr := freeAddr(t)
		l.provider.d.stop(t)
		l.provider.d = startDaemonIn(t, l.provider.dir, "--config", l.provider.cfg, "--ui-listen", addr)
		url := "http://" + addr

		paidID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
			m["command"] = []any{"/trainer", "-data", "/data/digits.csv.gz", "-out", "/out", "-epochs", "5"}
		}), "10m")
		l.wait(t, paidID, 4*time.Minute, jobs.Paid)
		runningID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
			m["command"] = []any{"/trainer", "-data", "/data/digits.csv.gz", "-out", "/out", "-epochs", "100000"}
		}), "10m")
		l.wait(t, runningID, 3*time.Minute, jobs.Running)

		text := page(t, ctx, url, "jobs", "#jobs", "jobs")
		wantText(t, "the jobs page", text, paidID, "paid", runningID, "running", "1 ETH")
		text = page(t, ctx, url, "jobs/"+runningID, "#job-detail", "job-running")
		wantText(t, "the running job's page", text, "Job "+runningID+": running", "accepted", "preparing", "running", "Log (end)")
		if log, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#job-log"))); err != nil || strings.TrimSpace(log) == "" {
			t.Errorf("no log tail for the running job (%v)", err)
		}
		text = page(t, ctx, url, "earnings", "#page-earnings", "earnings")
		wantText(t, "the earnings page", text, "1 ETH", "reward", paidID, "0x", time.Now().UTC().Format("2006-01-02"))
		text = page(t, ctx, url, "market", "#page-market", "market")
		wantText(t, "the peers and market page", text, "12D3KooW", "this node")
		text = page(t, ctx, url, "policy", "#page-policy", "policy")
		wantText(t, "the policy page", text, "active")
		text = page(t, ctx, url, "checks", "#page-checks", "checks")
		wantText(t, "the checks page", text, "docker", "ok")
		text = page(t, ctx, url, "benchmark", "#page-benchmark", "benchmark")
		wantText(t, "the benchmark page", text, "run gpunode bench")

		// The operator runs `gpunode doctor` with the daemon's configuration; the
		// dashboard shows its verdicts (it exits 1 if a check failed: not what this checks).
		out, _ := gpunode(t, "doctor", "--config", l.provider.cfg, "--data-dir", filepath.Join(l.provider.dir, "data"), "--api-socket", l.provider.d.socket)
		text = page(t, ctx, url, "doctor", "#page-doctor", "doctor")
		wantText(t, "the doctor page", text, "Last gpunode doctor", "docker", "nvidia-driver", "CPU-only", "chain-rpc")
		if !strings.Contains(out, "docker") {
			t.Errorf("gpunode doctor printed:\n%s", out)
		}
	})
}
