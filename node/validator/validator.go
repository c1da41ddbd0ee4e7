// Package validator is the oracle role: for a submitted job that names this node as a
// validator, it fetches the checkpoint, checks it against the hash on chain, runs the
// job's evaluation image on it with no network, reads the metric from the evaluation's
// result file and attests the score on chain — once per job, across restarts.
package validator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"golang.org/x/sys/unix"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime"
)

// ScoreScale converts a metric to the contract's integer score: score = metric × 1e6,
// so an accuracy of 0.9638 is 963800 and a threshold of 0.9 is 900000.
const ScoreScale = 1_000_000

// Config is the [validator] section.
type Config struct {
	// Enabled makes the node judge the jobs that name its account as a validator. Off, it
	// ignores them (and cannot take them as a provider either: the contract forbids it).
	Enabled bool `toml:"enabled"`
	// EvalTimeout bounds one evaluation container's run.
	EvalTimeout configfile.Duration `toml:"eval_timeout"`
	// CPUs and MemoryBytes cap the evaluation container (0: no cap).
	CPUs        float64 `toml:"cpus"`
	MemoryBytes int64   `toml:"memory_bytes"`
}

// Default returns the defaults: on, an hour per evaluation, no resource caps.
func Default() Config {
	return Config{Enabled: true, EvalTimeout: configfile.Duration(time.Hour)}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.EvalTimeout <= 0 {
		errs = append(errs, errors.New("eval_timeout: must be positive"))
	}
	if c.CPUs < 0 {
		errs = append(errs, fmt.Errorf("cpus %g: must not be negative", c.CPUs))
	}
	if c.MemoryBytes < 0 {
		errs = append(errs, fmt.Errorf("memory_bytes %d: must not be negative", c.MemoryBytes))
	}
	return errs
}

// Task is one submitted result to evaluate.
type Task struct {
	JobID         string `json:"job_id"`
	CheckpointCID string `json:"checkpoint_cid"`
	// ResultHash is the tree hash the provider submitted (treehash.Sum), hex.
	ResultHash string `json:"result_hash"`
	// EvalImage, EvalCommand and Metric come from the job's manifest.
	EvalImage   string   `json:"eval_image"`
	EvalCommand []string `json:"eval_command"`
	Metric      string   `json:"metric"`
	// EvalInputs are IPFS content mounted read-only into the evaluation: CID → path.
	EvalInputs []EvalInput `json:"eval_inputs,omitempty"`
	// Threshold is the contract's integer threshold (metric × ScoreScale).
	Threshold uint32 `json:"threshold"`
	// Sponsor posted the job; Token is the ERC-20 it pays in (empty for ETH) and FeeWei
	// the fee each validator earns, in the token's base units. Consent judges them.
	Sponsor string `json:"sponsor,omitempty"`
	Token   string `json:"token,omitempty"`
	FeeWei  string `json:"fee_wei,omitempty"`
	// Sealed is set for a JobMarket v2 result: the checkpoint is sealed (ResultHash is
	// then the sha256 of the ciphertext) and the score is committed, then revealed.
	Sealed *Sealed `json:"sealed,omitempty"`
}

// EvalInput is one of the evaluation's inputs.
type EvalInput struct {
	CID  string `json:"cid"`
	Path string `json:"path"`
}

// Verdict is what a validator found.
type Verdict struct {
	Value float64 `json:"value"`
	Score uint32  `json:"score"`
	Pass  bool    `json:"pass"`
	// Reason says why the score is 0 when the checkpoint could not be evaluated, or why
	// the task was declined.
	Reason string `json:"reason,omitempty"`
	// Declined is set when the node's consent refused the task: nothing was fetched,
	// pulled or run, and nothing is attested.
	Declined bool   `json:"declined,omitempty"`
	Tx       string `json:"tx,omitempty"`
}

// ErrDeclined marks a task the node does not consent to evaluate.
var ErrDeclined = errors.New("validation declined")

