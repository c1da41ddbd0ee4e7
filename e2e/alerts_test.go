//go:build integration

package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gpunode/gpunode/internal/testenv"
)

// TestAlertRules: the shipped alerting rules load in Prometheus, pass their promtool unit
// tests, every alert has a test in which it fires, and every metric they name is one the
// node exports — so a renamed metric cannot silently disarm an alert.
func TestAlertRules(t *testing.T) {
	promtool := testenv.LookPath(t, "promtool", "prometheus")
	dir := filepath.Join(testenv.RepoRoot(t), "configs", "prometheus")
	rulesPath, testsPath := filepath.Join(dir, "alerts.yml"), filepath.Join(dir, "alerts_test.yml")

	if out, err := exec.Command(promtool, "check", "rules", rulesPath).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", "alerts_test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, rulesPath, &rules)
	readYAML(t, testsPath, &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	declared := declaredMetrics(t)
	declared["up"] = true // Prometheus's own per-target series
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if !fires[r.Alert] {
				t.Errorf("alert %s: no test in alerts_test.yml shows it firing", r.Alert)
			}
			for _, name := range metricNames(r.Expr) {
				if !declared[name] {
					t.Errorf("alert %s: %q names %s, which the node does not export", r.Alert, r.Expr, name)
				}
			}
		}
	}
	for _, want := range []string{"GpunodeDown", "GpunodeGPUXidError", "GpunodeGPUHot", "GpunodeChainUnreachable",
		"GpunodeJobsFailing", "GpunodeNoBenchmark", "GpunodeWalletLow"} {
		if !fires[want] {
			t.Errorf("alert %s is missing or untested", want)
		}
	}
	if n < 7 {
		t.Fatalf("only %d rules in %s", n, rulesPath)
	}

	// The unit tests hold the thresholds: the same tests fail on rules with one changed.
	raw, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	mutated := strings.Replace(string(raw), "DCGM_FI_DEV_GPU_TEMP > 85", "DCGM_FI_DEV_GPU_TEMP > 95", 1)
	if mutated == string(raw) {
		t.Fatal("temperature rule not found: update the mutation")
	}
	tmp := t.TempDir()
	testsRaw, err := os.ReadFile(testsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "alerts.yml"), []byte(mutated), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "alerts_test.yml"), testsRaw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(promtool, "test", "rules", "alerts_test.yml")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "GpunodeGPUHot") {
		t.Errorf("promtool test rules passed with the temperature threshold changed (err %v):\n%s", err, out)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var metricLiteral = regexp.MustCompile(`"((?:gpunode|DCGM_FI_DEV)_[A-Za-z0-9_]+)"`)

// declaredMetrics lists the metric names the node's sources declare (string literals in
// non-test Go files). Some series appear only in some states (a benchmark timestamp after
// a benchmark, a wallet balance with a key), so a live scrape would not see them all.
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	root := testenv.RepoRoot(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricLiteral.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !names["gpunode_chain_up"] || !names["DCGM_FI_DEV_GPU_TEMP"] {
		t.Fatalf("metric declarations not found under %s", root)
	}
	return names
}
