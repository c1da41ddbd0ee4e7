// Package gpu is the rig's NVIDIA GPU inventory, health and telemetry, read through NVML
// (go-nvml). A machine without the NVIDIA driver is not an error for the node: Open says
// so with ErrNoDriver and the node runs CPU-only.
package gpu

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoDriver means NVML could not be loaded: no NVIDIA driver is installed.
var ErrNoDriver = errors.New("no NVIDIA driver found (libnvidia-ml.so.1 could not be loaded): running CPU-only")

// ErrLost means a GPU fell off the bus or stopped answering.
var ErrLost = errors.New("gpu is lost")

// Config configures GPU discovery.
type Config struct {
	// Simulate runs on a simulated rig instead of NVML: "" (off) or "dgxa100", go-nvml's
	// mock of an 8×A100 server, with changing telemetry. For demos, dashboards and tests.
	Simulate string `toml:"simulate"`
}

// Default returns the default GPU configuration: real NVML.
func Default() Config { return Config{} }

// Simulations lists the values Config.Simulate accepts.
var Simulations = []string{"dgxa100"}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	if c.Simulate != "" && c.Simulate != "dgxa100" {
		return []error{fmt.Errorf("simulate: %q is not a known simulation (want one of: %s)", c.Simulate, strings.Join(Simulations, ", "))}
	}
	return nil
}

// Device describes one GPU. Its fields do not change while the node runs.
type Device struct {
	Index             int    `json:"index"`
	UUID              string `json:"uuid"`
	Name              string `json:"name"`
	PCIBusID          string `json:"pci_bus_id"`
	MemoryBytes       uint64 `json:"memory_bytes"`
	ComputeCapability string `json:"compute_capability"`
	// MIG is true when the GPU is in Multi-Instance GPU mode.
	MIG bool `json:"mig"`
	// ECC is true when ECC memory is enabled; false also where the GPU has none.
	ECC bool `json:"ecc"`
}

// Sample is one reading of a GPU's telemetry.
type Sample struct {
	GPUUtilPercent     uint32  `json:"gpu_util_percent"`
	MemCopyUtilPercent uint32  `json:"mem_copy_util_percent"`
	MemoryUsedBytes    uint64  `json:"memory_used_bytes"`
	MemoryFreeBytes    uint64  `json:"memory_free_bytes"`
	PowerWatts         float64 `json:"power_watts"`
	TemperatureC       uint32  `json:"temperature_c"`
	SMClockMHz         uint32  `json:"sm_clock_mhz"`
	MemClockMHz        uint32  `json:"mem_clock_mhz"`
	// LastXID is the last XID error reported for the GPU, 0 if none.
	LastXID uint64 `json:"last_xid"`
	// XIDErrors counts XID errors seen since the node started.
	XIDErrors uint64 `json:"xid_errors"`
	// ECCUncorrected is the volatile uncorrected ECC error count (0 without ECC).
	ECCUncorrected uint64 `json:"ecc_uncorrected"`
}

// Inventory is the rig's set of GPUs.
type Inventory struct {
	lib       nvml.Interface
	simulated bool
	driver    string
	cuda      string
	devices   []Device
	handles   []nvml.Device

	mu   sync.Mutex
	xids map[int]xidState
}

type xidState struct {
	last  uint64
	count uint64
}

// Open loads NVML, or the simulation named by cfg, and reads the inventory. Without an
// NVIDIA driver it returns an error wrapping ErrNoDriver.
func Open(cfg Config, log *slog.Logger) (*Inventory, error) {
	if cfg.Simulate != "" {
		lib, err := Simulate(cfg.Simulate)
		if err != nil {
			return nil, err
		}
		return New(lib, true)
	}
	return New(nvml.New(), false)
}

// New reads the inventory through lib, which must not be initialised yet. simulated marks
// the inventory as not real in status and metrics.
func New(lib nvml.Interface, simulated bool) (*Inventory, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return nil, ErrNoDriver
		}
		return nil, fmt.Errorf("nvml init: %w", nvmlError(ret))
	}
	inv := &Inventory{lib: lib, simulated: simulated, xids: map[int]xidState{}}
	if err := inv.load(); err != nil {
		lib.Shutdown()
		return nil, err
	}
	return inv, nil
}

func (inv *Inventory) load() error {
	var ret nvml.Return
	if inv.driver, ret = inv.lib.SystemGetDriverVersion(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml driver version: %w", nvmlError(ret))
	}
	cuda, ret := inv.lib.SystemGetCudaDriverVersion()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("nvml cuda version: %w", nvmlError(ret))
	}
	inv.cuda = fmt.Sprintf("%d.%d", cuda/1000, cuda%1000/10)
	n, ret := inv.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("nvml device count: %w", nvmlError(ret))
	}
	for i := 0; i < n; i++ {
		h, ret := inv.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return fmt.Errorf("gpu %d: handle: %w", i, nvmlError(ret))
		}
		d, err := describe(i, h)
		if err != nil {
			return fmt.Errorf("gpu %d: %w", i, err)
		}
		inv.devices = append(inv.devices, d)
		inv.handles = append(inv.handles, h)
	}
	return nil
}

