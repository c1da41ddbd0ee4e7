package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// XIDClass is what an XID error means for the GPU that reported it.
type XIDClass int

const (
	// XIDOther is an XID error of no known class: logged and counted.
	XIDOther XIDClass = iota
	// XIDApplication is caused by the program on the GPU (an illegal memory access, a
	// graphics engine exception, a reset channel): the job fails, the GPU is fine.
	XIDApplication
	// XIDFatal means the GPU needs a reset or a technician (uncorrectable ECC errors,
	// fallen off the bus, a failed page retirement): it is taken out of service.
	XIDFatal
)

// xidClasses follows NVIDIA's XID catalogue (docs.nvidia.com/deploy/xid-errors): the
// errors whose listed cause is a user application, and those whose listed action is a
// GPU reset, a node reboot or a hardware check.
var xidClasses = map[uint64]XIDClass{
	13:  XIDApplication, // graphics engine exception
	31:  XIDApplication, // GPU memory page fault
	43:  XIDApplication, // GPU stopped processing (reset channel)
	45:  XIDApplication, // preemptive cleanup after a previous error
	68:  XIDApplication, // NVDEC0 exception
	109: XIDApplication, // context switch timeout
	48:  XIDFatal,       // double-bit ECC error
	64:  XIDFatal,       // ECC page retirement or row remapping failure
	74:  XIDFatal,       // NVLink error
	79:  XIDFatal,       // GPU has fallen off the bus
	94:  XIDFatal,       // contained ECC error
	95:  XIDFatal,       // uncontained ECC error
	119: XIDFatal,       // GSP RPC timeout
	120: XIDFatal,       // GSP error
}

// ClassifyXID tells what XID error xid means for its GPU.
func ClassifyXID(xid uint64) XIDClass { return xidClasses[xid] }

func (c XIDClass) String() string {
	switch c {
	case XIDApplication:
		return "application"
	case XIDFatal:
		return "fatal"
	}
	return "other"
}

// WatchHealth waits for critical XID events on every GPU that supports them, until ctx
// is cancelled. Each event is recorded for telemetry and logged; a fatal one takes its
// GPU out of service. The watcher never stops the node: without an event set it logs
// why and returns nil, and a GPU that cannot register is left unwatched.
func (inv *Inventory) WatchHealth(ctx context.Context, log *slog.Logger) error {
	set, byHandle, err := inv.registerEvents(log)
	if err != nil {
		log.Error("gpu health is not watched: XID errors will not take a GPU out of service", "err", err)
		return nil
	}
	defer inv.nvml(func() { set.Free() })
	log.Info("watching gpu health", "gpus", len(byHandle))
	for ctx.Err() == nil {
		var ev nvml.EventData
		ret := nvml.ERROR_UNINITIALIZED
		inv.nvml(func() { ev, ret = set.Wait(1000) })
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_TIMEOUT:
			continue
		default:
			if ret == nvml.ERROR_GPU_IS_LOST {
				inv.findLost(log)
			} else {
				log.Warn("gpu event wait failed", "err", nvmlError(ret))
			}
			// Back off instead of spinning on a broken event set.
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			continue
		}
		i, ok := byHandle[ev.Device]
		if !ok {
			i = inv.indexOf(ev.Device)
		}
		if ev.EventType != nvml.EventTypeXidCriticalError || i < 0 {
			continue
		}
		inv.handleXID(i, ev.EventData, log)
	}
	return nil
}

// handleXID records XID error xid of GPU i and acts on its class.
func (inv *Inventory) handleXID(i int, xid uint64, log *slog.Logger) {
	inv.RecordXID(i, xid)
	class := ClassifyXID(xid)
	attrs := []any{"gpu", i, "gpu_uuid", inv.devices[i].UUID, "xid", xid, "class", class.String()}
	switch class {
	case XIDApplication:
		log.Info("gpu XID error caused by the running program; the gpu stays in service", attrs...)
	case XIDFatal:
		if inv.markUnhealthy(i, fmt.Errorf("fatal XID %d: reset the GPU (nvidia-smi -r) or check the hardware, then restart gpunode", xid)) {
			log.Error("gpu fatal XID error: gpu taken out of service", attrs...)
		}
	default:
		log.Warn("gpu XID error", attrs...)
	}
}

// registerEvents creates the event set and registers every GPU that can report XIDs.
func (inv *Inventory) registerEvents(log *slog.Logger) (nvml.EventSet, map[nvml.Device]int, error) {
	var set nvml.EventSet
	var ret nvml.Return
	inv.nvml(func() { set, ret = inv.lib.EventSetCreate() })
	if ret != nvml.SUCCESS {
		return nil, nil, fmt.Errorf("create event set: %w", nvmlError(ret))
	}
	byHandle := map[nvml.Device]int{}
	for i, h := range inv.handles {
		if h == nil || inv.Healthy(i) != nil {
			continue
		}
		inv.nvml(func() { ret = h.RegisterEvents(nvml.EventTypeXidCriticalError, set) })
		switch {
		case ret == nvml.SUCCESS:
			byHandle[h] = i
		case optional(ret):
			log.Info("gpu does not report XID events", "gpu", i, "gpu_uuid", inv.devices[i].UUID)
		default:
			log.Warn("gpu XID events not watched", "gpu", i, "gpu_uuid", inv.devices[i].UUID, "err", nvmlError(ret))
		}
	}
	return set, byHandle, nil
}

// findLost asks each GPU in service whether it still answers, and takes lost ones out.
func (inv *Inventory) findLost(log *slog.Logger) {
	for i, h := range inv.handles {
		if h == nil || inv.Healthy(i) != nil {
			continue
		}
		ret := nvml.SUCCESS
		inv.nvml(func() { _, ret = h.GetUUID() })
		if ret == nvml.ERROR_GPU_IS_LOST {
			if inv.markUnhealthy(i, fmt.Errorf("gpu %d: %w", i, nvmlError(ret))) {
				log.Error("gpu lost: taken out of service", "gpu", i, "gpu_uuid", inv.devices[i].UUID)
			}
		}
	}
}

// nvml runs f, a call into NVML, unless the inventory is closed.
func (inv *Inventory) nvml(f func()) {
	inv.calls.RLock()
	defer inv.calls.RUnlock()
	if !inv.closed {
		f()
	}
}

func (inv *Inventory) indexOf(h nvml.Device) int {
	if h == nil {
		return -1
	}
	uuid, ret := "", nvml.ERROR_UNINITIALIZED
	inv.nvml(func() { uuid, ret = h.GetUUID() })
	if ret != nvml.SUCCESS {
		return -1
	}
	for i, d := range inv.devices {
		if d.UUID == uuid {
			return i
		}
	}
	return -1
}
