package gpu

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
)

// TestSampleUnsupportedField checks that a field NVML does not support on a GPU (as
// utilization on MIG-enabled GPUs, power and temperature on some GeForce cards and vGPU
// guests) leaves that field out and keeps the GPU and its other fields.
func TestSampleUnsupportedField(t *testing.T) {
	tests := []struct {
		field   string
		breakIt func(*dgxa100.Device, nvml.Return)
		missing func(Sample) bool
	}{
		{FieldUtilization, func(d *dgxa100.Device, r nvml.Return) {
			d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, r }
		}, func(s Sample) bool { return s.GPUUtilPercent == nil && s.MemCopyUtilPercent == nil }},
		{FieldMemory, func(d *dgxa100.Device, r nvml.Return) {
			d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, r }
		}, func(s Sample) bool { return s.MemoryUsedBytes == nil && s.MemoryFreeBytes == nil }},
		{FieldPower, func(d *dgxa100.Device, r nvml.Return) {
			d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, r }
		}, func(s Sample) bool { return s.PowerWatts == nil }},
		{FieldTemperature, func(d *dgxa100.Device, r nvml.Return) {
			d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, r }
		}, func(s Sample) bool { return s.TemperatureC == nil }},
		{FieldSMClock, func(d *dgxa100.Device, r nvml.Return) {
			d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
				if c == nvml.CLOCK_SM {
					return 0, r
				}
				return 1215, nvml.SUCCESS
			}
		}, func(s Sample) bool { return s.SMClockMHz == nil && s.MemClockMHz != nil }},
		{FieldECC, func(d *dgxa100.Device, r nvml.Return) {
			d.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
				return nvml.FEATURE_ENABLED, nvml.FEATURE_ENABLED, nvml.SUCCESS
			}
			d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, r }
		}, func(s Sample) bool { return s.ECCUncorrected == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			srv := withTelemetry(dgxa100.New())
			tt.breakIt(srv.Devices[2].(*dgxa100.Device), nvml.ERROR_NOT_SUPPORTED)
			// GPU 5 reads fine at start (so ECC is on where the case turns it on) and
			// fails on that field later.
			tt.breakIt(srv.Devices[5].(*dgxa100.Device), nvml.SUCCESS)
			inv, err := New(srv, false)
			if err != nil {
				t.Fatal(err)
			}
			tt.breakIt(srv.Devices[5].(*dgxa100.Device), nvml.ERROR_UNKNOWN)
			s, err := inv.Sample(2)
			if err != nil {
				t.Fatalf("a GPU without %s was dropped: %v", tt.field, err)
			}
			if !tt.missing(s) || !slices.Equal(s.Unsupported, []string{tt.field}) || len(s.Failed) != 0 {
				t.Errorf("unsupported %s: sample %+v", tt.field, s)
			}
			if tt.field != FieldTemperature && (s.TemperatureC == nil || *s.TemperatureC != 42) {
				t.Errorf("the other fields were dropped with %s: %+v", tt.field, s)
			}
			// A failing field (not unsupported) is named as failed; the GPU stays.
			s, err = inv.Sample(5)
			if err != nil || !tt.missing(s) || len(s.Failed) != 1 || !strings.HasPrefix(s.Failed[0], tt.field+": ") {
				t.Errorf("failing %s: sample %+v, err %v", tt.field, s, err)
			}
			if len(inv.Allocatable()) != 8 {
				t.Errorf("allocatable: %d gpus, want 8", len(inv.Allocatable()))
			}
		})
	}
}

