//go:build integration

package docker_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

// builtProbe builds an image with `FROM scratch` and the probe, through the engine's
// builder (no setuid copy: the builder's COPY would clear the bit anyway).
func builtProbe(b testing.TB) string {
	b.Helper()
	cli := engine(b)
	bin, err := os.ReadFile(conformance.BuildProbe(b))
	if err != nil {
		b.Fatal(err)
	}
	id, err := buildImage(cli, "gpunode-test/probe-built:latest", "FROM scratch\nCOPY probe /probe\nCMD [\"/probe\"]\n",
		map[string]tarFile{"probe": {bin, 0o755}})
	if err != nil {
		b.Fatalf("docker build: %v", err)
	}
	return id
}

// BenchmarkStartOverhead measures, in the same run and interleaved, the time from
// "image present" to "process running in the container" for Runtime.Start and for
// `docker run -d` of the same image with the same hardening, and reports their ratio.
// The runtime must not be slower than the CLI.
//
//	go test -run '^$' -bench StartOverhead -benchtime 20x ./runtime/docker/
func BenchmarkStartOverhead(b *testing.B) {
	img := builtProbe(b)
	dockerBin := testenv.LookPath(b, "docker", "docker.io")
	dir := b.TempDir()
	cfg := testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l")})
	cfg.StopGrace = 0
	rt := openRuntime(b, cfg)
	defer rt.Close()
	ctx := b.Context()
	spec := func(i int) runtime.Spec {
		return runtime.Spec{
			JobID: fmt.Sprintf("bench-%d-%d", os.Getpid(), i), Image: img,
			Command:   []string{"/probe", "sleep:60s"},
			OutputDir: filepath.Join(dir, "out", fmt.Sprint(i)),
			Resources: runtime.Resources{MemoryBytes: 256 << 20, PIDs: 64, TmpBytes: 8 << 20},
		}
	}
	cliArgs := func(name, out string) []string {
		return []string{"run", "-d", "--name", name, "--label", docker.LabelInstance + "=" + cfg.Instance,
			"--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only",
			"--tmpfs", "/tmp:rw,nosuid,nodev,size=8388608", "--pids-limit", "64", "--memory", "256m", "--memory-swap", "256m",
			"--ipc", "private", "--mount", "type=bind,source=" + out + ",target=/out",
			"--entrypoint", "/probe", img, "sleep:60s"}
	}
	// One warm-up of each, so neither pays for first-use caches.
	warm := spec(-1)
	if _, err := rt.Start(ctx, warm); err != nil {
		b.Fatal(err)
	}
	rt.Stop(ctx, warm.JobID)
	os.MkdirAll(filepath.Join(dir, "cliout"), 0o755)
	if out, err := exec.Command(dockerBin, cliArgs("gpunode-bench-warm-"+cfg.Instance, filepath.Join(dir, "cliout"))...).CombinedOutput(); err != nil {
		b.Fatalf("docker run: %v %s", err, out)
	}
	exec.Command(dockerBin, "rm", "-f", "gpunode-bench-warm-"+cfg.Instance).Run()

	var rtTotal, cliTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := spec(i)
		t0 := time.Now()
		if _, err := rt.Start(ctx, s); err != nil {
			b.Fatal(err)
		}
		rtTotal += time.Since(t0)

		name := fmt.Sprintf("gpunode-bench-%s-%d", cfg.Instance, i)
		out := filepath.Join(dir, "cliout", fmt.Sprint(i))
		os.MkdirAll(out, 0o755)
		t0 = time.Now()
		if o, err := exec.Command(dockerBin, cliArgs(name, out)...).CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v %s", err, o)
		}
		cliTotal += time.Since(t0)

		b.StopTimer()
		if err := rt.Stop(ctx, s.JobID); err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Wait(ctx, s.JobID); err != nil {
			b.Fatal(err)
		}
		exec.Command(dockerBin, "rm", "-f", name).Run()
		b.StartTimer()
	}
	b.StopTimer()
	rtMs := float64(rtTotal.Microseconds()) / 1000 / float64(b.N)
	cliMs := float64(cliTotal.Microseconds()) / 1000 / float64(b.N)
	ratio := rtMs / cliMs
	b.ReportMetric(rtMs, "runtime-ms/start")
	b.ReportMetric(cliMs, "docker-run-ms/start")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(0, "ns/op")
	fmt.Printf("\nstart overhead, image present -> process running (n=%d)\n", b.N)
	fmt.Printf("  %-28s %8.1f ms\n", "runtime/docker Start", rtMs)
	fmt.Printf("  %-28s %8.1f ms\n", "docker run -d (CLI)", cliMs)
	fmt.Printf("  %-28s %8.2f %s\n", "ratio runtime/CLI", ratio, verdict(ratio))
	if ratio > 1.0 {
		b.Errorf("runtime start is slower than `docker run` (ratio %.2f > 1.0)", ratio)
	}
}

func verdict(r float64) string {
	if r <= 1.0 {
		return "(ok: not slower than the CLI)"
	}
	return "(FAIL: slower than the CLI)"
}
