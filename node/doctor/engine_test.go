//go:build integration

package doctor

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/runtime/docker"
)

// probe connects to this machine's Docker Engine, or to host when given.
func probe(t *testing.T, host, quota string) *docker.Runtime {
	t.Helper()
	cfg := docker.Default()
	cfg.Host, cfg.OutputQuota = host, quota
	cfg.Instance = "doctor-test"
	r, err := docker.NewProbe(cfg, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		// The GPU check's empty image, imported for this test instance.
		exec.Command("docker", "image", "rm", "--force", "gpunode-preflight:"+cfg.Instance).Run()
	})
	return r
}

func TestDocker(t *testing.T) {
	testenv.RequireDocker(t)
	ctx := t.Context()
	want(t, Docker(ctx, probe(t, "", ""), nil), OK, "answers", "")
	// A socket path where no engine listens.
	silent := probe(t, "unix://"+filepath.Join(t.TempDir(), "docker.sock"), "")
	want(t, Docker(ctx, silent, nil), Fail, "does not answer", FixDocker)
	want(t, Docker(ctx, nil, errors.New("docker engine: unable to parse docker host `tcp//x`")), Fail, "unable to parse", FixDocker)
}

// TestRuncOfThisEngine reads the runc of the real engine: a verdict either way, never a
// failure on a CPU-only rig.
func TestRuncOfThisEngine(t *testing.T) {
	testenv.RequireDocker(t)
	res := Runc(t.Context(), probe(t, "", ""), nil, nil)
	if res.Status != OK && res.Status != Warn {
		t.Fatalf("runc of this engine, CPU-only: %+v", res)
	}
	want(t, res, res.Status, "runc", "")
	if res.Status == Warn {
		want(t, res, Warn, "older than", "upgrade runc")
	}
}

// gpuStarter stands in for an engine whose GPU path works.
type gpuStarter struct{ err error }

func (s gpuStarter) TryGPUs(context.Context, []string) error { return s.err }

func TestGPUContainer(t *testing.T) {
	testenv.RequireDocker(t)
	ctx := t.Context()
	// The real engine here has no NVIDIA Container Toolkit: it cannot attach a GPU.
	want(t, GPUContainer(ctx, probe(t, "", ""), someGPUs, nil), Fail, "could not select device driver", FixGPUContainer)
	want(t, GPUContainer(ctx, gpuStarter{}, someGPUs, nil), OK, "a container started with 1 GPUs", "")
	want(t, GPUContainer(ctx, gpuStarter{errors.New("oci runtime create failed: nvidia-container-cli: device error")}, someGPUs, nil), Fail, "device error", "read the engine's error above; "+FixGPUContainer)
	want(t, GPUContainer(ctx, gpuStarter{}, nil, nil), Skip, "CPU-only", "")
	want(t, GPUContainer(ctx, gpuStarter{}, someGPUs, errors.New("down")), Skip, "does not answer", "")
}

func TestQuota(t *testing.T) {
	testenv.RequireDocker(t)
	testenv.LookPath(t, "mkfs.ext4", "e2fsprogs")
	// Tests run as root here (make test does), with mkfs.ext4: loop mode.
	want(t, Quota(probe(t, "", docker.QuotaAuto)), OK, "loop", "")
	want(t, Quota(probe(t, "", docker.QuotaWatch)), Warn, "watch: runtime.output_quota is \"watch\"", FixQuota)
}