// TestGPULostAtBoot: one of eight GPUs is lost when the node starts; the node runs on
// the other seven and says which one is out and why.
func TestGPULostAtBoot(t *testing.T) {
	srv := withTelemetry(dgxa100.New())
	lost := srv.Devices[5].(*dgxa100.Device)
	lost.GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
	inv, err := New(srv, false)
	if err != nil {
		t.Fatalf("one lost GPU stopped the node: %v", err)
	}
	devs := inv.Devices()
	if len(devs) != 8 {
		t.Fatalf("%d gpus in the inventory, want all 8", len(devs))
	}
	for i, d := range devs {
		if d.Healthy != (i != 5) {
			t.Errorf("gpu %d healthy = %v", i, d.Healthy)
		}
	}
	if !strings.Contains(devs[5].Problem, "lost") {
		t.Errorf("gpu 5 problem %q does not say it is lost", devs[5].Problem)
	}
	alloc := inv.Allocatable()
	if len(alloc) != 7 || slices.Contains(alloc, lost.UUID) || slices.Contains(alloc, "") {
		t.Errorf("allocatable %v: want the 7 others", alloc)
	}
	if _, err := inv.Sample(5); !errors.Is(err, ErrLost) {
		t.Errorf("sample of the lost gpu: err = %v, want ErrLost", err)
	}
	if _, err := inv.Sample(4); err != nil {
		t.Errorf("sample of a healthy gpu: %v", err)
	}
}

// TestGPULostMidRun: a GPU falls off the bus while the node runs; the next reading takes
// it out of allocation, and later readings no longer call into NVML for it.
func TestGPULostMidRun(t *testing.T) {
	srv := withTelemetry(dgxa100.New())
	inv, err := New(srv, false)
	if err != nil {
		t.Fatal(err)
	}
	d := srv.Devices[3].(*dgxa100.Device)
	var calls atomic.Int32
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { calls.Add(1); return 0, nvml.ERROR_GPU_IS_LOST }
	if _, err := inv.Sample(3); !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "gpu 3: power") {
		t.Fatalf("lost gpu: err = %v", err)
	}
	if inv.Usable(d.UUID) || len(inv.Allocatable()) != 7 || inv.Devices()[3].Healthy {
		t.Errorf("lost gpu still allocatable: %v", inv.Allocatable())
	}
	if _, err := inv.Sample(3); !errors.Is(err, ErrLost) || calls.Load() != 1 {
		t.Errorf("second sample of the lost gpu: err %v, %d NVML calls", err, calls.Load())
	}
	if !inv.Usable(srv.Devices[2].(*dgxa100.Device).UUID) {
		t.Error("a healthy gpu is not usable")
	}
}

