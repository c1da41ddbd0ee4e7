package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/job/seal"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime"
)

// ErrPermanent marks an error that retrying will not fix (a bad manifest, a refused
// dataset, an image that does not exist). Adapters wrap their own such errors with it.
var ErrPermanent = errors.New("permanent failure")

// Config configures the state machine.
type Config struct {
	// PrepareTimeout bounds fetching inputs and pulling the image, apart from the
	// training time; the dry run before acceptance gets as long.
	PrepareTimeout configfile.Duration `toml:"prepare_timeout"`
	// ManifestTimeout bounds fetching a job's manifest.
	ManifestTimeout configfile.Duration `toml:"manifest_timeout"`
	// MinAttestWindow is the shortest attest window a job may give its validators.
	MinAttestWindow configfile.Duration `toml:"min_attest_window"`
	// UploadTimeout bounds publishing the output.
	UploadTimeout configfile.Duration `toml:"upload_timeout"`
	// OutcomePoll is how often the chain is asked about a submitted job.
	OutcomePoll configfile.Duration `toml:"outcome_poll"`
	// RetryBase and RetryMax bound the backoff between retries of a failing step.
	RetryBase configfile.Duration `toml:"retry_base"`
	RetryMax  configfile.Duration `toml:"retry_max"`
	// MaxAttempts is how often a step is tried before the job is failed.
	MaxAttempts int `toml:"max_attempts"`
	// MaxOutputBytes caps what one job may publish: a job declaring a larger
	// output.max_bytes is declined. 0 derives it from the host when the job is evaluated:
	// half the free space of the filesystem holding the jobs' directories.
	MaxOutputBytes int64 `toml:"max_output_bytes"`
	// Retention is how long a finished job's folders and the inputs it fetched are
	// kept after it ended (see Sweep); 0 keeps them for ever.
	Retention configfile.Duration `toml:"retention"`
}

// Default returns the default state machine configuration.
func Default() Config {
	return Config{
		PrepareTimeout:  configfile.Duration(30 * time.Minute),
		ManifestTimeout: configfile.Duration(2 * time.Minute),
		MinAttestWindow: configfile.Duration(5 * time.Minute),
		UploadTimeout:   configfile.Duration(30 * time.Minute),
		OutcomePoll:     configfile.Duration(15 * time.Second),
		RetryBase:       configfile.Duration(2 * time.Second),
		RetryMax:        configfile.Duration(2 * time.Minute),
		MaxAttempts:     8,
		Retention:       configfile.Duration(7 * 24 * time.Hour),
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	for name, d := range map[string]configfile.Duration{"prepare_timeout": c.PrepareTimeout, "upload_timeout": c.UploadTimeout,
		"manifest_timeout": c.ManifestTimeout, "min_attest_window": c.MinAttestWindow,
		"outcome_poll": c.OutcomePoll, "retry_base": c.RetryBase, "retry_max": c.RetryMax} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", name))
		}
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, errors.New("max_attempts: must be at least 1"))
	}
	if c.MaxOutputBytes < 0 {
		errs = append(errs, errors.New("max_output_bytes: must not be negative (0 derives it from the free disk)"))
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// Deps are the adapters the machine drives.
type Deps struct {
	Store    *store.Store
	Chain    Chain
	Content  Content
	Runtime  Runtime
	Admitter Admitter
	// GPUs are the UUIDs the machine may hand out.
	GPUs []string
	// GPUUsable tells whether one of GPUs may still be handed out (a GPU lost or with a
	// fatal XID error may not); nil when all always may.
	GPUUsable func(uuid string) bool
	// Datasets maps a local dataset tag to its host path.
	Datasets map[string]string
	// WorkDir holds each job's output directory.
	WorkDir string
	// Idle is the operator's idle workload, held from acceptance until the job's
	// container has finished; nil when there is none.
	Idle Idler
	// RigScore is the rig's benchmark score (its DL hashrate, in TFLOPS), checked against
	// a manifest's resources.min_score; nil or 0 when never measured.
	RigScore func() float64
	// Sealer seals the output of a JobMarketV2 job (Posting.Sealed) before it is
	// published; v1 jobs' outputs are published in the clear.
	Sealer Sealer
}

// Machine drives every job of the node.
type Machine struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	alloc *allocator

	mu      sync.Mutex
	running map[string]bool
	// steps interrupts each driven job's current step (Cancel).
	steps  map[string]context.CancelFunc
	wg     sync.WaitGroup
	ctx    context.Context
	posted chan Posting
}

