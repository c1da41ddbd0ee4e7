package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gpunode/gpunode/runtime"
)

// Jobs is what the harness needs of the node's container runtime (runtime.Runtime).
type Jobs interface {
	Start(ctx context.Context, spec runtime.Spec) (runtime.Handle, error)
	Wait(ctx context.Context, jobID string) (runtime.Result, error)
	Stop(ctx context.Context, jobID string) error
	Logs(ctx context.Context, jobID string, follow bool) (io.ReadCloser, error)
}

// RuntimeContainers runs the harness as a job of the node's container runtime, with the
// runtime's hardening (no network, read-only root, dropped capabilities). The runtime
// keeps stdout and stderr in one log, so the results come from OutputDir/results.jsonl.
type RuntimeContainers struct {
	Jobs Jobs
}

var benchSeq atomic.Int64

// BuildImage builds an image with the node's runtime, when it can.
func (r RuntimeContainers) BuildImage(ctx context.Context, tag string, buildContext io.Reader, args map[string]string) (string, error) {
	b, ok := r.Jobs.(Builder)
	if !ok {
		return "", errors.New("the container runtime cannot build images")
	}
	return b.BuildImage(ctx, tag, buildContext, args)
}

// RunContainer starts the harness, waits for it, then copies its results to stdout and
// the tail of its log to stderr.
func (r RuntimeContainers) RunContainer(ctx context.Context, spec ContainerSpec, stdout, stderr io.Writer) (int, error) {
	id := "benchmark-" + time.Now().UTC().Format("20060102T150405") + "-" + strconv.FormatInt(benchSeq.Add(1), 10)
	rs := runtime.Spec{
		JobID:     id,
		Image:     spec.Image,
		AllowTag:  true, // the harness image is the operator's own, by tag
		Command:   spec.Cmd,
		OutputDir: spec.OutputDir,
		Network:   runtime.NetworkNone,
	}
	for _, g := range spec.GPUs {
		if g == "all" {
			return 0, errors.New("harness: the runtime attaches GPUs by UUID only; set the harness's gpus from the inventory")
		}
	}
	rs.GPUs = spec.GPUs
	for _, m := range spec.Mounts {
		rs.Inputs = append(rs.Inputs, runtime.Mount{Source: m.Source, Target: m.Target})
	}
	if _, err := r.Jobs.Start(ctx, rs); err != nil {
		return 0, fmt.Errorf("start %s: %w", id, err)
	}
	res, err := r.Jobs.Wait(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = r.Jobs.Stop(stopCtx, id)
		}
		return 0, fmt.Errorf("wait %s: %w", id, err)
	}
	if logs, err := r.Jobs.Logs(ctx, id, false); err == nil {
		_, _ = io.Copy(stderr, logs)
		logs.Close()
	}
	if res.Error != "" || res.OOMKilled || res.TimedOut || res.Cancelled {
		return res.ExitCode, fmt.Errorf("%s: error %q, oom killed %v, timed out %v, cancelled %v", id, res.Error, res.OOMKilled, res.TimedOut, res.Cancelled)
	}
	f, err := os.Open(filepath.Join(spec.OutputDir, ResultsFile))
	if err != nil {
		return res.ExitCode, fmt.Errorf("%s: results: %w", id, err)
	}
	defer f.Close()
	if _, err := io.Copy(stdout, f); err != nil {
		return res.ExitCode, err
	}
	return res.ExitCode, nil
}
