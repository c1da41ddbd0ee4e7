package docker

import (
	"bufio"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/gpunode/gpunode/runtime"
)

// The operator's CPU, memory, /tmp and run-time limits are ceilings: a job gets what it
// asks up to them, and the limit itself when it asks nothing. Left at 0, CPUs and memory
// are derived from the host, so that no job can take the whole machine.

// HostCaps returns cfg with a zero CPU or memory limit replaced by one derived from the
// host: every CPU, and the RAM less a reserve for the host (the larger of 2 GiB and a
// tenth), or no memory cap if the RAM cannot be read.
func HostCaps(cfg Config) Config {
	if cfg.CPUs == 0 {
		cfg.CPUs = float64(goruntime.NumCPU())
	}
	if cfg.MemoryBytes == 0 {
		if total, err := memTotal("/proc/meminfo"); err == nil {
			cfg.MemoryBytes = memoryCap(total)
		}
	}
	return cfg
}

// memoryCap is total less the host's reserve, never below Docker's 6 MiB minimum.
func memoryCap(total int64) int64 {
	reserve := max(int64(2<<30), total/10)
	return max(total-reserve, total/2, 6<<20)
}

// memTotal reads MemTotal from a /proc/meminfo file, in bytes.
func memTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil || kb <= 0 || kb > 1<<40 {
			return 0, fmt.Errorf("%s: MemTotal %q", path, rest)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no MemTotal", path)
}

// ceiling is what a job that asks ask gets under the operator's limit: ask, at most
// limit, and limit when it asks nothing. A zero limit does not cap.
func ceiling[T ~int64 | ~float64](ask, limit T) T {
	if limit > 0 && (ask == 0 || ask > limit) {
		return limit
	}
	return ask
}

// overCaps says which of a job's asks exceed the operator's ceilings, so that such a
// job is declined rather than run with less than it needs.
func (r *Runtime) overCaps(s runtime.Spec) error {
	var over []string
	if c := r.cfg.CPUs; c > 0 && s.Resources.CPUs > c {
		over = append(over, fmt.Sprintf("%g CPUs (cap %g)", s.Resources.CPUs, c))
	}
	if c := r.cfg.MemoryBytes; c > 0 && s.Resources.MemoryBytes > c {
		over = append(over, fmt.Sprintf("%d bytes of memory (cap %d)", s.Resources.MemoryBytes, c))
	}
	if c := r.cfg.TmpBytes; c > 0 && s.Resources.TmpBytes > c {
		over = append(over, fmt.Sprintf("%d bytes of /tmp (cap %d)", s.Resources.TmpBytes, c))
	}
	if c := r.cfg.RunTimeout; c > 0 && s.RunTimeout > c {
		over = append(over, fmt.Sprintf("a run of %s (cap %s)", s.RunTimeout, c))
	}
	if len(over) > 0 {
		return fmt.Errorf("job %s asks for %s: %w", s.JobID, strings.Join(over, ", "), runtime.ErrOverCaps)
	}
	return nil
}