// New returns a machine; Run starts it.
func New(cfg Config, deps Deps, log *slog.Logger) *Machine {
	return &Machine{
		cfg:     cfg,
		deps:    deps,
		log:     log.With("component", "jobs"),
		alloc:   newAllocator(deps.GPUs, deps.GPUUsable),
		running: map[string]bool{},
		steps:   map[string]context.CancelFunc{},
		posted:  make(chan Posting, 64),
	}
}

// IsJobID tells whether a record of the store is one of the machine's jobs. Jobs are
// named by their on-chain id, a decimal number, and JobMarketV2 jobs by theirs after
// "v2-" (both contracts number from 1); the node's other roles keep their records in the
// same store under other prefixed names ("duty-7", "validate-7"), which the machine
// neither lists nor resumes.
func IsJobID(id string) bool {
	id = strings.TrimPrefix(id, "v2-")
	if id == "" || len(id) > 78 || id[0] == '0' {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Discover hands the machine a job seen on chain or offered. A job it already knows is
// ignored, so a replayed event does nothing.
func (m *Machine) Discover(ctx context.Context, p Posting) error {
	if !IsJobID(p.ID) || !runtime.ValidJobID(p.ID) {
		return fmt.Errorf("job %q: invalid id, want the job's on-chain id", p.ID)
	}
	select {
	case m.posted <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run reconciles after a restart — re-attaches to containers, resumes every unfinished
// job from its stored state — then takes new jobs until ctx is cancelled. Containers keep
// running when the node stops; the next Run picks them up.
func (m *Machine) Run(ctx context.Context) error {
	m.ctx = ctx
	if _, err := m.deps.Runtime.Recover(ctx); err != nil {
		return fmt.Errorf("jobs: re-attach to containers: %w", err)
	}
	open, err := m.deps.Store.List(func(j store.Job) bool {
		// A failed job not yet given back on chain is unfinished business too, and so is
		// a declined pool job its coordinator has not heard of.
		return IsJobID(j.ID) && (!State(j.State).Terminal() || (State(j.State) == Failed && owesRefund(j.Data)) ||
			(State(j.State) == Declined && m.owesDeclineNotice(j.Data)))
	})
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	for _, j := range open {
		rec, err := decodeRecord(j.Data)
		if err != nil {
			m.log.Error("cannot resume job", "job_id", j.ID, "err", err)
			continue
		}
		if len(rec.GPUs) > 0 && (State(j.State) == Preparing || State(j.State) == Running) {
			m.alloc.claim(j.ID, rec.GPUs)
		}
	}
	for _, j := range open {
		m.log.Info("resuming job", "job_id", j.ID, "state", j.State)
		if !State(j.State).Terminal() {
			if _, err := m.deps.Store.Advance(j.ID, j.State, j.State, "resumed after a restart", nil); err != nil {
				m.log.Error("record resume", "job_id", j.ID, "err", err)
			}
		}
		m.spawn(j.ID)
	}
	for {
		select {
		case <-ctx.Done():
			m.wg.Wait()
			return nil
		case p := <-m.posted:
			err := m.deps.Store.Create(store.Job{ID: p.ID, State: string(Discovered), Data: mustJSON(Record{Posting: p})}, "posted by "+p.Sponsor+" via "+p.Source)
			if errors.Is(err, store.ErrExists) {
				continue
			}
			if err != nil {
				m.log.Error("store job", "job_id", p.ID, "err", err)
				continue
			}
			m.log.Info("job discovered", "job_id", p.ID, "sponsor", p.Sponsor, "reward_wei", p.RewardWei, "source", p.Source)
			m.spawn(p.ID)
		}
	}
}

// Get returns one job.
func (m *Machine) Get(id string) (Job, error) { return Records{m.deps.Store}.Get(id) }

// Records reads the jobs a machine keeps in its store, without the machine: its chain
// adapter reads a job's posting from them to accept it.
type Records struct{ Store *store.Store }

// Get returns one job.
func (r Records) Get(id string) (Job, error) {
	if !IsJobID(id) {
		return Job{}, fmt.Errorf("job %q: %w", id, store.ErrNotFound)
	}
	j, err := r.Store.Get(id)
	if err != nil {
		return Job{}, err
	}
	return toJob(j)
}

// List returns every job the node knows, newest first.
func (m *Machine) List() ([]Job, error) {
	all, err := m.deps.Store.List(func(j store.Job) bool { return IsJobID(j.ID) })
	if err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(all))
	for _, j := range all {
		jj, err := toJob(j)
		if err != nil {
			return nil, err
		}
		out = append(out, jj)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].CreatedAt.After(out[k].CreatedAt) })
	return out, nil
}

func toJob(j store.Job) (Job, error) {
	rec, err := decodeRecord(j.Data)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", j.ID, err)
	}
	return Job{ID: j.ID, State: State(j.State), CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, Record: rec}, nil
}

