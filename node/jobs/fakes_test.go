package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/runtime"
)

// fakeChain is an in-memory market with the contract's rules: one provider per job,
// one submission, idempotent repeats by the same provider.
type fakeChain struct {
	mu        sync.Mutex
	accepted  map[string]bool
	submitted map[string][2]string
	outcome   map[string]Outcome
	abandoned map[string]string
	takenBy   map[string]bool // accepted by another provider
	failNext  map[string]int  // method → failures left
	accepts   int
	submits   int
}

func newFakeChain() *fakeChain {
	return &fakeChain{accepted: map[string]bool{}, submitted: map[string][2]string{}, outcome: map[string]Outcome{},
		abandoned: map[string]string{}, takenBy: map[string]bool{}, failNext: map[string]int{}}
}

func (c *fakeChain) fail(method string) error {
	if c.failNext[method] > 0 {
		c.failNext[method]--
		return errors.New("rpc: connection refused")
	}
	return nil
}

func (c *fakeChain) Accept(_ context.Context, id string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.fail("accept"); err != nil {
		return "", err
	}
	if c.takenBy[id] {
		return "", errors.New("execution reverted: job already accepted")
	}
	if !c.accepted[id] {
		c.accepted[id] = true
		c.accepts++
	}
	return "0xaccept" + id, nil
}

func (c *fakeChain) Submit(_ context.Context, id, cid, hash string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.fail("submit"); err != nil {
		return "", err
	}
	if !c.accepted[id] {
		return "", errors.New("execution reverted: not the provider")
	}
	if prev, ok := c.submitted[id]; ok {
		if prev != [2]string{cid, hash} {
			return "", errors.New("execution reverted: already submitted")
		}
		return "0xsubmit" + id, nil
	}
	c.submitted[id] = [2]string{cid, hash}
	c.submits++
	return "0xsubmit" + id, nil
}

func (c *fakeChain) Abandon(_ context.Context, id, reason string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abandoned[id] = reason
	return "expired on chain, sponsor refunded", nil
}

func (c *fakeChain) Outcome(_ context.Context, id string) (Outcome, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.takenBy[id] {
		return OutcomeTaken, nil
	}
	if o, ok := c.outcome[id]; ok {
		return o, nil
	}
	return OutcomePending, nil
}

func (c *fakeChain) set(id string, o Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outcome[id] = o
}

// fakeContent is a content-addressed store on disk: a CID is the hash of the content.
type fakeContent struct {
	mu        sync.Mutex
	dir       string
	blobs     map[string][]byte
	published map[string]string // cid → staged dir copy
	failNext  int
	publishes int
}

func newFakeContent(dir string) *fakeContent {
	return &fakeContent{dir: dir, blobs: map[string][]byte{}, published: map[string]string{}}
}

func (c *fakeContent) put(b []byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := sha256.Sum256(b)
	cid := "bafk" + hex.EncodeToString(sum[:])[:40]
	c.blobs[cid] = b
	return cid
}

func (c *fakeContent) Get(_ context.Context, cid string, max int64) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[cid]
	if !ok {
		return nil, fmt.Errorf("%s: not found", cid)
	}
	if int64(len(b)) > max {
		return nil, errors.New("too large")
	}
	return b, nil
}

func (c *fakeContent) Fetch(ctx context.Context, cid string) (string, error) {
	b, err := c.Get(ctx, cid, 1<<30)
	if err != nil {
		return "", err
	}
	p := filepath.Join(c.dir, "fetched", cid)
	os.MkdirAll(filepath.Dir(p), 0o755)
	return p, os.WriteFile(p, b, 0o444)
}

func (c *fakeContent) Publish(_ context.Context, dir string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failNext > 0 {
		c.failNext--
		return "", errors.New("ipfs: disk full")
	}
	h, err := treehash.Sum(dir)
	if err != nil {
		return "", err
	}
	cid := "bafy" + h[:40]
	if _, ok := c.published[cid]; !ok {
		c.publishes++
	}
	c.published[cid] = dir
	return cid, nil
}

// fakeRuntime runs a job as a goroutine that outlives the machine that started it, the
// way a container outlives a killed daemon.
type fakeRuntime struct {
	mu      sync.Mutex
	starts  map[string]int
	results map[string]chan runtime.Result
	train   func(spec runtime.Spec) int // returns the exit code
	release chan struct{}               // closed to let jobs finish; nil = at once
	// check answers the dry run; nil passes every job with a 1 MB image.
	check  func(spec runtime.Spec, maxImageBytes int64) (runtime.Checked, error)
	checks []runtime.Spec
	// stops are closed by Stop: the job ends cancelled; stopped counts the calls.
	stops   map[string]chan struct{}
	stopped map[string]int
	// stopErr, when set, is what Stop answers (the engine does not answer).
	stopErr error
	// checkHold, when set, holds the dry run until it is closed or its context ends.
	checkHold chan struct{}
}

