//go:build integration

package metrics

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/gpunode/gpunode/internal/testenv"
)

// promtoolProblems runs `promtool check metrics` on a scrape and returns its complaints.
func promtoolProblems(t *testing.T, scrape string) []string {
	t.Helper()
	promtool := testenv.LookPath(t, "promtool", "prometheus")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	out, _ := cmd.CombinedOutput()
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			problems = append(problems, l)
		}
	}
	return problems
}

// TestPromtoolCheckMetrics lints the node's whole scrape. The one complaint allowed is the
// camelCase label modelName on DCGM_* series: dcgm-exporter names it so, and NVIDIA's
// dashboards and operators' queries depend on that exact name.
func TestPromtoolCheckMetrics(t *testing.T) {
	_, inv := mockRig(t)
	reg := NewRegistry(testStart)
	reg.MustRegister(NewGPUCollector(inv, "rig1", quiet))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&buf, mf)
	}
	for _, p := range promtoolProblems(t, buf.String()) {
		if strings.HasPrefix(p, "DCGM_FI_") && strings.HasSuffix(p, "label names should be written in 'snake_case' not 'camelCase'") {
			continue
		}
		t.Errorf("promtool: %s", p)
	}
	// The check is live: a badly named counter is caught.
	bad := "# HELP gpunode_jobs Jobs.\n# TYPE gpunode_jobs counter\ngpunode_jobs 1\n"
	if len(promtoolProblems(t, bad)) == 0 {
		t.Error("promtool accepted a counter without _total")
	}
}