// Limits cap one evaluation on top of the configuration; a zero field adds no cap.
type Limits struct {
	CPUs        float64
	MemoryBytes int64
	RunTimeout  time.Duration
	// MaxImageBytes caps the evaluation image; the runtime must be an ImageChecker.
	MaxImageBytes int64
}

// ImageChecker is a runtime that pulls an image within a size cap and dry-runs its
// container before the node commits to running it (docker.Runtime).
type ImageChecker interface {
	Check(ctx context.Context, spec runtime.Spec, maxImageBytes int64) (runtime.Checked, error)
}

// Consent decides whether the node evaluates t, before anything is fetched, pulled or
// run, and with what caps. A refusal is an error wrapping ErrDeclined that says why.
type Consent func(t Task) (Limits, error)

// Chain is what the validator needs of the contract. Attest must be idempotent: repeating
// an attestation this validator already made succeeds.
type Chain interface {
	Attest(ctx context.Context, jobID string, score uint32) (tx string, err error)
}

// Content fetches the checkpoint.
type Content interface {
	Fetch(ctx context.Context, cid string) (string, error)
}

// Runtime runs the evaluation container.
type Runtime interface {
	Start(ctx context.Context, spec runtime.Spec) (runtime.Handle, error)
	Wait(ctx context.Context, jobID string) (runtime.Result, error)
}

// Validator evaluates submitted results.
type Validator struct {
	cfg     Config
	store   *store.Store
	chain   Chain
	content Content
	rt      Runtime
	workDir string
	log     *slog.Logger
	consent Consent
	// keys, cr and self judge sealed results (SetSealed).
	keys KeySource
	cr   CommitReveal
	self common.Address
}

// New returns a validator that keeps its progress in st and its evaluation outputs
// under workDir.
func New(cfg Config, st *store.Store, chain Chain, content Content, rt Runtime, workDir string, log *slog.Logger) *Validator {
	return &Validator{cfg: cfg, store: st, chain: chain, content: content, rt: rt, workDir: workDir, log: log.With("component", "validator")}
}

// SetConsent makes the validator ask c before every evaluation; without it, every task
// is evaluated within the configuration's caps.
func (v *Validator) SetConsent(c Consent) { v.consent = c }

const (
	stateDeclined   = "declined"
	stateEvaluating = "evaluating"
	stateAttesting  = "attesting"
	stateAttested   = "attested"
)

func key(jobID string) string { return "validate-" + jobID }