func (m *Machine) spawn(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running[id] {
		return
	}
	m.running[id] = true
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() {
			m.mu.Lock()
			delete(m.running, id)
			m.mu.Unlock()
		}()
		m.drive(m.ctx, id)
	}()
}

// drive takes one job through its states until it ends or the node stops.
func (m *Machine) drive(ctx context.Context, id string) {
	log := m.log.With("job_id", id)
	for ctx.Err() == nil && m.turn(ctx, id, log) {
	}
}

// turn makes one step of a job (or its cancellation, once Cancel recorded one) and
// reports whether to go on. A Cancel interrupts the step: the next turn stops the job.
func (m *Machine) turn(ctx context.Context, id string, log *slog.Logger) bool {
	sctx, done := m.stepContext(ctx, id)
	defer done()
	j, err := m.deps.Store.Get(id)
	if err != nil {
		log.Error("load job", "err", err)
		return false
	}
	state := State(j.State)
	if state.Terminal() {
		m.alloc.release(id)
		m.releaseIdle(id)
		if state == Failed {
			m.abandon(ctx, id, log)
		}
		if state == Declined {
			m.tellDeclined(ctx, id, log)
		}
		return false
	}
	rec, err := decodeRecord(j.Data)
	if err != nil {
		log.Error("load job", "err", err)
		return false
	}
	var next State
	var note string
	var update func(*Record)
	if rec.Cancelled != "" && cancelNow(state) {
		next, note, update, err = m.finishCancel(ctx, id, state, rec, log)
	} else {
		next, note, update, err = m.step(sctx, id, state, rec, log)
	}
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		if sctx.Err() != nil {
			return true // cancelled meanwhile: the next turn stops the job
		}
		goOn := m.retry(sctx, id, state, rec, err, log)
		return goOn || (sctx.Err() != nil && ctx.Err() == nil)
	}
	if _, err := m.deps.Store.Advance(id, string(state), string(next), note, func(sj *store.Job) error {
		r, err := decodeRecord(sj.Data)
		if err != nil {
			return err
		}
		r.Attempts = 0
		if update != nil {
			update(&r)
		}
		sj.Data = mustJSON(r)
		return nil
	}); err != nil {
		log.Error("record transition", "from", state, "to", next, "err", err)
		return false
	}
	log.Info("job "+string(next), "from", state, "note", note)
	return true
}

