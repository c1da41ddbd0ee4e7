package gpu

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/gpunode/gpunode/internal/testkit"
)

// eventFeed is an event set that delivers the events sent on it.
func eventFeed(events chan nvml.EventData) *mock.EventSet {
	return &mock.EventSet{
		WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
			select {
			case ev := <-events:
				return ev, nvml.SUCCESS
			case <-time.After(10 * time.Millisecond):
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
}

// TestXIDClasses: application XIDs are logged and leave the GPU in service; fatal ones
// take the GPU out of allocation; the watcher keeps running either way.
func TestXIDClasses(t *testing.T) {
	srv := withTelemetry(dgxa100.New())
	for _, d := range srv.Devices {
		d.(*dgxa100.Device).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
	events := make(chan nvml.EventData, 16)
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return eventFeed(events), nvml.SUCCESS }
	inv, err := New(srv, false)
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- inv.WatchHealth(ctx, slog.New(slog.NewTextHandler(&logs, nil))) }()
	app := []uint64{13, 31, 43, 45, 68, 109}
	for _, x := range app {
		events <- nvml.EventData{Device: srv.Devices[1], EventType: nvml.EventTypeXidCriticalError, EventData: x}
	}
	fatal := map[int]uint64{4: 48, 5: 79, 6: 94, 7: 95}
	for i, x := range fatal {
		events <- nvml.EventData{Device: srv.Devices[i], EventType: nvml.EventTypeXidCriticalError, EventData: x}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(inv.Allocatable()) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("fatal XIDs never took their gpus out: allocatable %v", inv.Allocatable())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for ; ; time.Sleep(5 * time.Millisecond) {
		if s, _ := inv.Sample(1); s.XIDErrors == uint64(len(app)) {
			if s.LastXID != 109 {
				t.Errorf("last xid %d, want 109", s.LastXID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("application xids never recorded")
		}
	}
	devs := inv.Devices()
	if !devs[1].Healthy || !inv.Usable(devs[1].UUID) {
		t.Errorf("application XIDs took gpu 1 out: %+v", devs[1])
	}
	for i, x := range fatal {
		if devs[i].Healthy || inv.Usable(devs[i].UUID) || !strings.Contains(devs[i].Problem, "XID") {
			t.Errorf("gpu %d after fatal XID %d: %+v", i, x, devs[i])
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "class=application") || !strings.Contains(out, "taken out of service") {
		t.Errorf("log does not tell the classes apart:\n%s", out)
	}
	for x, want := range map[uint64]XIDClass{13: XIDApplication, 79: XIDFatal, 48: XIDFatal, 62: XIDOther} {
		if got := ClassifyXID(x); got != want {
			t.Errorf("xid %d: class %v, want %v", x, got, want)
		}
	}
}

// TestWatchHealthNeverStopsTheNode: an event set that cannot be created, a GPU that
// cannot register and an event wait that reports a lost GPU leave the node running; the
// lost GPU is found and taken out.
func TestWatchHealthNeverStopsTheNode(t *testing.T) {
	log := testkit.Discard()
	t.Run("no event set", func(t *testing.T) {
		srv := withTelemetry(dgxa100.New())
		srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_UNKNOWN }
		inv, err := New(srv, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := inv.WatchHealth(t.Context(), log); err != nil {
			t.Errorf("watcher error would stop the node: %v", err)
		}
	})
	t.Run("lost while waiting", func(t *testing.T) {
		srv := withTelemetry(dgxa100.New())
		for i, d := range srv.Devices {
			ret := nvml.SUCCESS
			if i == 3 {
				ret = nvml.ERROR_UNKNOWN
			}
			d.(*dgxa100.Device).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return ret }
		}
		var once sync.Once
		set := &mock.EventSet{
			WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
				ret := nvml.ERROR_TIMEOUT
				once.Do(func() {
					lost := srv.Devices[2].(*dgxa100.Device)
					lost.GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
					ret = nvml.ERROR_GPU_IS_LOST
				})
				time.Sleep(time.Millisecond)
				return nvml.EventData{}, ret
			},
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		}
		srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
		inv, err := New(srv, false)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- inv.WatchHealth(ctx, log) }()
		deadline := time.Now().Add(10 * time.Second)
		for inv.Devices()[2].Healthy {
			if time.Now().After(deadline) {
				t.Fatal("the lost gpu was never taken out")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := len(inv.Allocatable()); n != 7 {
			t.Errorf("%d gpus allocatable, want 7", n)
		}
	})
}