// Validate evaluates a task and attests its score, resuming where a previous run stopped:
// a checkpoint is evaluated once and attested once.
func (v *Validator) Validate(ctx context.Context, t Task) (Verdict, error) {
	if t.Sealed != nil {
		if err := t.Sealed.parse(t.JobID); err != nil {
			return Verdict{}, fmt.Errorf("job %s: %w", t.JobID, err)
		}
		return v.validateSealed(ctx, t)
	}
	id := key(t.JobID)
	err := v.store.Create(store.Job{ID: id, State: stateEvaluating}, "result submitted: "+t.CheckpointCID)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return Verdict{}, err
	}
	j, err := v.store.Get(id)
	if err != nil {
		return Verdict{}, err
	}
	var verdict Verdict
	if j.State == stateEvaluating {
		var lim Limits
		if v.consent != nil {
			lim, err = v.consent(t)
		}
		switch {
		case errors.Is(err, ErrDeclined):
			verdict = Verdict{Declined: true, Reason: err.Error()}
		case err != nil:
			return Verdict{}, fmt.Errorf("job %s: consent: %w", t.JobID, err)
		default:
			verdict, err = v.evaluate(ctx, t, lim)
			if err != nil {
				return Verdict{}, fmt.Errorf("job %s: %w", t.JobID, err)
			}
		}
		if verdict.Declined {
			v.log.Warn("validation declined: not evaluated", "job_id", t.JobID, "sponsor", t.Sponsor, "image", t.EvalImage, "reason", verdict.Reason)
			if _, err := v.store.Advance(id, stateEvaluating, stateDeclined, verdict.Reason, func(sj *store.Job) error {
				sj.Data = mustJSON(verdict)
				return nil
			}); err != nil {
				return Verdict{}, err
			}
			return verdict, nil
		}
		v.log.Info("evaluated", "job_id", t.JobID, "metric", t.Metric, "value", verdict.Value, "score", verdict.Score, "pass", verdict.Pass, "reason", verdict.Reason)
		if j, err = v.store.Advance(id, stateEvaluating, stateAttesting, fmt.Sprintf("score %d", verdict.Score), func(sj *store.Job) error {
			sj.Data = mustJSON(verdict)
			return nil
		}); err != nil {
			return Verdict{}, err
		}
	}
	if err := unmarshal(j.Data, &verdict); err != nil {
		return Verdict{}, fmt.Errorf("job %s: %w", t.JobID, err)
	}
	if j.State == stateAttesting {
		tx, err := v.chain.Attest(ctx, t.JobID, verdict.Score)
		if err != nil {
			return verdict, fmt.Errorf("job %s: attest: %w", t.JobID, err)
		}
		verdict.Tx = tx
		if _, err := v.store.Advance(id, stateAttesting, stateAttested, "attest tx "+tx, func(sj *store.Job) error {
			sj.Data = mustJSON(verdict)
			return nil
		}); err != nil {
			return verdict, err
		}
	}
	return verdict, nil
}

