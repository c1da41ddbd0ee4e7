package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// WatchHealth waits for critical XID events on every GPU that supports them, records
// them for telemetry and logs each one, until ctx is cancelled.
func (inv *Inventory) WatchHealth(ctx context.Context, log *slog.Logger) error {
	set, ret := inv.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("gpu health: create event set: %w", nvmlError(ret))
	}
	defer set.Free()
	byHandle := map[nvml.Device]int{}
	watched := 0
	for i, h := range inv.handles {
		ret := h.RegisterEvents(nvml.EventTypeXidCriticalError, set)
		switch {
		case ret == nvml.SUCCESS:
			byHandle[h] = i
			watched++
		case optional(ret):
			log.Info("gpu does not report XID events", "gpu", i, "gpu_uuid", inv.devices[i].UUID)
		default:
			return fmt.Errorf("gpu %d: register xid events: %w", i, nvmlError(ret))
		}
	}
	log.Info("watching gpu health", "gpus", watched)
	for ctx.Err() == nil {
		ev, ret := set.Wait(1000)
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_TIMEOUT:
			continue
		default:
			err := nvmlError(ret)
			if errors.Is(err, ErrLost) {
				log.Error("gpu lost while waiting for events", "err", err)
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
		inv.RecordXID(i, ev.EventData)
		log.Warn("gpu XID error", "gpu", i, "gpu_uuid", inv.devices[i].UUID, "xid", ev.EventData)
	}
	return nil
}

func (inv *Inventory) indexOf(h nvml.Device) int {
	if h == nil {
		return -1
	}
	uuid, ret := h.GetUUID()
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