// retry handles a failed step: a permanent error or too many attempts ends the job,
// anything else waits with exponential backoff. It reports whether to go on.
func (m *Machine) retry(ctx context.Context, id string, state State, rec Record, stepErr error, log *slog.Logger) bool {
	attempts := rec.Attempts + 1
	end := Failed
	if state == Discovered || state == Accepting {
		end = Declined // never taken: nothing to give back
	}
	if errors.Is(stepErr, ErrPermanent) || attempts >= m.cfg.MaxAttempts {
		reason := stepErr.Error()
		if !errors.Is(stepErr, ErrPermanent) {
			reason = fmt.Sprintf("%s after %d attempts: %v", state, attempts, stepErr)
		}
		log.Warn("job "+string(end), "state", state, "reason", reason)
		if r, ok := m.deps.Admitter.(Recorder); ok && end == Declined {
			kind := KindManifest
			var ke *kindError
			if errors.As(stepErr, &ke) {
				kind = ke.kind
			}
			r.Declined(rec.Posting, rec.Manifest, kind, reason)
		}
		if end == Declined {
			os.RemoveAll(filepath.Join(m.deps.WorkDir, id)) // what a dry run left
		}
		_, err := m.deps.Store.Advance(id, string(state), string(end), reason, func(sj *store.Job) error {
			r, err := decodeRecord(sj.Data)
			if err != nil {
				return err
			}
			r.Reason = reason
			sj.Data = mustJSON(r)
			return nil
		})
		return err == nil
	}
	wait := time.Duration(m.cfg.RetryBase) << min(attempts-1, 16)
	if wait > time.Duration(m.cfg.RetryMax) {
		wait = time.Duration(m.cfg.RetryMax)
	}
	log.Warn("job step failed; retrying", "state", state, "attempt", attempts, "in", wait, "err", stepErr)
	if _, err := m.deps.Store.Advance(id, string(state), string(state), "retry: "+stepErr.Error(), func(sj *store.Job) error {
		r, err := decodeRecord(sj.Data)
		if err != nil {
			return err
		}
		r.Attempts, r.Reason = attempts, stepErr.Error()
		sj.Data = mustJSON(r)
		return nil
	}); err != nil {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(wait):
		return true
	}
}

// step performs the side effect of one state and says where the job goes next.
func (m *Machine) step(ctx context.Context, id string, state State, rec Record, log *slog.Logger) (State, string, func(*Record), error) {
	switch state {
	case Discovered:
		return m.evaluate(ctx, id, rec)
	case Accepting:
		tx, err := m.deps.Chain.Accept(ctx, id)
		if err != nil {
			if o, oerr := m.deps.Chain.Outcome(ctx, id); oerr == nil && o == OutcomeTaken {
				return Lost, "accepted by another provider", nil, nil
			}
			return "", "", nil, fmt.Errorf("accept: %w", err)
		}
		return Accepted, "accept tx " + tx, func(r *Record) { r.AcceptTx = tx }, nil
	case Accepted:
		if err := m.holdIdle(ctx, id); err != nil {
			return "", "", nil, err
		}
		gpus, err := m.alloc.take(id, rec.Manifest.Resources.GPUs)
		if err != nil {
			return "", "", nil, err
		}
		note := fmt.Sprintf("GPUs %s", strings.Join(gpus, ", "))
		if len(gpus) == 0 {
			note = "no GPUs: a CPU job"
		}
		return Preparing, note, func(r *Record) {
			r.GPUs = gpus
			r.OutputDir = filepath.Join(m.deps.WorkDir, id, "out")
		}, nil
	case Preparing:
		// Held again: after a restart the job resumes here with a fresh idle workload.
		if err := m.holdIdle(ctx, id); err != nil {
			return "", "", nil, err
		}
		if err := m.prepare(ctx, id, rec); err != nil {
			return "", "", nil, err
		}
		return Running, "container started", nil, nil
	case Running:
		if err := m.holdIdle(ctx, id); err != nil {
			return "", "", nil, err
		}
		res, err := m.deps.Runtime.Wait(ctx, id)
		if err != nil {
			return "", "", nil, fmt.Errorf("wait: %w", err)
		}
		m.alloc.release(id)
		m.releaseIdle(id)
		keep := func(r *Record) { r.Result = &res }
		if !res.Succeeded() {
			return Failed, "training failed: " + describeResult(res), func(r *Record) {
				r.Result, r.Reason = &res, "training failed: "+describeResult(res)
			}, nil
		}
		return Uploading, fmt.Sprintf("exit 0 after %s", res.WallTime.Round(time.Second)), keep, nil
	case Uploading:
		if c := rec.Posting.Cluster; c != nil && c.NodeRank != 0 {
			// Every rank trains, rank 0 writes the checkpoint: the others publish nothing
			// and report done with no CID.
			return Submitting, fmt.Sprintf("rank %d of a %d-rig job: rank 0 publishes the checkpoint", c.NodeRank, c.NNodes), nil, nil
		}
		cid, hash, keyHash, err := m.publish(ctx, id, rec)
		if err != nil {
			return "", "", nil, err
		}
		note := "output " + cid
		if keyHash != "" {
			note = "sealed output " + cid
		}
		return Submitting, note, func(r *Record) { r.OutputCID, r.OutputHash, r.KeyHash = cid, hash, keyHash }, nil
	case Submitting:
		tx, err := m.deps.Chain.Submit(ctx, id, rec.OutputCID, rec.OutputHash)
		if err != nil {
			return "", "", nil, fmt.Errorf("submit: %w", err)
		}
		return Submitted, "submit tx " + tx, func(r *Record) { r.SubmitTx = tx }, nil
	case Submitted:
		return m.follow(ctx, id)
	}
	return "", "", nil, fmt.Errorf("%w: unknown state %q", ErrPermanent, state)
}

