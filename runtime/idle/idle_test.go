//go:build integration

package idle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

func engine(t *testing.T) *client.Client {
	t.Helper()
	testenv.RequireDocker(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// probeImage imports the conformance probe into an image FROM nothing, tagged by its hash
// so that reruns reuse it.
func probeImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	bin, err := os.ReadFile(conformance.BuildProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	tag := "gpunode-test/probe:" + hex.EncodeToString(sum[:6])
	ctx := t.Context()
	if ins, err := cli.ImageInspect(ctx, tag); err == nil {
		return ins.ID
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "probe", Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(bin)
	tw.Close()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, tag, image.ImportOptions{})
	if err != nil {
		t.Fatalf("import probe image: %v", err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	ins, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("import probe image: %v", err)
	}
	return ins.ID
}

// event is a container event of the test's runtime instance.
type event struct {
	action string
	job    string // the container's job label
	at     time.Time
}

type recorder struct {
	mu  sync.Mutex
	evs []event
}

func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.evs...)
}

// first returns the first event after since matching action and job (a prefix ends in
// "-"), waiting for it up to d.
func (r *recorder) first(t *testing.T, since time.Time, action, job string, d time.Duration) event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, e := range r.all() {
			if e.action == action && !e.at.Before(since) && (e.job == job || strings.HasSuffix(job, "-") && strings.HasPrefix(e.job, job)) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event of job %q after %s within %s; events: %+v", action, job, since.Format(time.RFC3339Nano), d, r.all())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func watchEvents(t *testing.T, cli *client.Client, instance string) *recorder {
	ctx, cancel := context.WithCancel(t.Context())
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", "container"), filters.Arg("label", docker.LabelInstance+"="+instance))})
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				switch m.Action {
				case events.ActionStart, events.ActionDie, events.ActionKill:
					r.mu.Lock()
					r.evs = append(r.evs, event{string(m.Action), m.Actor.Attributes[docker.LabelJob], time.Unix(0, m.TimeNano)})
					r.mu.Unlock()
				}
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func removeInstance(cli *client.Client, instance string) {
	ctx := context.Background()
	list, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+instance))})
	for _, c := range list {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
}

func openRuntime(t *testing.T, cli *client.Client) (*docker.Runtime, string, string) {
	dir := t.TempDir()
	h := sha256.Sum256([]byte(dir))
	cfg := docker.Default()
	cfg.Instance = "test-idle-" + hex.EncodeToString(h[:6])
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.LogDir = filepath.Join(dir, "logs")
	cfg.DockerConfig = "/nonexistent/config.json"
	cfg.StopGrace = 20 * time.Second // the idle workload's own, shorter grace must win
	rt, err := docker.New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(); removeInstance(cli, cfg.Instance) })
	return rt, cfg.Instance, dir
}

func poll(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	return metricOf(t, reg, name)
}

func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	return metricOf(t, reg, name)
}

// metricOf wraps one gathered metric as a collector for testutil.ToFloat64.
func metricOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: "copy"}, func() float64 { return v })
	}
	t.Fatalf("metric %s not gathered", name)
	return nil
}
