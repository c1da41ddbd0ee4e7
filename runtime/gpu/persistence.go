package gpu

import (
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrUnsupported means a GPU does not report the asked setting (NVML's NOT_SUPPORTED).
var ErrUnsupported = errors.New("not supported by this gpu")

// PersistenceMode reports whether GPU i has persistence mode on. Without it the driver
// tears the GPU's state down whenever no process holds it, so every job's first CUDA
// call waits seconds for it to be set up again, and a job's GPU can briefly look lost.
func (inv *Inventory) PersistenceMode(i int) (bool, error) {
	if i < 0 || i >= len(inv.handles) || inv.handles[i] == nil {
		return false, fmt.Errorf("gpu %d: no such gpu", i)
	}
	inv.calls.RLock()
	defer inv.calls.RUnlock()
	if inv.closed {
		return false, fmt.Errorf("gpu %d: %w", i, ErrClosed)
	}
	mode, ret := inv.handles[i].GetPersistenceMode()
	switch {
	case ret == nvml.SUCCESS:
		return mode == nvml.FEATURE_ENABLED, nil
	case optional(ret):
		return false, fmt.Errorf("gpu %d: persistence mode: %w", i, ErrUnsupported)
	}
	return false, fmt.Errorf("gpu %d: persistence mode: %w", i, nvmlError(ret))
}
