package jobs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/runtime"
)

// Accepting a job locks the provider's bond, and a job given back after acceptance
// leaves the bond to the sponsor. So before anything is sent on chain the machine makes
// sure it can finish the job: the contract's terms agree with the manifest, the image
// exists, fits and runs (a dry run of its container), every input can be fetched, and
// the run window covers the job and the time it took to get ready. A job that fails any
// of these is declined, at no cost on chain, and the reason is counted.

// Kinds of reasons a job is declined, as the policy's rejection metric counts them.
const (
	KindManifest  = "manifest"
	KindTerms     = "terms"
	KindNetwork   = "network"
	KindGPUs      = "gpus"
	KindDataset   = "dataset"
	KindImage     = "image"
	KindImageSize = "image_size"
	KindContainer = "container"
	KindInput     = "input"
	KindRunWindow = "run_window"
	KindResources = "resources"
)

// Preflight is what the machine measured of a job before accepting it.
type Preflight struct {
	// PrepareTime is how long fetching the inputs and pulling and checking the image
	// took; the run window must leave room for it.
	PrepareTime time.Duration `json:"prepare_time"`
	// ImageBytes is the job's image as the engine stores it; 0 if not checked.
	ImageBytes int64 `json:"image_bytes,omitempty"`
	// Platform is the image's os/architecture.
	Platform string `json:"platform,omitempty"`
}

// Checker is a Runtime that can dry-run a job: pull and inspect its image, and create
// and remove its container with the configuration Start would use (runtime/docker).
type Checker interface {
	Check(ctx context.Context, spec runtime.Spec, maxImageBytes int64) (runtime.Checked, error)
}

// Measurer is an Admitter that also judges what the dry run measured (run window against
// the prepare time) and caps the image size.
type Measurer interface {
	MaxImageBytes() int64
	Measured(p Posting, m *job.Manifest, f Preflight) (ok bool, reasons []string)
}

// Recorder is an Admitter that counts the jobs the machine declines on its own checks.
type Recorder interface {
	Declined(p Posting, m *job.Manifest, kind, reason string)
}

// kindError is a failed check that is worth retrying, with the kind to count if the
// retries run out.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

func kinded(kind string, err error) error { return &kindError{kind: kind, err: err} }

// ScoreScale converts a manifest's threshold to the contract's integer, as validators
// score: threshold × 10⁶.
const ScoreScale = 1_000_000

// ContractThreshold is the contract's threshold for a manifest threshold; false if it
// does not fit the contract's uint32.
func ContractThreshold(t float64) (uint32, bool) {
	v := math.Round(t * ScoreScale)
	if math.IsNaN(v) || v < 0 || v > math.MaxUint32 {
		return 0, false
	}
	return uint32(v), true
}

// checkTerms compares the contract's terms with the manifest; it returns why they do
// not agree, or "".
func (m *Machine) checkTerms(p Posting, man *job.Manifest) string {
	if p.Source == SourcePool {
		return "" // the pool's coordinator compared them
	}
	return CheckTerms(p, man, time.Duration(m.cfg.MinAttestWindow))
}

// CheckTerms compares a chain posting's terms with its manifest, validators needing at
// least minAttest to attest; it returns why they do not agree, or "". A pool
// coordinator checks a posting with it as a provider would.
func CheckTerms(p Posting, man *job.Manifest, minAttest time.Duration) string {
	if p.RunWindowSeconds == 0 {
		return "" // not from the chain: no terms to compare
	}
	if want, ok := ContractThreshold(man.Evaluation.Threshold); !ok || p.Threshold != want {
		return fmt.Sprintf("threshold mismatch: the chain's threshold is %d, the manifest's %g makes %d (threshold × 10⁶): validators would judge the job by another bar than its manifest says",
			p.Threshold, man.Evaluation.Threshold, want)
	}
	n := len(p.Validators)
	if p.Sealed {
		n = p.ValidatorCount
		if p.LowerIsBetter != man.Evaluation.LowerIsBetter() {
			return fmt.Sprintf("metric direction mismatch: the chain says lower is better %v, the manifest's direction is %q", p.LowerIsBetter, man.Evaluation.Direction)
		}
	}
	if p.Quorum < 1 || p.Quorum > n {
		return fmt.Sprintf("quorum %d of %d validators: no result could ever pass", p.Quorum, n)
	}
	if min := minAttest; time.Duration(p.AttestWindowSeconds)*time.Second < min {
		return fmt.Sprintf("attest window %s is shorter than %s: validators could not attest in time", time.Duration(p.AttestWindowSeconds)*time.Second, min)
	}
	return ""
}

