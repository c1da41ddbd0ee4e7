//go:build integration

package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

// TestImageMetadataIgnored runs an image whose config an attacker wrote: a VOLUME (an
// anonymous, unbounded, never-removed volume), a HEALTHCHECK every second (the engine
// exec'ing into the container), a STOPSIGNAL that a job could ignore. The job gets a
// capped tmpfs on the volume path and leaves no volume behind; the engine never runs
// the health check; the stop signal is the runtime's.
func TestImageMetadataIgnored(t *testing.T) {
	testenv.Attack(t, "runtime", "image VOLUME, HEALTHCHECK and STOPSIGNAL")
	cli := engine(t)
	img := probeImageFrom(t, "metadata", "VOLUME /vol\nHEALTHCHECK --interval=1s --timeout=1s CMD [\"/probe\", \"append:/vol/health=ran\"]\nSTOPSIGNAL SIGUSR1\n")

	dir := t.TempDir()
	cfg := testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l")})
	rt := openRuntime(t, cfg)
	defer rt.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	volumesBefore := volumeNames(t)
	// The engine's events about this job's container, from before it exists.
	var mu sync.Mutex
	var seen []events.Message
	ectx, stopEvents := context.WithCancel(ctx)
	msgs, errs := cli.Events(ectx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)), filters.Arg("label", docker.LabelInstance+"="+cfg.Instance))})
	eventsDone := make(chan struct{})
	go func() {
		defer close(eventsDone)
		for {
			select {
			case m := <-msgs:
				mu.Lock()
				seen = append(seen, m)
				mu.Unlock()
			case <-errs:
				return
			}
		}
	}()

	spec := runtime.Spec{JobID: "metadata", Image: img, Command: []string{"/probe", "write:/vol/x=1", "fill:/vol/big=64", "sleep:4s", "read:/vol/health"},
		OutputDir: filepath.Join(dir, "out"), Resources: runtime.Resources{TmpBytes: 8 << 20}}
	if _, err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ins := jobContainer(t, cfg.Instance, spec.JobID)
	for _, m := range ins.Mounts {
		if m.Type == mount.TypeVolume {
			t.Errorf("the job's container has a volume %s at %s", m.Name, m.Destination)
		}
	}
	if ins.Config.Healthcheck == nil || len(ins.Config.Healthcheck.Test) == 0 || ins.Config.Healthcheck.Test[0] != "NONE" {
		t.Errorf("health check %+v, want disabled", ins.Config.Healthcheck)
	}
	if ins.Config.StopSignal != "SIGTERM" {
		t.Errorf("stop signal %q, want SIGTERM", ins.Config.StopSignal)
	}
	res, err := rt.Wait(ctx, spec.JobID)
	if err != nil {
		t.Fatal(err)
	}
	stopEvents()
	<-eventsDone
	log := readLog(t, res.LogFile)
	if !strings.Contains(log, "write: ok /vol/x") || !strings.Contains(log, "fill: error") {
		t.Errorf("/vol is not a writable, capped tmpfs:\n%s", log)
	}
	if strings.Contains(log, "read: ok") {
		t.Errorf("the health check ran inside the job:\n%s", log)
	}
	mu.Lock()
	for _, m := range seen {
		if strings.HasPrefix(string(m.Action), "exec_") || strings.HasPrefix(string(m.Action), "health_status") {
			t.Errorf("engine event %s: the health check ran", m.Action)
		}
	}
	mu.Unlock()
	// docker volume ls, before and after: no test of this project creates volumes.
	for name := range volumeNames(t) {
		if !volumesBefore[name] {
			t.Errorf("volume %s appeared while the job ran and is left behind", name)
		}
	}
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func volumeNames(t *testing.T) map[string]bool {
	t.Helper()
	list, err := engine(t).VolumeList(t.Context(), volume.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, v := range list.Volumes {
		out[v.Name] = true
	}
	return out
}
