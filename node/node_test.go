package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/docker"
	"github.com/gpunode/gpunode/runtime/gpu"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeRuntime is a container engine whose answers the test sets.
type fakeRuntime struct {
	ping         atomic.Value // error
	preflight    error
	runs         atomic.Int32
	stack        []docker.Component
	fakeRuntimeB // the control API's image and log routes: not served
}

func (f *fakeRuntime) Ping(context.Context) error {
	if err, _ := f.ping.Load().(error); err != nil {
		return err
	}
	return nil
}
func (f *fakeRuntime) PreflightGPU(context.Context, []string) error { return f.preflight }
func (f *fakeRuntime) Run(ctx context.Context) error {
	f.runs.Add(1)
	<-ctx.Done()
	return nil
}
func (f *fakeRuntime) GPUStack() []docker.Component { return f.stack }
func (f *fakeRuntime) Close() error                 { return nil }

// The fake engine runs no containers: the nodes of these tests have no idle workload.
var errNoContainers = errors.New("the fake engine runs no containers")

func (f *fakeRuntime) Start(context.Context, runtime.Spec) (runtime.Handle, error) {
	return runtime.Handle{}, errNoContainers
}
func (f *fakeRuntime) Wait(context.Context, string) (runtime.Result, error) {
	return runtime.Result{}, errNoContainers
}
func (f *fakeRuntime) Stop(context.Context, string) error                { return errNoContainers }
func (f *fakeRuntime) Recover(context.Context) ([]runtime.Handle, error) { return nil, nil }

// startNode runs a node until the test ends; stop stops it and returns Run's error.
func startNode(t *testing.T, deps Deps) (n *Node, stop func() error) {
	t.Helper()
	cfg := Default()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.API.Socket = filepath.Join(dir, "api.sock")
	cfg.Metrics.Listen = ""
	cfg.UI.Listen = ""
	n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, nil) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New("node did not stop within 10s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return n, stop
}

func waitCheck(t *testing.T, n *Node, name string, ok bool) api.Check {
	t.Helper()
	var found api.Check
	testkit.Eventually(t, 5*time.Second, func() bool {
		for _, c := range n.Status().Checks {
			if c.Name == name && c.OK == ok {
				found = c
				return true
			}
		}
		return false
	}, "check %s never became ok=%v: %v", name, ok, testkit.Lazy(func() string { return fmt.Sprintf("%+v", n.Status().Checks) }))
	return found
}

func TestToolkitPreflightOnRealGPUs(t *testing.T) {
	lib, err := gpu.Simulate("dgxa100")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := gpu.New(lib, false) // the mock standing in for real GPUs
	if err != nil {
		t.Fatal(err)
	}
	rt := &fakeRuntime{preflight: runtime.ErrNoGPURuntime}
	n, _ := startNode(t, Deps{GPUs: inv, Runtime: rt})
	waitCheck(t, n, "docker", true)
	c := waitCheck(t, n, "nvidia-container-toolkit", false)
	if !strings.Contains(c.Message, "nvidia-ctk runtime configure") {
		t.Errorf("message %q does not say how to fix it", c.Message)
	}
}

func TestMissingEngineKeepsNodeRunning(t *testing.T) {
	rt := &fakeRuntime{}
	rt.ping.Store(errors.New("docker engine at unix:///var/run/docker.sock does not answer"))
	n, stop := startNode(t, Deps{Runtime: rt})
	c := waitCheck(t, n, "docker", false)
	if !strings.Contains(c.Message, "jobs cannot run") {
		t.Errorf("message %q", c.Message)
	}
	if n.Status().State != "running" {
		t.Errorf("node state %q while the engine is missing, want running", n.Status().State)
	}
	for _, ch := range n.Status().Checks {
		if ch.Name == "nvidia-container-toolkit" {
			t.Error("toolkit checked on a CPU-only node")
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if rt.runs.Load() != 0 {
		t.Error("runtime ran while the engine did not answer")
	}
}

type fakeMarket struct {
	st          api.MarketStatus
	fakeMarketB // the control API's chain routes other than the status: not served
}

func (f fakeMarket) Status() api.MarketStatus { return f.st }
func (f fakeMarket) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
func (f fakeMarket) Collector() prometheus.Collector {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: "fake_market"})
}

func TestStatusShowsChain(t *testing.T) {
	mk := fakeMarket{st: api.MarketStatus{ChainID: 1337, Account: "0xabc", Connected: true, Head: 9}}
	n, _ := startNode(t, Deps{Market: mk})
	st := n.Status()
	if st.Chain == nil || st.Chain.ChainID != 1337 || st.Chain.Account != "0xabc" || st.Chain.Head != 9 {
		t.Errorf("status chain: %+v", st.Chain)
	}
	if st.Jobs != nil {
		t.Errorf("jobs %v on a node that takes none", st.Jobs)
	}
}