// checkNodes compares the rigs a manifest asks for with the posting's cluster: a
// multi-rig job runs only as one member of a pool's cluster of that many rigs. It returns
// why they do not agree, or "".
func checkNodes(p Posting, man *job.Manifest) string {
	n := man.Resources.NodeCount()
	switch {
	case p.Cluster == nil && n > 1:
		return fmt.Sprintf("needs %d rigs: only a pool takes multi-rig jobs", n)
	case p.Cluster == nil:
		return ""
	case p.Source != SourcePool:
		return "a cluster place from another source than the pool's coordinator"
	case p.Cluster.NNodes != n:
		return fmt.Sprintf("the pool's cluster has %d rigs, the manifest's resources.nodes asks for %d", p.Cluster.NNodes, n)
	}
	if errs := p.Cluster.WithDefaults().Validate(); len(errs) > 0 {
		return fmt.Sprintf("the pool's cluster place: %v", errors.Join(errs...))
	}
	return ""
}

// declined ends a job's evaluation on one of the machine's own checks: the reason is
// counted, and what the dry run left on disk is removed.
func (m *Machine) declined(id string, p Posting, man *job.Manifest, kind, reason string) (State, string, func(*Record), error) {
	if r, ok := m.deps.Admitter.(Recorder); ok {
		r.Declined(p, man, kind, reason)
	}
	os.RemoveAll(filepath.Join(m.deps.WorkDir, id))
	return decline(reason)
}

// spec is the container spec of a job, its inputs fetched. The dry run and the real
// start use the same one.
func (m *Machine) spec(ctx context.Context, id string, rec Record) (runtime.Spec, error) {
	man := rec.Manifest
	spec := runtime.Spec{
		JobID:          id,
		Image:          man.Image,
		Command:        man.Command,
		GPUs:           rec.GPUs,
		OutputDir:      rec.OutputDir,
		OutputTarget:   man.Output.Path,
		Network:        runtime.NetworkNone,
		PrepareTimeout: time.Duration(m.cfg.PrepareTimeout),
		RunTimeout:     man.MaxDuration.Duration,
		Cluster:        rec.Posting.Cluster,
		Resources: runtime.Resources{
			CPUs:        man.Resources.CPUs,
			MemoryBytes: man.Resources.MemoryMiB << 20,
			OutputBytes: man.Output.MaxBytes,
		},
	}
	if p := rec.Posting; p.Source == SourcePool && !p.Deadline.IsZero() {
		// The pool wants the result by its deadline: running past it is wasted.
		spec.RunTimeout = min(spec.RunTimeout, max(time.Until(p.Deadline), time.Second))
	}
	for k, v := range man.Env {
		spec.Env = append(spec.Env, k+"="+v)
	}
	sort.Strings(spec.Env)
	for _, in := range man.Inputs {
		if in.Dataset != "" {
			spec.Datasets = append(spec.Datasets, runtime.Mount{Source: m.deps.Datasets[in.Dataset], Target: in.Path})
			continue
		}
		p, err := m.deps.Content.Fetch(ctx, in.CID)
		if err != nil {
			return spec, fmt.Errorf("fetch input %s: %w", in.CID, err)
		}
		spec.Inputs = append(spec.Inputs, runtime.Mount{Source: p, Target: in.Path})
	}
	return spec, nil
}

