package doctor

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/gpunode/gpunode/benchmark"
)

// MaxBenchmarkAge is the age past which the rig's benchmark report is stale.
const MaxBenchmarkAge = 30 * 24 * time.Hour

// Benchmark checks the rig's kept benchmark report (path): present, signed, recent.
func Benchmark(path, dataDir string, now time.Time) Result {
	const name = "benchmark"
	fix := fmt.Sprintf("measure the rig: gpunode bench --data-dir %s (the daemon serves the new report at once)", dataDir)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Result{Name: name, Status: Warn, Detail: "no benchmark report: the rig advertises no measured capacity", Fix: fix}
	}
	if err != nil {
		return Result{Name: name, Status: Warn, Detail: err.Error(), Fix: fix}
	}
	defer f.Close()
	r, err := benchmark.DecodeReport(f)
	if err == nil {
		err = r.Verify()
	}
	if err != nil {
		return Result{Name: name, Status: Warn, Detail: fmt.Sprintf("benchmark report %s does not verify (%v): the node ignores it", path, err), Fix: fix}
	}
	age := now.Sub(r.CreatedAt)
	if age > MaxBenchmarkAge {
		return Result{Name: name, Status: Warn, Detail: fmt.Sprintf("the benchmark report is %d days old (from %s): drivers and hardware may have changed", int(age.Hours()/24), r.CreatedAt.Format(time.DateOnly)), Fix: fix}
	}
	return ok(name, "%s report from %s", r.Backend, r.CreatedAt.Format(time.RFC3339))
}
