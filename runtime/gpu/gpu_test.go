package gpu

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/gpunode/gpunode/internal/testkit"
)

// withTelemetry assigns the telemetry methods the dgxa100 mock leaves unset.
func withTelemetry(srv *dgxa100.Server) *dgxa100.Server {
	for i, d := range srv.Devices {
		md := d.(*dgxa100.Device)
		temp := uint32(40 + i)
		md.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) { return pciInfo(md.PciBusID), nvml.SUCCESS }
		md.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: 90, Memory: 40}, nvml.SUCCESS
		}
		md.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: md.MemoryInfo.Total, Used: 1 << 30, Free: md.MemoryInfo.Total - 1<<30}, nvml.SUCCESS
		}
		md.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 250500, nvml.SUCCESS }
		md.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return temp, nvml.SUCCESS }
		md.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
			if c == nvml.CLOCK_MEM {
				return 1215, nvml.SUCCESS
			}
			return 1410, nvml.SUCCESS
		}
		md.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
			return nvml.FEATURE_DISABLED, nvml.FEATURE_DISABLED, nvml.SUCCESS
		}
	}
	return srv
}

func TestInventoryDGXA100(t *testing.T) {
	srv := withTelemetry(dgxa100.New())
	inv, err := New(srv, false)
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	devs := inv.Devices()
	if len(devs) != 8 {
		t.Fatalf("got %d gpus, want 8", len(devs))
	}
	if inv.Driver() != "550.54.15" || inv.CUDA() != "12.4" {
		t.Errorf("driver %q cuda %q, want 550.54.15 and 12.4", inv.Driver(), inv.CUDA())
	}
	seen := map[string]bool{}
	for i, d := range devs {
		want := srv.Devices[i].(*dgxa100.Device)
		if d.Index != i || d.UUID != want.UUID || d.Name != want.Name || d.PCIBusID != want.PciBusID {
			t.Errorf("gpu %d: got %+v, want uuid %s name %s bus %s", i, d, want.UUID, want.Name, want.PciBusID)
		}
		if d.MemoryBytes != 42949672960 || d.ComputeCapability != "8.0" || d.MIG {
			t.Errorf("gpu %d: memory %d cc %s mig %v", i, d.MemoryBytes, d.ComputeCapability, d.MIG)
		}
		if seen[d.UUID] {
			t.Errorf("gpu %d: duplicate uuid %s", i, d.UUID)
		}
		seen[d.UUID] = true
	}
	s, err := inv.Sample(3)
	if err != nil {
		t.Fatal(err)
	}
	if *s.TemperatureC != 43 || *s.PowerWatts != 250.5 || *s.SMClockMHz != 1410 || *s.MemClockMHz != 1215 || *s.GPUUtilPercent != 90 || *s.MemoryUsedBytes != 1<<30 {
		t.Errorf("sample: %+v", s)
	}
	if len(s.Unsupported) != 0 || len(s.Failed) != 0 || s.ECCUncorrected != nil {
		t.Errorf("sample of a healthy gpu without ECC: unsupported %v failed %v ecc %v", s.Unsupported, s.Failed, s.ECCUncorrected)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(*dgxa100.Server)
		want    error
		msg     string
	}{
		{"no driver", func(s *dgxa100.Server) {
			s.InitFunc = func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }
		}, ErrNoDriver, "no NVIDIA driver"},
		{"init fails", func(s *dgxa100.Server) {
			s.InitFunc = func() nvml.Return { return nvml.ERROR_NO_PERMISSION }
		}, nvml.ERROR_NO_PERMISSION, "DeviceAllow"},
		{"device count fails", func(s *dgxa100.Server) {
			s.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
		}, nvml.ERROR_UNKNOWN, "device count"},
		{"driver and library differ", func(s *dgxa100.Server) {
			s.InitFunc = func() nvml.Return { return nvml.ERROR_LIB_RM_VERSION_MISMATCH }
		}, ErrUnavailable, "reboot the rig"},
		{"kernel module not loaded", func(s *dgxa100.Server) {
			s.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }
		}, ErrUnavailable, "modprobe nvidia"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := withTelemetry(dgxa100.New())
			srv.ShutdownFunc = func() nvml.Return { return nvml.SUCCESS }
			tt.breakIt(srv)
			_, err := New(srv, false)
			if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrNoDriver) {
				t.Errorf("err = %v: the node would not know to run CPU-only", err)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestRealNVMLWithoutDriver(t *testing.T) {
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "/usr/lib64/libnvidia-ml.so.1", "/usr/lib/libnvidia-ml.so.1"} {
		if _, err := os.Stat(p); err == nil {
			t.Logf("NVIDIA driver present (%s): checking the real inventory instead", p)
			inv, err := Open(Config{}, testkit.Discard())
			if err != nil {
				t.Fatal(err)
			}
			inv.Close()
			return
		}
	}
	_, err := Open(Config{}, testkit.Discard())
	if !errors.Is(err, ErrNoDriver) {
		t.Fatalf("without a driver: err = %v, want ErrNoDriver", err)
	}
}

func TestSimulation(t *testing.T) {
	inv, err := Open(Config{Simulate: "dgxa100"}, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Simulated() || len(inv.Devices()) != 8 {
		t.Fatalf("simulated %v with %d gpus", inv.Simulated(), len(inv.Devices()))
	}
	for i := range inv.Devices() {
		s, err := inv.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		if *s.TemperatureC < 20 || *s.TemperatureC > 90 || *s.PowerWatts <= 0 || *s.MemoryUsedBytes+*s.MemoryFreeBytes != inv.Devices()[i].MemoryBytes {
			t.Errorf("gpu %d: implausible sample %+v", i, s)
		}
	}
	if errs := (Config{Simulate: "h100x4"}).Validate(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "h100x4") {
		t.Errorf("validate unknown simulation: %v", errs)
	}
}

func TestWatchHealthRecordsXID(t *testing.T) {
	srv := withTelemetry(dgxa100.New())
	inv, err := New(srv, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range srv.Devices {
		d.(*dgxa100.Device).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
	srv.Devices[7].(*dgxa100.Device).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.ERROR_NOT_SUPPORTED }
	events := make(chan nvml.EventData, 2)
	events <- nvml.EventData{Device: srv.Devices[4], EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	events <- nvml.EventData{Device: srv.Devices[4], EventType: nvml.EventTypeXidCriticalError, EventData: 48}
	set := &mock.EventSet{
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
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- inv.WatchHealth(ctx, testkit.Discard()) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := inv.Sample(4)
		if err != nil {
			t.Fatal(err)
		}
		if s.XIDErrors == 2 {
			if s.LastXID != 48 {
				t.Errorf("last xid %d, want 48", s.LastXID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("xid errors never recorded: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s, _ := inv.Sample(3); s.XIDErrors != 0 {
		t.Errorf("gpu 3 has %d xid errors, want 0", s.XIDErrors)
	}
}
