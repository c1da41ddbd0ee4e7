// Package gpu is the rig's NVIDIA GPU inventory, health and telemetry, read through NVML
// (go-nvml). A machine without a usable NVIDIA driver is not an error for the node: Open
// says so with ErrNoDriver or ErrUnavailable, and the node runs CPU-only. One GPU that
// fails does not stop the others: it stays in the inventory, marked unhealthy, and is no
// longer handed to jobs.
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

// ErrUnavailable means the driver is installed but NVML cannot be used (a driver upgraded
// without a reboot, no permission on /dev/nvidia*): the node runs CPU-only and its
// status says how to fix it.
var ErrUnavailable = errors.New("nvidia driver unusable: running CPU-only")

// ErrLost means a GPU fell off the bus or stopped answering.
var ErrLost = errors.New("gpu is lost")

// ErrClosed means the inventory was closed: NVML is no longer loaded.
var ErrClosed = errors.New("gpu inventory closed")

// Config configures GPU discovery.
type Config struct {
	// Simulate runs on a simulated rig instead of NVML: "" (off) or "dgxa100", go-nvml's
	// mock of an 8×A100 server, with changing telemetry. For demos, dashboards and tests.
	Simulate string `toml:"simulate"`
	// HarnessBaseImage is the base of the benchmark harness image the node builds on this
	// rig: a PyTorch image with CUDA. Empty uses the harness's default (a tag); pin it by
	// digest (repo@sha256:…) to know what the rig measures with.
	HarnessBaseImage string `toml:"harness_base_image"`
}

// Default returns the default GPU configuration: real NVML.
func Default() Config { return Config{} }

// Simulations lists the values Config.Simulate accepts.
var Simulations = []string{"dgxa100"}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.Simulate != "" && c.Simulate != "dgxa100" {
		errs = append(errs, fmt.Errorf("simulate: %q is not a known simulation (want one of: %s)", c.Simulate, strings.Join(Simulations, ", ")))
	}
	if strings.ContainsAny(c.HarnessBaseImage, " \t\n") {
		errs = append(errs, fmt.Errorf("harness_base_image: %q is not an image reference", c.HarnessBaseImage))
	}
	return errs
}

// Device describes one physical GPU. Its identity does not change while the node runs;
// Healthy and Problem are its state when Devices was called.
type Device struct {
	Index             int    `json:"index"`
	UUID              string `json:"uuid"`
	Name              string `json:"name"`
	PCIBusID          string `json:"pci_bus_id"`
	MemoryBytes       uint64 `json:"memory_bytes"`
	ComputeCapability string `json:"compute_capability"`
	// MIG is true when the GPU is in Multi-Instance GPU mode. CUDA then runs only on its
	// instances: they, not the GPU, are handed to jobs.
	MIG bool `json:"mig"`
	// Instances are the GPU's MIG instances, when MIG is on.
	Instances []Instance `json:"mig_instances,omitempty"`
	// ECC is true when ECC memory is enabled; false also where the GPU has none.
	ECC bool `json:"ecc"`
	// Healthy is false once the GPU was lost or reported a fatal XID error; it is then
	// never handed to a job again while the node runs. Problem says why.
	Healthy bool   `json:"healthy"`
	Problem string `json:"problem,omitempty"`
}