func (m *Machine) evaluate(ctx context.Context, id string, rec Record) (State, string, func(*Record), error) {
	p := rec.Posting
	mctx, cancel := context.WithTimeout(ctx, time.Duration(m.cfg.ManifestTimeout))
	raw, err := m.deps.Content.Get(mctx, p.ManifestCID, job.MaxManifestBytes)
	cancel()
	if err != nil {
		return "", "", nil, kinded(KindManifest, fmt.Errorf("fetch manifest %s (within %s): %w", p.ManifestCID, time.Duration(m.cfg.ManifestTimeout), err))
	}
	sum := sha256.Sum256(raw)
	if want := strings.TrimPrefix(strings.ToLower(p.ManifestHash), "0x"); hex.EncodeToString(sum[:]) != want {
		return m.declined(id, p, nil, KindManifest, "manifest hash mismatch: the bytes at "+p.ManifestCID+" are not the manifest posted on chain")
	}
	man, err := job.Decode(strings.NewReader(string(raw)))
	if err != nil {
		return m.declined(id, p, nil, KindManifest, err.Error())
	}
	if reason := m.checkTerms(p, man); reason != "" {
		return m.declined(id, p, man, KindTerms, reason)
	}
	if reason := checkNodes(p, man); reason != "" {
		return m.declined(id, p, man, KindResources, reason)
	}
	if len(man.Command) == 0 {
		return m.declined(id, p, man, KindManifest, "the manifest has no command: a job must say what it runs (the image's own entrypoint is not used)")
	}
	if man.Network.Mode == job.NetworkEgress {
		return m.declined(id, p, man, KindNetwork, fmt.Sprintf("the job asks for egress to %v; this node's runtime cannot hold a container to an egress allowlist, so it takes only jobs without network", man.Network.Domains))
	}
	if files := man.LocalFiles(); len(files) > 0 {
		return m.declined(id, p, man, KindManifest, fmt.Sprintf("inputs name files on the researcher's machine (%s), not on IPFS: post the manifest with `gpunode job post`, which uploads them", strings.Join(files, ", ")))
	}
	if min := man.Resources.MinScore; min > 0 {
		score := 0.0
		if m.deps.RigScore != nil {
			score = m.deps.RigScore()
		}
		if score < min {
			return m.declined(id, p, man, KindGPUs, fmt.Sprintf("needs a DL hashrate of %g TFLOPS, this rig's benchmark says %g (run `gpunode bench` if it never ran)", min, score))
		}
	}
	for _, tag := range man.Datasets() {
		if _, ok := m.deps.Datasets[tag]; !ok {
			return m.declined(id, p, man, KindDataset, fmt.Sprintf("dataset %q is not on this rig", tag))
		}
	}
	if man.Resources.GPUs > len(m.deps.GPUs) {
		return m.declined(id, p, man, KindGPUs, fmt.Sprintf("needs %d GPUs, this rig has %d", man.Resources.GPUs, len(m.deps.GPUs)))
	}
	if free := m.alloc.free(); man.Resources.GPUs > free {
		return m.declined(id, p, man, KindGPUs, fmt.Sprintf("needs %d GPUs, %d free", man.Resources.GPUs, free))
	}
	if c := m.outputCap(); c > 0 && man.Output.MaxBytes > c {
		return m.declined(id, p, man, KindResources, fmt.Sprintf("output.max_bytes %d is above this rig's cap of %d (jobs.max_output_bytes, or half the free disk)", man.Output.MaxBytes, c))
	}
	// The policy (counted by itself) sees the terms before anything is downloaded.
	if m.deps.Admitter != nil {
		if ok, reasons := m.deps.Admitter.Admit(p, man); !ok {
			os.RemoveAll(filepath.Join(m.deps.WorkDir, id))
			return decline("policy: " + strings.Join(reasons, "; "))
		}
	}
	f, kind, reason, err := m.preflight(ctx, id, p, man)
	if err != nil {
		return "", "", nil, err
	}
	if reason != "" {
		return m.declined(id, p, man, kind, reason)
	}
	if ok, reason := m.measured(p, man, f); !ok {
		if _, counted := m.deps.Admitter.(Measurer); !counted {
			return m.declined(id, p, man, KindRunWindow, reason)
		}
		os.RemoveAll(filepath.Join(m.deps.WorkDir, id))
		return decline(reason)
	}
	note := fmt.Sprintf("manifest ok, admitted; dry run ok, prepared in %s", f.PrepareTime.Round(time.Millisecond))
	return Accepting, note, func(r *Record) { r.Manifest, r.Preflight = man, &f }, nil
}