// migLayout turns MIG on for GPU i of srv and gives it instances of the given profiles,
// created through the mock's own GPU-instance API, each with its MIG device handle.
func migLayout(t *testing.T, srv *dgxa100.Server, i int, profiles ...int) []string {
	t.Helper()
	d := srv.Devices[i].(*dgxa100.Device)
	d.MigMode = nvml.DEVICE_MIG_ENABLE
	var handles []nvml.Device
	var uuids []string
	for _, p := range profiles {
		info, ret := d.GetGpuInstanceProfileInfo(p)
		if ret != nvml.SUCCESS {
			t.Fatalf("profile %d: %v", p, ret)
		}
		gi, ret := d.CreateGpuInstance(&info)
		if ret != nvml.SUCCESS {
			t.Fatalf("create gpu instance: %v", ret)
		}
		gii, _ := gi.GetInfo()
		uuid := fmt.Sprintf("MIG-%d-%d-%d", i, gii.Id, p)
		name := fmt.Sprintf("%s MIG %dg.%dgb", d.Name, info.SliceCount, info.MemorySizeMB/1024)
		mem := info.MemorySizeMB << 20
		id := int(gii.Id)
		handles = append(handles, &mock.Device{
			GetUUIDFunc:              func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
			GetNameFunc:              func() (string, nvml.Return) { return name, nvml.SUCCESS },
			GetMemoryInfoFunc:        func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: mem}, nvml.SUCCESS },
			GetGpuInstanceIdFunc:     func() (int, nvml.Return) { return id, nvml.SUCCESS },
			GetComputeInstanceIdFunc: func() (int, nvml.Return) { return 0, nvml.SUCCESS },
		})
		uuids = append(uuids, uuid)
	}
	// An A100 has 7 MIG slots; the unused ones answer NOT_FOUND.
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	d.GetMigDeviceHandleByIndexFunc = func(j int) (nvml.Device, nvml.Return) {
		if j < len(handles) {
			return handles[j], nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	// Utilization is not reported on MIG-enabled GPUs.
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	return uuids
}

// TestMIGLayout: a MIG-enabled GPU's instances are handed to jobs, the GPU itself never
// is (CUDA sees no device through its UUID); GPUs without MIG stay whole.
func TestMIGLayout(t *testing.T) {
	srv := withTelemetry(dgxa100.New())
	small := migLayout(t, srv, 2, nvml.GPU_INSTANCE_PROFILE_1_SLICE, nvml.GPU_INSTANCE_PROFILE_1_SLICE, nvml.GPU_INSTANCE_PROFILE_1_SLICE)
	halves := migLayout(t, srv, 6, nvml.GPU_INSTANCE_PROFILE_3_SLICE, nvml.GPU_INSTANCE_PROFILE_4_SLICE)
	inv, err := New(srv, false)
	if err != nil {
		t.Fatal(err)
	}
	devs := inv.Devices()
	if !devs[2].MIG || !devs[6].MIG || devs[1].MIG {
		t.Fatalf("mig modes: %v %v %v", devs[2].MIG, devs[6].MIG, devs[1].MIG)
	}
	if len(devs[2].Instances) != 3 || devs[2].Instances[0].MemoryBytes != 4864<<20 || !strings.Contains(devs[2].Instances[0].Name, "MIG 1g") {
		t.Errorf("gpu 2 instances: %+v", devs[2].Instances)
	}
	alloc := inv.Allocatable()
	want := 6 + len(small) + len(halves)
	if len(alloc) != want {
		t.Errorf("allocatable: %d, want %d (%v)", len(alloc), want, alloc)
	}
	for _, u := range append(small, halves...) {
		if !slices.Contains(alloc, u) || !inv.Usable(u) {
			t.Errorf("mig instance %s is not allocatable", u)
		}
	}
	for _, i := range []int{2, 6} {
		if slices.Contains(alloc, devs[i].UUID) || inv.Usable(devs[i].UUID) {
			t.Errorf("mig parent gpu %d (%s) is allocatable", i, devs[i].UUID)
		}
	}
	// The parent still reports telemetry, without utilization.
	s, err := inv.Sample(2)
	if err != nil || s.GPUUtilPercent != nil || s.TemperatureC == nil {
		t.Errorf("mig parent sample %+v, err %v", s, err)
	}
	// A parent taken out of service takes its instances with it.
	inv.markUnhealthy(6, errors.New("test"))
	for _, u := range halves {
		if inv.Usable(u) {
			t.Errorf("instance %s of an out-of-service gpu is usable", u)
		}
	}
}

// TestCloseWaitsForNVMLCalls: a scrape still inside NVML when the node shuts down must
// return before the library is shut down (and unloaded); later calls fail cleanly.
func TestCloseWaitsForNVMLCalls(t *testing.T) {
	srv := withTelemetry(dgxa100.New())
	inv, err := New(srv, false)
	if err != nil {
		t.Fatal(err)
	}
	var inside atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	srv.Devices[1].(*dgxa100.Device).GetPowerUsageFunc = func() (uint32, nvml.Return) {
		inside.Store(true)
		close(entered)
		<-release
		inside.Store(false)
		return 100000, nvml.SUCCESS
	}
	var shutdownInside atomic.Bool
	shut := make(chan struct{})
	srv.ShutdownFunc = func() nvml.Return {
		shutdownInside.Store(inside.Load())
		close(shut)
		return nvml.SUCCESS
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); inv.Sample(1) }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- inv.Close() }()
	select {
	case <-shut:
		t.Fatal("nvml shut down while a call was inside it")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if shutdownInside.Load() {
		t.Error("nvml shut down while a call was inside it")
	}
	if _, err := inv.Sample(0); !errors.Is(err, ErrClosed) {
		t.Errorf("sample after close: err = %v, want ErrClosed", err)
	}
}

// TestSampleConcurrently reads every GPU from several goroutines at once, as scrapes,
// status requests and the admission policy do (run with -race).
func TestSampleConcurrently(t *testing.T) {
	srv := withTelemetry(dgxa100.New())
	inv, err := New(srv, false)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 20; n++ {
				for i := range inv.Devices() {
					if _, err := inv.Sample(i); err != nil {
						errs <- err
						return
					}
					inv.RecordXID(i, 13)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s, _ := inv.Sample(0); s.XIDErrors != 80 {
		t.Errorf("xid count %d, want 80", s.XIDErrors)
	}
}