// preflight fetches the job's inputs and dry-runs its container, and measures how long
// that took. A refusal comes back as a kind and a reason; an error is worth retrying.
func (m *Machine) preflight(ctx context.Context, id string, p Posting, man *job.Manifest) (f Preflight, kind, reason string, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(m.cfg.PrepareTimeout))
	defer cancel()
	start := time.Now()
	rec := Record{Posting: p, Manifest: man, GPUs: m.alloc.peek(man.Resources.GPUs), OutputDir: filepath.Join(m.deps.WorkDir, id, "out")}
	spec, err := m.spec(ctx, id, rec)
	if err != nil {
		return f, "", "", kinded(KindInput, err)
	}
	if c, ok := m.deps.Runtime.(Checker); ok {
		var max int64
		if ms, ok := m.deps.Admitter.(Measurer); ok {
			max = ms.MaxImageBytes()
		}
		got, err := c.Check(ctx, spec, max)
		f.ImageBytes, f.Platform = got.ImageBytes, got.Platform
		switch {
		case err == nil:
		case errors.Is(err, runtime.ErrImageTooLarge):
			return f, KindImageSize, "image too large: " + err.Error(), nil
		case errors.Is(err, runtime.ErrOverCaps):
			return f, KindResources, err.Error(), nil
		case errors.Is(err, runtime.ErrContainerRefused):
			return f, KindContainer, "dry run: " + err.Error(), nil
		case errors.Is(err, runtime.ErrImageNotFound), errors.Is(err, runtime.ErrDigestMismatch),
			errors.Is(err, runtime.ErrUnauthorized), errors.Is(err, runtime.ErrTagNotAllowed),
			errors.Is(err, runtime.ErrPlatform):
			return f, KindImage, "image: " + err.Error(), nil
		case errors.Is(err, runtime.ErrDatasetRefused), errors.Is(err, runtime.ErrMountRefused):
			return f, KindDataset, err.Error(), nil
		case errors.Is(err, runtime.ErrNoGPURuntime):
			return f, KindGPUs, err.Error(), nil
		default:
			return f, "", "", kinded(KindImage, fmt.Errorf("dry run: %w", err))
		}
	}
	f.PrepareTime = time.Since(start)
	return f, "", "", nil
}

// measured judges the run window against the measured prepare time: by the policy when
// there is one, else with no margin at all.
func (m *Machine) measured(p Posting, man *job.Manifest, f Preflight) (bool, string) {
	if ms, ok := m.deps.Admitter.(Measurer); ok {
		ok, reasons := ms.Measured(p, man, f)
		if !ok {
			return false, fmt.Sprintf("policy: %v", reasons)
		}
		return true, ""
	}
	if p.RunWindowSeconds == 0 {
		return true, ""
	}
	if need := man.MaxDuration.Duration + f.PrepareTime; p.RunWindow() < need {
		return false, fmt.Sprintf("run window %s is shorter than max_duration %s + prepare %s", p.RunWindow(), man.MaxDuration.Duration, f.PrepareTime)
	}
	return true, ""
}

// outputCap is the most one job may publish: jobs.max_output_bytes, or half the free
// space of the filesystem holding the jobs' directories; 0 if neither is known.
func (m *Machine) outputCap() int64 {
	if c := m.cfg.MaxOutputBytes; c > 0 {
		return c
	}
	for dir := m.deps.WorkDir; dir != ""; dir = filepath.Dir(dir) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			return int64(st.Bavail) * st.Bsize / 2
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	return 0
}

// ceiling is ask, at most limit; a zero limit does not cap.
func ceiling(ask, limit int64) int64 {
	if limit > 0 && ask > limit {
		return limit
	}
	return ask
}