func decline(reason string) (State, string, func(*Record), error) {
	return Declined, reason, func(r *Record) { r.Reason = reason }, nil
}

func (m *Machine) prepare(ctx context.Context, id string, rec Record) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(m.cfg.PrepareTimeout))
	defer cancel()
	man := rec.Manifest
	spec, err := m.spec(ctx, id, rec)
	if err != nil {
		return err
	}
	if cc, ok := m.deps.Admitter.(ContainerChecker); ok {
		lim, reasons, ok := cc.CheckContainer(rec.Posting, man)
		if !ok {
			return fmt.Errorf("%w: the policy in force refuses the container: %s", ErrPermanent, strings.Join(reasons, "; "))
		}
		if lim.RunTimeout > 0 && lim.RunTimeout < spec.RunTimeout {
			spec.RunTimeout = lim.RunTimeout
		}
	}
	// The runtime fills the output directory with a normalised copy of what the job
	// wrote: it belongs to the node, and no other user needs to write it.
	if err := os.MkdirAll(rec.OutputDir, 0o755); err != nil {
		return fmt.Errorf("%w: output dir: %v", ErrPermanent, err)
	}
	_, err = m.deps.Runtime.Start(ctx, spec)
	switch {
	case err == nil, errors.Is(err, runtime.ErrJobExists):
		return nil
	case errors.Is(err, runtime.ErrDigestMismatch), errors.Is(err, runtime.ErrImageNotFound),
		errors.Is(err, runtime.ErrTagNotAllowed), errors.Is(err, runtime.ErrDatasetRefused),
		errors.Is(err, runtime.ErrMountRefused), errors.Is(err, runtime.ErrNoGPURuntime),
		errors.Is(err, runtime.ErrUnauthorized):
		return fmt.Errorf("%w: start: %w", ErrPermanent, err)
	}
	return fmt.Errorf("start: %w", err)
}

