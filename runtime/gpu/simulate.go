package gpu

import (
	"fmt"
	"math"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
)

// Simulate returns an NVML library for the named simulation. "dgxa100" is go-nvml's own
// mock of an 8×A100 server; its devices are wrapped so that telemetry changes plausibly
// over time (a training-like load that drifts per GPU) without the mock's call recording,
// which would grow without bound in a long-running daemon.
func Simulate(name string) (nvml.Interface, error) {
	if name != "dgxa100" {
		return nil, fmt.Errorf("unknown gpu simulation %q (known: dgxa100)", name)
	}
	srv := dgxa100.New()
	start := time.Now()
	devices := make([]nvml.Device, len(srv.Devices))
	for i, d := range srv.Devices {
		md := d.(*dgxa100.Device)
		md.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
			return nvml.FEATURE_ENABLED, nvml.FEATURE_ENABLED, nvml.SUCCESS
		}
		md.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_ENABLED, nvml.SUCCESS }
		devices[i] = &simDevice{Device: md, index: i, total: md.MemoryInfo.Total, start: start, busID: md.PciBusID}
	}
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return quietEvents{}, nvml.SUCCESS }
	srv.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i < 0 || i >= len(devices) {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		return devices[i], nvml.SUCCESS
	}
	return srv, nil
}

// quietEvents is an event set on which no XID error ever happens.
type quietEvents struct{ nvml.EventSet }

func (quietEvents) Wait(ms uint32) (nvml.EventData, nvml.Return) {
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return nvml.EventData{}, nvml.ERROR_TIMEOUT
}

func (quietEvents) Free() nvml.Return { return nvml.SUCCESS }

func (d *simDevice) RegisterEvents(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }

// simDevice overrides the telemetry methods of a mock device.
type simDevice struct {
	nvml.Device
	index int
	total uint64
	start time.Time
	busID string
}

// GetPciInfo fills in the bus id the mock leaves empty, so that each GPU has its own.
func (d *simDevice) GetPciInfo() (nvml.PciInfo, nvml.Return) {
	return pciInfo(d.busID), nvml.SUCCESS
}

func pciInfo(busID string) nvml.PciInfo {
	p := nvml.PciInfo{PciDeviceId: 0x20B010DE}
	copy(p.BusId[:], busID)
	return p
}

// load is a value in [0,1] that moves slowly, out of phase per GPU.
func (d *simDevice) load() float64 {
	t := time.Since(d.start).Seconds()
	return 0.5 + 0.45*math.Sin(t/20+float64(d.index)*0.8)
}

func (d *simDevice) GetUtilizationRates() (nvml.Utilization, nvml.Return) {
	l := d.load()
	return nvml.Utilization{Gpu: uint32(l * 100), Memory: uint32(l * 60)}, nvml.SUCCESS
}

func (d *simDevice) GetMemoryInfo() (nvml.Memory, nvml.Return) {
	used := uint64(float64(d.total) * (0.1 + 0.8*d.load()))
	return nvml.Memory{Total: d.total, Used: used, Free: d.total - used}, nvml.SUCCESS
}

func (d *simDevice) GetPowerUsage() (uint32, nvml.Return) {
	return uint32((60 + 340*d.load()) * 1000), nvml.SUCCESS // milliwatts, A100 TDP 400 W
}

func (d *simDevice) GetTemperature(nvml.TemperatureSensors) (uint32, nvml.Return) {
	return uint32(32 + 45*d.load()), nvml.SUCCESS
}

func (d *simDevice) GetClockInfo(t nvml.ClockType) (uint32, nvml.Return) {
	switch t {
	case nvml.CLOCK_SM, nvml.CLOCK_GRAPHICS:
		return uint32(1095 + 315*d.load()), nvml.SUCCESS
	case nvml.CLOCK_MEM:
		return 1215, nvml.SUCCESS
	}
	return 0, nvml.ERROR_NOT_SUPPORTED
}

func (d *simDevice) GetTotalEccErrors(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) {
	return 0, nvml.SUCCESS
}
