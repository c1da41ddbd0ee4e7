//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
)

// prometheus is a real Prometheus server (Debian's package) started by a test.
type prometheus struct {
	addr string
}

func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	bin := testenv.LookPath(t, "prometheus", "prometheus")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: gpunode
    static_configs:
      - targets: [%q]
`, target)
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: freeAddr(t)}
	cmd := exec.Command(bin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	var logs testkit.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s: %v\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type queryResult struct {
	Status    string `json:"status"`
	Error     string `json:"error"`
	ErrorType string `json:"errorType"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	} `json:"data"`
}

// query runs an instant PromQL query through Prometheus's HTTP API.
func (p *prometheus) query(t *testing.T, q string) queryResult {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r queryResult
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("query %q: %v: %s", q, err, body)
	}
	return r
}

// waitSeries waits until q returns n series.
func (p *prometheus) waitSeries(t *testing.T, q string, n int) queryResult {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := p.query(t, q)
		if r.Status == "success" && len(r.Data.Result) == n {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %q: %d series after 60s, want %d (status %s %s)", q, len(r.Data.Result), n, r.Status, r.Error)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestPrometheusScrapesSimulatedRig(t *testing.T) {
	d := startDaemon(t, "--simulate-gpus", "dgxa100")
	p := startPrometheus(t, d.metrics)
	r := p.waitSeries(t, "DCGM_FI_DEV_GPU_TEMP", 8)
	gpus := map[string]bool{}
	for _, s := range r.Data.Result {
		gpus[s.Metric["gpu"]] = true
		for _, l := range []string{"UUID", "pci_bus_id", "device", "modelName", "Hostname"} {
			if s.Metric[l] == "" {
				t.Errorf("series %v lacks label %s", s.Metric, l)
			}
		}
	}
	if len(gpus) != 8 {
		t.Errorf("series for gpus %v, want 0..7", gpus)
	}
	if r := p.query(t, `gpunode_gpus_simulated == 1`); len(r.Data.Result) != 1 {
		t.Errorf("the scrape does not say the gpus are simulated: %+v", r)
	}

	t.Run("dashboard", func(t *testing.T) {
		checkDashboard(t, p, d.metrics, filepath.Join(testenv.RepoRoot(t), "configs", "grafana", "gpunode-rigs.json"))
	})
}

// grafanaVars replaces Grafana's variables with values Prometheus accepts.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "${__rate_interval}", "1m",
	"$__interval", "15s", "${__interval}", "15s",
	"$__range", "1h", "${__range}", "1h",
	"${instance}", ".*", "$instance", ".*",
	"${gpu}", ".*", "$gpu", ".*",
)

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)

// checkDashboard checks that every PromQL expression of a Grafana dashboard parses and
// evaluates on a real Prometheus, and that every metric it names is one the node exports.
func checkDashboard(t *testing.T, p *prometheus, metricsAddr, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	exprs := map[string]string{} // expression → where
	for _, panel := range dash.Panels {
		for _, tg := range panel.Targets {
			exprs[tg.Expr] = "panel " + panel.Title
		}
	}
	for _, v := range dash.Templating.List {
		q, _ := v.Query.(string)
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
			continue
		}
		exprs[m[1]] = "variable " + v.Name
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found in %s", len(exprs), path)
	}
	exported := scrapeNames(t, metricsAddr)
	for expr, where := range exprs {
		q := grafanaVars.Replace(expr)
		r := p.query(t, q)
		if r.Status != "success" {
			t.Errorf("%s: %q does not evaluate: %s: %s", where, expr, r.ErrorType, r.Error)
		}
		for _, name := range metricNames(q) {
			if !exported[name] {
				t.Errorf("%s: %q names %s, which the node does not export", where, expr, name)
			}
		}
	}
	// The checks can fail: a broken expression and an unknown metric are caught.
	if r := p.query(t, "sum(DCGM_FI_DEV_GPU_TEMP"); r.Status == "success" {
		t.Error("prometheus accepted a broken expression")
	}
	if names := metricNames(`sum by (gpu) (rate(gpunode_nope_total{a="b"}[5m])) / on (gpu) DCGM_FI_DEV_GPU_UTIL - gpunode_x offset 1h`); strings.Join(names, ",") != "DCGM_FI_DEV_GPU_UTIL,gpunode_nope_total,gpunode_x" {
		t.Errorf("metricNames = %v", names)
	}
}

// scrapeNames returns the metric names a live scrape of the node shows.
func scrapeNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			names[strings.Fields(line)[2]] = true
		}
	}
	return names
}

var (
	strLit     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	braces     = regexp.MustCompile(`\{[^}]*\}`)
	brackets   = regexp.MustCompile(`\[[^\]]*\]`)
	offsets    = regexp.MustCompile(`\boffset\s+-?[0-9smhdwy]+`)
	grouping   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	number     = regexp.MustCompile(`(^|[^\w.])\d+(\.\d+)?([eE][+-]?\d+)?`)
	identifier = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	keywords   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricNames lists the metric names a PromQL expression selects: identifiers that are
// not functions, aggregations, keywords, label names or parts of literals.
func metricNames(expr string) []string {
	e := strLit.ReplaceAllString(expr, `""`)
	e = braces.ReplaceAllString(e, " ")
	e = brackets.ReplaceAllString(e, " ")
	e = offsets.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	e = number.ReplaceAllString(e, "$1 ")
	set := map[string]bool{}
	for _, loc := range identifier.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		rest := strings.TrimLeft(e[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || keywords[strings.ToLower(name)] {
			continue // a function or aggregation, or a keyword
		}
		set[name] = true
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