// publish stages the output and publishes it, sealed when the machine has a Sealer; it
// returns the CID, the hash to submit and, when sealed, the key's hash.
func (m *Machine) publish(ctx context.Context, id string, rec Record) (cid, hash, keyHash string, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(m.cfg.UploadTimeout))
	defer cancel()
	staged := filepath.Join(m.deps.WorkDir, id, "publish")
	if err := os.RemoveAll(staged); err != nil {
		return "", "", "", err
	}
	skipped, err := Stage(rec.OutputDir, staged, ceiling(rec.Manifest.Output.MaxBytes, m.cfg.MaxOutputBytes))
	if err != nil {
		return "", "", "", fmt.Errorf("%w: stage output: %w", ErrPermanent, err)
	}
	for _, s := range skipped {
		m.log.Warn("output entry not published", "job_id", id, "entry", s)
	}
	dir := staged
	if rec.Posting.Sealed && m.deps.Sealer == nil {
		return "", "", "", fmt.Errorf("%w: a JobMarketV2 job, and this node seals no output", ErrPermanent)
	}
	if rec.Posting.Sealed {
		// The sealed file alone is published: without the key it reveals only its size.
		dir = filepath.Join(m.deps.WorkDir, id, "sealed")
		if err := os.RemoveAll(dir); err != nil {
			return "", "", "", err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", "", err
		}
		hash, keyHash, err = m.deps.Sealer.Seal(ctx, id, staged, filepath.Join(dir, seal.FileName))
		if err != nil {
			return "", "", "", fmt.Errorf("seal output: %w", err)
		}
	} else if hash, err = treehash.Sum(staged); err != nil {
		return "", "", "", fmt.Errorf("hash output: %w", err)
	}
	cid, err = m.deps.Content.Publish(ctx, dir)
	if err != nil {
		return "", "", "", fmt.Errorf("publish output: %w", err)
	}
	return cid, hash, keyHash, nil
}

func (m *Machine) follow(ctx context.Context, id string) (State, string, func(*Record), error) {
	t := time.NewTicker(time.Duration(m.cfg.OutcomePoll))
	defer t.Stop()
	for {
		o, err := m.deps.Chain.Outcome(ctx, id)
		if err != nil {
			m.log.Warn("ask chain for outcome", "job_id", id, "err", err)
		}
		switch o {
		case OutcomeCompleted:
			return Paid, "validators confirmed the result", nil, nil
		case OutcomeRejected:
			return Rejected, "validators scored it below the threshold", func(r *Record) { r.Reason = "below threshold" }, nil
		case OutcomeExpired:
			return Expired, "deadline passed on chain", func(r *Record) { r.Reason = "deadline passed" }, nil
		}
		select {
		case <-ctx.Done():
			return "", "", nil, ctx.Err()
		case <-t.C:
		}
	}
}

// owesDeclineNotice tells whether a declined job is a pool's that its coordinator has
// not heard of yet.
func (m *Machine) owesDeclineNotice(raw json.RawMessage) bool {
	if _, ok := m.deps.Chain.(DeclineNotifier); !ok {
		return false
	}
	rec, err := decodeRecord(raw)
	return err == nil && rec.Posting.Source == SourcePool && !rec.DeclineTold
}