// Instance is one MIG instance of a GPU: a device of its own for CUDA.
type Instance struct {
	UUID        string `json:"uuid"`
	Name        string `json:"name,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	// GPUInstance and ComputeInstance are the instance's ids on its GPU (nvidia-smi's
	// GI and CI columns).
	GPUInstance     int `json:"gpu_instance"`
	ComputeInstance int `json:"compute_instance"`
}

// Sample is one reading of a GPU's telemetry. A field the GPU does not report (NVML's
// NOT_SUPPORTED: utilization on MIG-enabled GPUs, power or temperature on some GeForce
// cards and vGPU guests) is nil and named in Unsupported; a field whose reading failed is
// nil and named in Failed. The other fields are fresh.
type Sample struct {
	GPUUtilPercent     *uint32  `json:"gpu_util_percent,omitempty"`
	MemCopyUtilPercent *uint32  `json:"mem_copy_util_percent,omitempty"`
	MemoryUsedBytes    *uint64  `json:"memory_used_bytes,omitempty"`
	MemoryFreeBytes    *uint64  `json:"memory_free_bytes,omitempty"`
	PowerWatts         *float64 `json:"power_watts,omitempty"`
	TemperatureC       *uint32  `json:"temperature_c,omitempty"`
	SMClockMHz         *uint32  `json:"sm_clock_mhz,omitempty"`
	MemClockMHz        *uint32  `json:"mem_clock_mhz,omitempty"`
	// ECCUncorrected is the volatile uncorrected ECC error count; nil without ECC.
	ECCUncorrected *uint64 `json:"ecc_uncorrected,omitempty"`
	// LastXID is the last XID error reported for the GPU, 0 if none.
	LastXID uint64 `json:"last_xid"`
	// XIDErrors counts XID errors seen since the node started.
	XIDErrors uint64 `json:"xid_errors"`
	// Unsupported names the fields the GPU does not report.
	Unsupported []string `json:"unsupported,omitempty"`
	// Failed names the fields whose reading failed this time, with NVML's error.
	Failed []string `json:"failed,omitempty"`
}

// Field names, as Sample.Unsupported and Sample.Failed use them.
const (
	FieldUtilization = "utilization"
	FieldMemory      = "memory"
	FieldPower       = "power"
	FieldTemperature = "temperature"
	FieldSMClock     = "sm_clock"
	FieldMemClock    = "mem_clock"
	FieldECC         = "ecc_errors"
)

// Inventory is the rig's set of GPUs.
type Inventory struct {
	simulated bool

	// calls guards lib: every NVML call holds it for reading, Close for writing, so that
	// NVML is never unloaded under a call still inside it.
	calls  sync.RWMutex
	lib    nvml.Interface
	closed bool

	driver  string
	cuda    string
	devices []Device
	handles []nvml.Device // nil for a GPU whose handle could not be had

	mu      sync.Mutex
	xids    map[int]xidState
	problem map[int]error // index → why the GPU is out of service
}

type xidState struct {
	last  uint64
	count uint64
}

// Open loads NVML, or the simulation named by cfg, and reads the inventory. Without an
// NVIDIA driver it returns an error wrapping ErrNoDriver; with a driver that NVML cannot
// use, one wrapping ErrUnavailable that says what to do.
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
// the inventory as not real in status and metrics. A GPU that cannot be read is in the
// inventory, unhealthy; only a failure of NVML itself is an error.
func New(lib nvml.Interface, simulated bool) (*Inventory, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, initError(ret)
	}
	inv := &Inventory{lib: lib, simulated: simulated, xids: map[int]xidState{}, problem: map[int]error{}}
	if err := inv.load(); err != nil {
		lib.Shutdown()
		return nil, err
	}
	return inv, nil
}

// initError says what a failed nvmlInit means for the rig owner, and how to fix it.
func initError(ret nvml.Return) error {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return ErrNoDriver
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return fmt.Errorf("%w: the NVIDIA kernel module is not loaded (%w); load it (modprobe nvidia) or reinstall the driver, then restart gpunode", ErrUnavailable, ret)
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return fmt.Errorf("%w: the NVIDIA kernel module and libnvidia-ml.so differ in version, as after a driver upgrade without a reboot (%w); reboot the rig (or reload the nvidia modules), then restart gpunode", ErrUnavailable, ret)
	case nvml.ERROR_NO_PERMISSION:
		return fmt.Errorf("%w: no permission to open /dev/nvidia* (%w); run gpunode in the video group, or check the unit's DeviceAllow= rules against /proc/devices", ErrUnavailable, ret)
	}
	return fmt.Errorf("%w: nvml init: %w", ErrUnavailable, nvmlError(ret))
}

func (inv *Inventory) load() error {
	if v, ret := inv.lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		inv.driver = v
	}
	if cuda, ret := inv.lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS {
		inv.cuda = fmt.Sprintf("%d.%d", cuda/1000, cuda%1000/10)
	}
	n, ret := inv.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("%w: nvml device count: %w", ErrUnavailable, nvmlError(ret))
	}
	for i := 0; i < n; i++ {
		h, ret := inv.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			inv.devices = append(inv.devices, Device{Index: i})
			inv.handles = append(inv.handles, nil)
			inv.problem[i] = fmt.Errorf("handle: %w", nvmlError(ret))
			continue
		}
		d, err := describe(i, h)
		if err != nil {
			inv.problem[i] = err
		}
		inv.devices = append(inv.devices, d)
		inv.handles = append(inv.handles, h)
	}
	return nil
}

// describe reads a GPU's identity. It returns what it could read, with an error when the
// GPU cannot be used.
func describe(i int, h nvml.Device) (Device, error) {
	d := Device{Index: i}
	var ret nvml.Return
	if d.UUID, ret = h.GetUUID(); ret != nvml.SUCCESS {
		d.UUID = ""
		return d, fmt.Errorf("uuid: %w", nvmlError(ret))
	}
	if name, ret := h.GetName(); ret == nvml.SUCCESS {
		d.Name = name
	} else if !optional(ret) {
		return d, fmt.Errorf("name: %w", nvmlError(ret))
	}
	if pci, ret := h.GetPciInfo(); ret == nvml.SUCCESS {
		d.PCIBusID = cString(pci.BusId[:])
		if d.PCIBusID == "" {
			d.PCIBusID = fmt.Sprintf("%08X:%02X:%02X.0", pci.Domain, pci.Bus, pci.Device)
		}
	} else if !optional(ret) {
		return d, fmt.Errorf("pci info: %w", nvmlError(ret))
	}
	if mem, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
		d.MemoryBytes = mem.Total
	} else if !optional(ret) {
		return d, fmt.Errorf("memory info: %w", nvmlError(ret))
	}
	if major, minor, ret := h.GetCudaComputeCapability(); ret == nvml.SUCCESS {
		d.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	} else if !optional(ret) {
		return d, fmt.Errorf("compute capability: %w", nvmlError(ret))
	}
	// MIG and ECC are optional features: NOT_SUPPORTED means off, not an error.
	if cur, _, ret := h.GetMigMode(); ret == nvml.SUCCESS {
		d.MIG = cur == nvml.DEVICE_MIG_ENABLE
	} else if !optional(ret) {
		return d, fmt.Errorf("mig mode: %w", nvmlError(ret))
	}
	if d.MIG {
		inst, err := migInstances(h)
		if err != nil {
			return d, err
		}
		d.Instances = inst
	}
	if cur, _, ret := safeEccMode(h); ret == nvml.SUCCESS {
		d.ECC = cur == nvml.FEATURE_ENABLED
	} else if !optional(ret) {
		return d, fmt.Errorf("ecc mode: %w", nvmlError(ret))
	}
	return d, nil
}

// migInstances lists a MIG-enabled GPU's instances, as the NVIDIA device plugin does:
// every MIG device handle the GPU has, by index; an empty slot is NOT_FOUND.
func migInstances(h nvml.Device) ([]Instance, error) {
	n, ret := h.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("mig device count: %w", nvmlError(ret))
	}
	var out []Instance
	for j := 0; j < n; j++ {
		m, ret := h.GetMigDeviceHandleByIndex(j)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue
		}
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("mig device %d: %w", j, nvmlError(ret))
		}
		var in Instance
		if in.UUID, ret = m.GetUUID(); ret != nvml.SUCCESS {
			return nil, fmt.Errorf("mig device %d: uuid: %w", j, nvmlError(ret))
		}
		if name, ret := m.GetName(); ret == nvml.SUCCESS {
			in.Name = name
		}
		if mem, ret := m.GetMemoryInfo(); ret == nvml.SUCCESS {
			in.MemoryBytes = mem.Total
		}
		if id, ret := m.GetGpuInstanceId(); ret == nvml.SUCCESS {
			in.GPUInstance = id
		}
		if id, ret := m.GetComputeInstanceId(); ret == nvml.SUCCESS {
			in.ComputeInstance = id
		}
		out = append(out, in)
	}
	return out, nil
}

// Simulated tells whether the inventory is a simulation.
func (inv *Inventory) Simulated() bool { return inv.simulated }

// Driver returns the NVIDIA driver version; "" when NVML did not say.
func (inv *Inventory) Driver() string { return inv.driver }

// CUDA returns the highest CUDA version the driver supports, as "12.4"; "" when NVML did
// not say.
func (inv *Inventory) CUDA() string { return inv.cuda }

// Devices returns the GPUs in index order, each with its health now.
func (inv *Inventory) Devices() []Device {
	out := make([]Device, len(inv.devices))
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for i, d := range inv.devices {
		d.Instances = append([]Instance(nil), d.Instances...)
		d.Healthy = inv.problem[i] == nil
		if !d.Healthy {
			d.Problem = inv.problem[i].Error()
		}
		out[i] = d
	}
	return out
}

// Allocatable returns the UUIDs a job may be given: every healthy GPU without MIG and
// every instance of a healthy MIG-enabled GPU. A MIG-enabled GPU itself is never listed:
// CUDA sees no device through its UUID.
func (inv *Inventory) Allocatable() []string {
	var out []string
	for _, d := range inv.Devices() {
		if !d.Healthy || d.UUID == "" {
			continue
		}
		if !d.MIG {
			out = append(out, d.UUID)
			continue
		}
		for _, in := range d.Instances {
			out = append(out, in.UUID)
		}
	}
	return out
}

// Usable tells whether the GPU or MIG instance with this UUID may be given to a job now.
func (inv *Inventory) Usable(uuid string) bool {
	for _, u := range inv.Allocatable() {
		if u == uuid {
			return true
		}
	}
	return false
}

// Healthy returns nil when GPU i is in service, or why it is not.
func (inv *Inventory) Healthy(i int) error {
	if i < 0 || i >= len(inv.devices) {
		return fmt.Errorf("gpu %d: no such gpu", i)
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if p := inv.problem[i]; p != nil {
		return fmt.Errorf("gpu %d: out of service: %w", i, p)
	}
	return nil
}

// markUnhealthy takes GPU i out of service for the rest of the node's run; the first
// reason stays. It reports whether the GPU was healthy until now.
func (inv *Inventory) markUnhealthy(i int, reason error) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.problem[i] != nil {
		return false
	}
	inv.problem[i] = reason
	return true
}

// Sample reads GPU i's telemetry now, field by field: a field the GPU does not support
// is left out, a failed one named in Failed. A lost GPU is taken out of service and its
// sample fails with ErrLost; so does every later sample of it, without asking NVML.
func (inv *Inventory) Sample(i int) (Sample, error) {
	if i < 0 || i >= len(inv.handles) {
		return Sample{}, fmt.Errorf("gpu %d: no such gpu", i)
	}
	if err := inv.Healthy(i); err != nil {
		if errors.Is(err, ErrLost) || inv.handles[i] == nil || inv.devices[i].UUID == "" {
			return Sample{}, err
		}
		// A GPU out of service after a fatal XID still reports telemetry worth seeing.
	}
	inv.calls.RLock()
	defer inv.calls.RUnlock()
	if inv.closed {
		return Sample{}, fmt.Errorf("gpu %d: %w", i, ErrClosed)
	}
	h := inv.handles[i]
	var s Sample
	var lost error
	field := func(name string, ret nvml.Return) bool {
		switch {
		case ret == nvml.SUCCESS:
			return true
		case optional(ret):
			s.Unsupported = append(s.Unsupported, name)
		case ret == nvml.ERROR_GPU_IS_LOST:
			lost = fmt.Errorf("gpu %d: %s: %w", i, name, nvmlError(ret))
		default:
			s.Failed = append(s.Failed, name+": "+ret.Error())
		}
		return false
	}
	if util, ret := h.GetUtilizationRates(); field(FieldUtilization, ret) {
		s.GPUUtilPercent, s.MemCopyUtilPercent = &util.Gpu, &util.Memory
	}
	if mem, ret := h.GetMemoryInfo(); field(FieldMemory, ret) {
		s.MemoryUsedBytes, s.MemoryFreeBytes = &mem.Used, &mem.Free
	}
	if mw, ret := h.GetPowerUsage(); field(FieldPower, ret) {
		w := float64(mw) / 1000
		s.PowerWatts = &w
	}
	if t, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); field(FieldTemperature, ret) {
		s.TemperatureC = &t
	}
	if c, ret := h.GetClockInfo(nvml.CLOCK_SM); field(FieldSMClock, ret) {
		s.SMClockMHz = &c
	}
	if c, ret := h.GetClockInfo(nvml.CLOCK_MEM); field(FieldMemClock, ret) {
		s.MemClockMHz = &c
	}
	if inv.devices[i].ECC {
		if n, ret := h.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); field(FieldECC, ret) {
			s.ECCUncorrected = &n
		}
	}
	if lost != nil {
		inv.markUnhealthy(i, lost)
		return Sample{}, lost
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

// Close releases NVML once no call is inside it any more; later calls fail with
// ErrClosed instead of calling into an unloaded library.
func (inv *Inventory) Close() error {
	inv.calls.Lock()
	defer inv.calls.Unlock()
	if inv.closed {
		return nil
	}
	inv.closed = true
	if ret := inv.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %w", nvmlError(ret))
	}
	return nil
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