func describe(i int, h nvml.Device) (Device, error) {
	d := Device{Index: i}
	var ret nvml.Return
	if d.UUID, ret = h.GetUUID(); ret != nvml.SUCCESS {
		return d, fmt.Errorf("uuid: %w", nvmlError(ret))
	}
	if d.Name, ret = h.GetName(); ret != nvml.SUCCESS {
		return d, fmt.Errorf("name: %w", nvmlError(ret))
	}
	pci, ret := h.GetPciInfo()
	if ret != nvml.SUCCESS {
		return d, fmt.Errorf("pci info: %w", nvmlError(ret))
	}
	d.PCIBusID = cString(pci.BusId[:])
	if d.PCIBusID == "" {
		d.PCIBusID = fmt.Sprintf("%08X:%02X:%02X.0", pci.Domain, pci.Bus, pci.Device)
	}
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return d, fmt.Errorf("memory info: %w", nvmlError(ret))
	}
	d.MemoryBytes = mem.Total
	major, minor, ret := h.GetCudaComputeCapability()
	if ret != nvml.SUCCESS {
		return d, fmt.Errorf("compute capability: %w", nvmlError(ret))
	}
	d.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	// MIG and ECC are optional features: NOT_SUPPORTED means off, not an error.
	if cur, _, ret := h.GetMigMode(); ret == nvml.SUCCESS {
		d.MIG = cur == nvml.DEVICE_MIG_ENABLE
	} else if !optional(ret) {
		return d, fmt.Errorf("mig mode: %w", nvmlError(ret))
	}
	if cur, _, ret := safeEccMode(h); ret == nvml.SUCCESS {
		d.ECC = cur == nvml.FEATURE_ENABLED
	} else if !optional(ret) {
		return d, fmt.Errorf("ecc mode: %w", nvmlError(ret))
	}
	return d, nil
}

// Simulated tells whether the inventory is a simulation.
func (inv *Inventory) Simulated() bool { return inv.simulated }

// Driver returns the NVIDIA driver version.
func (inv *Inventory) Driver() string { return inv.driver }

// CUDA returns the highest CUDA version the driver supports, as "12.4".
func (inv *Inventory) CUDA() string { return inv.cuda }

// Devices returns the GPUs in index order.
func (inv *Inventory) Devices() []Device {
	return append([]Device(nil), inv.devices...)
}

// Sample reads GPU i's telemetry now. Any failing NVML call fails the whole sample, so
// that a caller never mixes fresh and missing values for one GPU.
func (inv *Inventory) Sample(i int) (Sample, error) {
	if i < 0 || i >= len(inv.handles) {
		return Sample{}, fmt.Errorf("gpu %d: no such gpu", i)
	}
	h := inv.handles[i]
	var s Sample
	util, ret := h.GetUtilizationRates()
	if ret != nvml.SUCCESS {
		return s, sampleError(i, "utilization", ret)
	}
	s.GPUUtilPercent, s.MemCopyUtilPercent = util.Gpu, util.Memory
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return s, sampleError(i, "memory", ret)
	}
	s.MemoryUsedBytes, s.MemoryFreeBytes = mem.Used, mem.Free
	mw, ret := h.GetPowerUsage()
	if ret != nvml.SUCCESS {
		return s, sampleError(i, "power", ret)
	}
	s.PowerWatts = float64(mw) / 1000
	if s.TemperatureC, ret = h.GetTemperature(nvml.TEMPERATURE_GPU); ret != nvml.SUCCESS {
		return s, sampleError(i, "temperature", ret)
	}
	if s.SMClockMHz, ret = h.GetClockInfo(nvml.CLOCK_SM); ret != nvml.SUCCESS {
		return s, sampleError(i, "sm clock", ret)
	}
	if s.MemClockMHz, ret = h.GetClockInfo(nvml.CLOCK_MEM); ret != nvml.SUCCESS {
		return s, sampleError(i, "mem clock", ret)
	}
	if inv.devices[i].ECC {
		n, ret := h.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
		if ret != nvml.SUCCESS && !optional(ret) {
			return s, sampleError(i, "ecc errors", ret)
		}
		s.ECCUncorrected = n
	}
	inv.mu.Lock()
	x := inv.xids[i]
	inv.mu.Unlock()
	s.LastXID, s.XIDErrors = x.last, x.count
	return s, nil
}

// RecordXID notes an XID error for GPU i; the health watcher calls it.
func (inv *Inventory) RecordXID(i int, xid uint64) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	x := inv.xids[i]
	x.last, x.count = xid, x.count+1
	inv.xids[i] = x
}

// Close releases NVML.
func (inv *Inventory) Close() error {
	if ret := inv.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %w", nvmlError(ret))
	}
	return nil
}

func sampleError(i int, what string, ret nvml.Return) error {
	return fmt.Errorf("gpu %d: %s: %w", i, what, nvmlError(ret))
}

// nvmlError converts an NVML return code into a Go error (nvml.Return is one, so
// errors.Is(err, nvml.ERROR_…) works); lost GPUs also wrap ErrLost.
func nvmlError(ret nvml.Return) error {
	if ret == nvml.ERROR_GPU_IS_LOST {
		return fmt.Errorf("%w (%w)", ErrLost, ret)
	}
	return ret
}

func optional(ret nvml.Return) bool {
	return ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_NOT_FOUND
}

// safeEccMode reads the ECC mode; mock devices that do not implement it panic, which we
// treat as "not supported" so a partial mock still yields an inventory.
func safeEccMode(h nvml.Device) (cur, pending nvml.EnableState, ret nvml.Return) {
	defer func() {
		if recover() != nil {
			ret = nvml.ERROR_NOT_SUPPORTED
		}
	}()
	return h.GetEccMode()
}

func cString[T int8 | uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