func (r *fakeRuntime) Check(ctx context.Context, spec runtime.Spec, maxImageBytes int64) (runtime.Checked, error) {
	r.mu.Lock()
	r.checks = append(r.checks, spec)
	check, hold := r.check, r.checkHold
	r.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return runtime.Checked{}, ctx.Err()
		}
	}
	if check == nil {
		return runtime.Checked{ImageID: "sha256:0", ImageBytes: 1 << 20, Platform: "linux/amd64"}, nil
	}
	return check(spec, maxImageBytes)
}

func newFakeRuntime(train func(runtime.Spec) int) *fakeRuntime {
	return &fakeRuntime{starts: map[string]int{}, results: map[string]chan runtime.Result{}, train: train,
		stops: map[string]chan struct{}{}, stopped: map[string]int{}}
}

func (r *fakeRuntime) Start(_ context.Context, spec runtime.Spec) (runtime.Handle, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.starts[spec.JobID] > 0 {
		return runtime.Handle{}, runtime.ErrJobExists
	}
	if _, _, err := job.ParseImage(spec.Image); err != nil {
		return runtime.Handle{}, fmt.Errorf("%w: %v", runtime.ErrImageNotFound, err)
	}
	r.starts[spec.JobID]++
	ch := make(chan runtime.Result, 1)
	r.results[spec.JobID] = ch
	stop := make(chan struct{})
	r.stops[spec.JobID] = stop
	release := r.release
	go func() {
		start := time.Now()
		if release != nil {
			select {
			case <-release:
			case <-stop:
				ch <- runtime.Result{JobID: spec.JobID, ExitCode: 137, Cancelled: true, StartedAt: start, FinishedAt: time.Now(),
					WallTime: time.Since(start), OutputDir: spec.OutputDir}
				return
			}
		}
		code := r.train(spec)
		ch <- runtime.Result{JobID: spec.JobID, ExitCode: code, StartedAt: start, FinishedAt: time.Now(),
			WallTime: time.Since(start), OutputDir: spec.OutputDir, GPUSeconds: time.Since(start).Seconds() * float64(len(spec.GPUs))}
	}()
	return runtime.Handle{JobID: spec.JobID, StartedAt: time.Now()}, nil
}

func (r *fakeRuntime) Wait(ctx context.Context, id string) (runtime.Result, error) {
	r.mu.Lock()
	ch, ok := r.results[id]
	r.mu.Unlock()
	if !ok {
		return runtime.Result{}, runtime.ErrUnknownJob
	}
	select {
	case res := <-ch:
		ch <- res // keep it for a later Wait
		return res, nil
	case <-ctx.Done():
		return runtime.Result{}, ctx.Err()
	}
}

// Stop ends a job that is still held by release as cancelled; a finished job is left
// as it ended.
func (r *fakeRuntime) Stop(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	stop, ok := r.stops[id]
	if !ok {
		return runtime.ErrUnknownJob
	}
	r.stopped[id]++
	if r.stopErr != nil {
		return r.stopErr
	}
	select {
	case <-stop:
	default:
		close(stop)
	}
	return nil
}

func (r *fakeRuntime) stopCount(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped[id]
}

func (r *fakeRuntime) Recover(context.Context) ([]runtime.Handle, error) { return nil, nil }

type denyAll struct{ reason string }

func (d denyAll) Admit(Posting, *job.Manifest) (bool, []string) { return false, []string{d.reason} }

// countingAdmitter admits every job, caps images and needs run windows factor × (job +
// prepare), and counts what the machine declines by kind, as the policy holder does.
type countingAdmitter struct {
	mu       sync.Mutex
	maxImage int64
	factor   float64
	declined map[string]int
}

func newCountingAdmitter() *countingAdmitter {
	return &countingAdmitter{maxImage: 1 << 30, factor: 1.25, declined: map[string]int{}}
}

func (a *countingAdmitter) Admit(Posting, *job.Manifest) (bool, []string) { return true, nil }
func (a *countingAdmitter) MaxImageBytes() int64                          { return a.maxImage }

func (a *countingAdmitter) Measured(p Posting, m *job.Manifest, f Preflight) (bool, []string) {
	if need := time.Duration(a.factor * float64(m.MaxDuration.Duration+f.PrepareTime)); p.RunWindow() > 0 && p.RunWindow() < need {
		a.Declined(p, m, KindRunWindow, "run window too short")
		return false, []string{fmt.Sprintf("node min_run_window_factor: run window %s, needs %s", p.RunWindow(), need)}
	}
	return true, nil
}

func (a *countingAdmitter) Declined(_ Posting, _ *job.Manifest, kind, _ string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.declined[kind]++
}

func (a *countingAdmitter) count(kind string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.declined[kind]
}

var _ io.Writer = io.Discard