// evaluate scores a checkpoint. Anything wrong with the result — a checkpoint that does
// not match its hash, an evaluation that fails or reports garbage — scores 0, since it is
// the provider's result that failed. The validator's own trouble (a fetch that fails, an
// engine that cannot start the container) is an error instead: the caller tries again
// later, and the contract's deadlines bound how long.
func (v *Validator) evaluate(ctx context.Context, t Task, lim Limits) (Verdict, error) {
	fail := func(format string, a ...any) (Verdict, error) { return Verdict{Reason: fmt.Sprintf(format, a...)}, nil }
	out := filepath.Join(v.workDir, "eval", t.JobID, "out")
	// The runtime copies what the evaluation wrote into out, normalised.
	if err := os.MkdirAll(out, 0o755); err != nil {
		return Verdict{}, fmt.Errorf("eval output dir: %w", err)
	}
	spec := runtime.Spec{
		JobID:        "eval-" + t.JobID,
		Image:        t.EvalImage,
		Command:      t.EvalCommand,
		OutputDir:    out,
		OutputTarget: "/out",
		Network:      runtime.NetworkNone,
		RunTimeout:   capped(time.Duration(v.cfg.EvalTimeout), lim.RunTimeout),
		Resources:    runtime.Resources{CPUs: capped(v.cfg.CPUs, lim.CPUs), MemoryBytes: capped(v.cfg.MemoryBytes, lim.MemoryBytes)},
	}
	if lim.MaxImageBytes > 0 && len(t.EvalCommand) > 0 {
		// Before anything is fetched: an image over the cap is the sponsor's doing, and
		// the duty is declined rather than scored.
		c, ok := v.rt.(ImageChecker)
		if !ok {
			return Verdict{Declined: true, Reason: "the evaluation image's size cannot be checked on this runtime"}, nil
		}
		_, err := c.Check(ctx, spec, lim.MaxImageBytes)
		switch {
		case err == nil:
		case errors.Is(err, runtime.ErrImageTooLarge), errors.Is(err, runtime.ErrPlatform):
			return Verdict{Declined: true, Reason: fmt.Sprintf("evaluation image: %v", err)}, nil
		case errors.Is(err, runtime.ErrImageNotFound), errors.Is(err, runtime.ErrDigestMismatch), errors.Is(err, runtime.ErrTagNotAllowed):
			return fail("evaluation image: %v", err)
		default:
			return Verdict{}, fmt.Errorf("check evaluation image: %w", err)
		}
	}
	var dir string
	if t.Sealed != nil {
		d, reason, err := v.openSealed(ctx, t)
		if err != nil {
			return Verdict{}, err
		}
		if reason != "" {
			return fail("%s", reason)
		}
		dir = d
	} else {
		d, err := v.content.Fetch(ctx, t.CheckpointCID)
		if err != nil {
			return Verdict{}, fmt.Errorf("fetch checkpoint %s: %w", t.CheckpointCID, err)
		}
		got, err := treehash.Sum(d)
		if err != nil {
			return fail("checkpoint %s: %v", t.CheckpointCID, err)
		}
		if got != t.ResultHash {
			return fail("checkpoint %s has hash %s, the chain says %s", t.CheckpointCID, got, t.ResultHash)
		}
		dir = d
	}
	if len(t.EvalCommand) == 0 {
		return fail("the job names no evaluation command")
	}
	mounts := []runtime.Mount{{Source: dir, Target: "/checkpoint"}}
	for _, in := range t.EvalInputs {
		p, err := v.content.Fetch(ctx, in.CID)
		if err != nil {
			return Verdict{}, fmt.Errorf("fetch evaluation input %s: %w", in.CID, err)
		}
		mounts = append(mounts, runtime.Mount{Source: p, Target: in.Path})
	}
	evalID := spec.JobID
	spec.Inputs = mounts
	_, err := v.rt.Start(ctx, spec)
	switch {
	case err == nil, errors.Is(err, runtime.ErrJobExists):
	case errors.Is(err, runtime.ErrImageNotFound), errors.Is(err, runtime.ErrDigestMismatch), errors.Is(err, runtime.ErrTagNotAllowed):
		return fail("evaluation image: %v", err)
	default:
		return Verdict{}, fmt.Errorf("start evaluation: %w", err)
	}
	res, err := v.rt.Wait(ctx, evalID)
	if err != nil {
		return Verdict{}, fmt.Errorf("evaluation: %w", err)
	}
	if !res.Succeeded() {
		return fail("evaluation failed: exit %d %s", res.ExitCode, res.Error)
	}
	r, err := readResult(filepath.Join(out, ResultFile))
	if errors.Is(err, os.ErrNotExist) {
		return fail("evaluation wrote no %s: %v", ResultFile, err)
	}
	if err != nil {
		return fail("%v", err)
	}
	value, ok := r.Metrics[t.Metric]
	if !ok {
		return fail("%s has no metric %q", ResultFile, t.Metric)
	}
	score := toScore(value)
	pass := score >= t.Threshold
	if t.Sealed != nil && t.Sealed.LowerIsBetter {
		pass = score <= t.Threshold
	}
	return Verdict{Value: value, Score: score, Pass: pass}, nil
}

// capped is the smaller of two caps where 0 means none.
func capped[T float64 | int64 | time.Duration](a, b T) T {
	switch {
	case b <= 0:
		return a
	case a <= 0:
		return b
	}
	return min(a, b)
}

// readResult reads the evaluation's result file, which the evaluation image wrote and
// so may have made anything: it is opened without following a symlink and without
// waiting for a FIFO's writer, and read only if it is a regular file, bounded.
func readResult(path string) (Result, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return Result{}, fmt.Errorf("%s is a symlink: refused", ResultFile)
		}
		return Result{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Result{}, err
	}
	if !fi.Mode().IsRegular() {
		return Result{}, fmt.Errorf("%s is not a regular file (%s): refused", ResultFile, fi.Mode().Type())
	}
	return DecodeResult(f)
}

func toScore(v float64) uint32 {
	s := math.Round(v * ScoreScale)
	switch {
	case s <= 0 || math.IsNaN(s):
		return 0
	case s >= math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}
