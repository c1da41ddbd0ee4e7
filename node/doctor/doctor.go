// Package doctor checks a rig's prerequisites for `gpunode doctor`: the NVIDIA driver
// and its container path, the container engine, the host, the network, the chain, IPFS
// and the benchmark. Each check gives a verdict and, when something is wrong, the
// exact fix. It is the everyday, fast check; runtime/gpu/rigcheck is the deep one that
// runs real workloads on the GPUs.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/gpunode/gpunode/node/datadir"
)

// Status is a check's verdict.
type Status string

// Verdicts. Only Fail makes `gpunode doctor` exit non-zero: a warning is something
// the rig can run with, a skip a check whose dependency is not configured (its detail
// says why).
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Result is one check's verdict.
type Result struct {
	// Name identifies the check: "docker", "nvidia-driver", …
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix says what to do, when the verdict is not OK.
	Fix string `json:"fix,omitempty"`
}

// Report is every check's verdict, in the order they ran.
type Report struct {
	// CheckedAt is when the checks ran.
	CheckedAt time.Time `json:"checked_at"`
	Checks    []Result  `json:"checks"`
	// Failed is true when a check failed.
	Failed bool `json:"failed"`
}

func (r *Report) add(res Result) {
	r.Checks = append(r.Checks, res)
	if res.Status == Fail {
		r.Failed = true
	}
}

func ok(name, format string, args ...any) Result {
	return Result{Name: name, Status: OK, Detail: fmt.Sprintf(format, args...)}
}

func skip(name, detail string) Result { return Result{Name: name, Status: Skip, Detail: detail} }

// checkTimeout bounds one check that talks to something (engine, chain, kubo, daemon).
const checkTimeout = 30 * time.Second

func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, checkTimeout)
}

// Save keeps rep as the rig's last doctor report in its data directory
// (datadir.Layout.DoctorReport), where the daemon serves it to the dashboard. It writes a new
// file and renames it over the old one, so a reader never sees half a report.
func Save(rep Report, dataDir string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	path := datadir.New(dataDir).DoctorReport()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save the doctor report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save the doctor report: %w", err)
	}
	return nil
}