// tellDeclined tells the pool a job it dispatched was declined, once; after a restart,
// Run resumes it.
func (m *Machine) tellDeclined(ctx context.Context, id string, log *slog.Logger) {
	dn, ok := m.deps.Chain.(DeclineNotifier)
	if !ok {
		return
	}
	j, err := m.deps.Store.Get(id)
	if err != nil || !m.owesDeclineNotice(j.Data) {
		return
	}
	rec, _ := decodeRecord(j.Data)
	for attempt := 1; ctx.Err() == nil; attempt++ {
		err := dn.Declined(ctx, id, rec.Reason)
		if err != nil && !errors.Is(err, ErrPermanent) {
			if ctx.Err() != nil {
				return
			}
			wait := min(time.Duration(m.cfg.RetryBase)<<min(attempt-1, 16), time.Duration(m.cfg.RetryMax))
			log.Warn("tell the pool the job was declined; retrying", "attempt", attempt, "in", wait, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		note := "the pool heard it was declined"
		if err != nil {
			note = "the pool could not be told it was declined: " + err.Error()
		}
		log.Info(note)
		m.deps.Store.Advance(id, string(Declined), string(Declined), note, func(sj *store.Job) error {
			r, err := decodeRecord(sj.Data)
			if err != nil {
				return err
			}
			r.DeclineTold = true
			sj.Data = mustJSON(r)
			return nil
		})
		return
	}
}

// owesRefund tells whether a failed job was taken on chain and not yet given back.
func owesRefund(raw json.RawMessage) bool {
	rec, err := decodeRecord(raw)
	return err == nil && rec.AcceptTx != "" && rec.Refund == ""
}

// abandon gives a failed job back on chain, once; after a restart, Run resumes it.
func (m *Machine) abandon(ctx context.Context, id string, log *slog.Logger) {
	j, err := m.deps.Store.Get(id)
	if err != nil || !owesRefund(j.Data) {
		return
	}
	rec, _ := decodeRecord(j.Data)
	for attempt := 1; ctx.Err() == nil; attempt++ {
		refund, err := m.deps.Chain.Abandon(ctx, id, rec.Reason)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := min(time.Duration(m.cfg.RetryBase)<<min(attempt-1, 16), time.Duration(m.cfg.RetryMax))
			log.Warn("give the job back on chain; retrying", "attempt", attempt, "in", wait, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		log.Info("job given back", "refund", refund)
		m.deps.Store.Advance(id, string(Failed), string(Failed), refund, func(sj *store.Job) error {
			r, err := decodeRecord(sj.Data)
			if err != nil {
				return err
			}
			r.Refund = refund
			sj.Data = mustJSON(r)
			return nil
		})
		return
	}
}

func describeResult(r runtime.Result) string {
	switch {
	case r.Error != "":
		return r.Error
	case r.OOMKilled:
		return "killed for exceeding its memory limit"
	case r.TimedOut:
		return "ran past max_duration"
	case r.Cancelled:
		return "cancelled"
	}
	return fmt.Sprintf("exit status %d", r.ExitCode)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // records are plain data
	}
	return b
}

// Active counts the jobs this node has taken and not finished running or submitting:
// accepted through submitting. The policy's drain waits for them.
func (m *Machine) Active() int {
	list, err := m.deps.Store.List(func(j store.Job) bool {
		if !IsJobID(j.ID) {
			return false
		}
		switch State(j.State) {
		case Accepting, Accepted, Preparing, Running, Uploading, Submitting:
			return true
		}
		return false
	})
	if err != nil {
		return 0
	}
	return len(list)
}

// holdIdle makes the idle workload give way to the job, within the prepare timeout.
func (m *Machine) holdIdle(ctx context.Context, id string) error {
	if m.deps.Idle == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(m.cfg.PrepareTimeout))
	defer cancel()
	if err := m.deps.Idle.Hold(ctx, id); err != nil {
		return fmt.Errorf("stop the idle workload: %w", err)
	}
	return nil
}

func (m *Machine) releaseIdle(id string) {
	if m.deps.Idle != nil {
		m.deps.Idle.Release(id)
	}
}

// NeedsRig tells whether a job holds the rig or is about to: accepted through running.
// The idle workload stays off while it does, even before the machine has resumed the
// job after a restart.
func (m *Machine) NeedsRig() bool {
	list, err := m.deps.Store.List(func(j store.Job) bool {
		if !IsJobID(j.ID) {
			return false
		}
		switch State(j.State) {
		case Accepting, Accepted, Preparing, Running:
			return true
		}
		return false
	})
	// A store that cannot answer keeps the idle workload off: a job may need the rig.
	return err != nil || len(list) > 0
}

// FreeGPUs counts the GPUs no job holds.
func (m *Machine) FreeGPUs() int { return m.alloc.free() }
