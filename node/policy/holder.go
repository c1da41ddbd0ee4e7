package policy

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/node/api"
)

// Config configures the node's policy.
type Config struct {
	// File is the operator's local policy (TOML). Empty: no local layer.
	File string `toml:"file"`
	// PoolKey is the pool's public key as `gpunode pool keygen` prints it
	// ("gpunode-pool-pub:…"). Empty: the node is in no pool.
	PoolKey string `toml:"pool_key"`
	// PoolPolicyFile holds the signed pool policy. It is read at start and on reload;
	// newer policies received from the pool are written to it so they survive a restart.
	PoolPolicyFile string `toml:"pool_policy_file"`
	// History is how many recent rejections the control API lists.
	History int `toml:"history"`
}

// Default returns a configuration without a local policy or a pool.
func Default() Config { return Config{History: 100} }

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.PoolKey != "" {
		if _, err := ParsePublicKey(c.PoolKey); err != nil {
			errs = append(errs, fmt.Errorf("pool_key: %w", err))
		}
		if c.PoolPolicyFile == "" {
			errs = append(errs, errors.New("pool_policy_file: required with pool_key (where the signed pool policy is kept)"))
		}
	} else if c.PoolPolicyFile != "" {
		errs = append(errs, errors.New("pool_policy_file: set without pool_key, so its signature cannot be checked"))
	}
	if c.History < 0 || c.History > 10000 {
		errs = append(errs, fmt.Errorf("history: %d out of range 0..10000", c.History))
	}
	return errs
}

// Holder keeps the policy in force and the node's admission state. It is safe for
// concurrent use: decisions read an immutable Set swapped atomically, so a reload never
// blocks or changes a decision already made, and running jobs are never touched.
type Holder struct {
	cfg     Config
	log     *slog.Logger
	poolKey ed25519.PublicKey
	m       *metrics

	set atomic.Pointer[Set]

	mu          sync.Mutex // serialises reloads and pool updates
	lastReload  time.Time
	reloadError string

	adm admission

	hmu        sync.Mutex
	rejections []Rejection

	nodeState atomic.Pointer[func() NodeState]
}

// ObserveNode gives the holder a source of the node's current state (GPU model,
// temperatures, power, time), used when a request arrives without one: offers from
// OfferFor and checks over the control API.
func (h *Holder) ObserveNode(f func() NodeState) { h.nodeState.Store(&f) }

// CurrentNode returns the node's state from the source given to ObserveNode; without one,
// only the time is known.
func (h *Holder) CurrentNode() NodeState {
	if f := h.nodeState.Load(); f != nil {
		s := (*f)()
		if s.Now.IsZero() {
			s.Now = time.Now()
		}
		return s
	}
	return NodeState{Now: time.Now()}
}

// New loads the configured policies. A policy that cannot be loaded at start is an error:
// the node must not take jobs under a policy the operator did not write.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Holder, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("policy config: %w", errors.Join(errs...))
	}
	h := &Holder{cfg: cfg, log: log.With("component", "policy")}
	h.m = newMetrics(reg, func() string { return h.Admission().State })
	if cfg.PoolKey != "" {
		h.poolKey, _ = ParsePublicKey(cfg.PoolKey)
	}
	h.adm.since = time.Now()
	set, err := h.load(nil)
	if err != nil {
		return nil, err
	}
	for _, e := range set.overridden {
		h.log.Error("local policy is looser than the pool's; the pool's rule applies, fix the file", "file", cfg.File, "err", e)
	}
	h.set.Store(set)
	h.lastReload = time.Now()
	h.m.poolSeq.Set(float64(set.PoolSeq))
	return h, nil
}

// Set returns the policy in force.
func (h *Holder) Set() *Set { return h.set.Load() }

// load reads the configured files. prev, when set, is the policy in force: a pool file
// older than prev's pool policy is ignored (a newer one arrived over the network).
func (h *Holder) load(prev *Set) (*Set, error) {
	next := &Set{}
	if prev != nil {
		next.Pool, next.PoolSeq, next.poolRaw = prev.Pool, prev.PoolSeq, prev.poolRaw
	}
	if h.poolKey != nil {
		b, err := os.ReadFile(h.cfg.PoolPolicyFile)
		switch {
		case errors.Is(err, os.ErrNotExist) && prev == nil:
			// Not received yet: the pool publishes it. Until then the local layer rules.
			h.log.Warn("no pool policy yet", "file", h.cfg.PoolPolicyFile)
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("pool policy %s: %w", h.cfg.PoolPolicyFile, err)
		default:
			v, err := Verify(h.poolKey, b)
			if err != nil {
				if errors.Is(err, ErrBadSignature) || errors.Is(err, ErrWrongPool) {
					h.m.poolUpdates.WithLabelValues("bad_signature").Inc()
				}
				return nil, fmt.Errorf("pool policy %s: %w", h.cfg.PoolPolicyFile, err)
			}
			if next.Pool == nil || v.Seq > next.PoolSeq {
				next.Pool, next.PoolSeq, next.poolRaw = v.Policy, v.Seq, v.Raw
			}
		}
	}
	if h.cfg.File != "" {
		b, err := os.ReadFile(h.cfg.File)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", h.cfg.File, err)
		}
		p, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", h.cfg.File, err)
		}
		// The operator wrote a new local policy: refuse it if it loosens the pool's. If
		// the file is unchanged (the pool's policy moved, or this is the start), the
		// rules the pool overrides are reported instead: refusing would drop the local
		// layer's tightenings or keep a node that restarts after a pool update from
		// starting. The pool's rules apply either way, since every layer must allow a job.
		errs := CheckTightens(next.Pool, p)
		changed := prev == nil || prev.Local == nil || !bytes.Equal(prev.localRaw, b)
		if len(errs) > 0 && changed && prev != nil {
			return nil, fmt.Errorf("policy %s: refused, a local policy may only tighten the pool's (seq %d): %w", h.cfg.File, next.PoolSeq, errors.Join(errs...))
		}
		next.overridden = errs
		next.localRaw = b
		next.Local = p
	}
	return next, nil
}

// Reload re-reads the policy files, as on SIGHUP. On any error the policy in force stays,
// and the error is logged, counted and returned. Running jobs are not affected either way.
func (h *Holder) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	next, err := h.load(h.set.Load())
	h.lastReload = time.Now()
	if err != nil {
		h.reloadError = err.Error()
		h.m.reloads.WithLabelValues("error").Inc()
		h.m.reloadOK.Set(0)
		h.log.Error("policy reload failed; keeping the policy in force", "err", err)
		return err
	}
	h.reloadError = ""
	h.set.Store(next)
	h.m.reloads.WithLabelValues("ok").Inc()
	h.m.reloadOK.Set(1)
	h.m.poolSeq.Set(float64(next.PoolSeq))
	h.log.Info("policy reloaded", "file", h.cfg.File, "pool_seq", next.PoolSeq)
	return nil
}

// ApplyPoolUpdate takes a signed pool policy as received from the pool's topic or a file.
// It must be signed by the configured pool key and newer than the policy in force. The
// local layer stays; if the new pool policy makes some local rules looser than the pool's,
// the pool's still apply (every layer must allow a job) and the overridden rules are logged.
// The envelope is written to PoolPolicyFile before it takes effect.
func (h *Holder) ApplyPoolUpdate(signed []byte) error {
	if h.poolKey == nil {
		h.m.poolUpdates.WithLabelValues("not_member").Inc()
		return errors.New("pool policy: this node is in no pool (set policy.pool_key)")
	}
	v, err := Verify(h.poolKey, signed)
	if err != nil {
		switch {
		case errors.Is(err, ErrBadSignature), errors.Is(err, ErrWrongPool):
			h.m.poolUpdates.WithLabelValues("bad_signature").Inc()
		default:
			h.m.poolUpdates.WithLabelValues("invalid").Inc()
		}
		h.log.Warn("pool policy rejected", "err", err)
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.set.Load()
	if cur.Pool != nil && v.Seq <= cur.PoolSeq {
		h.m.poolUpdates.WithLabelValues("stale").Inc()
		return fmt.Errorf("%w: seq %d, in force %d", ErrStale, v.Seq, cur.PoolSeq)
	}
	if err := writeFileAtomic(h.cfg.PoolPolicyFile, signed); err != nil {
		h.m.poolUpdates.WithLabelValues("error").Inc()
		h.log.Error("pool policy not saved; keeping the policy in force", "seq", v.Seq, "err", err)
		return fmt.Errorf("pool policy seq %d: save: %w", v.Seq, err)
	}
	next := &Set{Pool: v.Policy, PoolSeq: v.Seq, poolRaw: v.Raw, Local: cur.Local, localRaw: cur.localRaw}
	next.overridden = CheckTightens(v.Policy, cur.Local)
	for _, e := range next.overridden {
		h.log.Warn("pool policy overrides a local rule; the pool's applies", "seq", v.Seq, "err", e)
	}
	h.set.Store(next)
	h.m.poolUpdates.WithLabelValues("applied").Inc()
	h.m.poolSeq.Set(float64(v.Seq))
	h.log.Info("pool policy applied", "seq", v.Seq)
	return nil
}

// PoolPolicy returns the signed pool policy in force, nil if none, for relaying to other
// members of the pool (a node that joins late has missed the pool's last publication).
func (h *Holder) PoolPolicy() []byte { return h.Set().poolRaw }

func writeFileAtomic(name string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".pool-policy-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// Paused returns why the node takes no job right now regardless of the job — outside
// every time window, or a GPU above a thermal limit — judged on CurrentNode; nil if it
// is not paused.
func (h *Holder) Paused() []string {
	n := h.CurrentNode()
	var out []string
	for _, l := range h.Set().layers() {
		for _, c := range l.p.nodeChecks(l.name, n) {
			if !c.Pass {
				out = append(out, c.Layer+" "+c.Rule+": "+c.Detail)
			}
		}
	}
	return out
}

// Rejection is a recent offer the node turned down.
type Rejection struct {
	Time    time.Time `json:"time"`
	Image   string    `json:"image"`
	Sponsor string    `json:"sponsor"`
	Failed  []Check   `json:"failed"`
}

// Offer decides whether the node takes an offered job: the node must be admitting jobs
// and every policy layer must allow it. Decisions and rejections are counted by reason.
func (h *Holder) Offer(r Request) Decision {
	d := h.Explain(r)
	h.record("offer", r, d)
	return d
}

// Container re-checks a job when its container is created and returns the limits the
// container gets (egress, duration, output cap, datasets). Admission does not apply: a
// draining node finishes the jobs it accepted.
func (h *Holder) Container(r Request) (ContainerLimits, Decision) {
	cl, d := h.Set().Container(r)
	h.record("container", r, d)
	return cl, d
}

// Explain evaluates a request without counting it, for `policy check` over the API.
func (h *Holder) Explain(r Request) Decision {
	c, ok := h.adm.check()
	set := h.Set()
	d := set.Evaluate(r, Offer)
	d.Checks = append([]Check{c}, d.Checks...)
	d.Allow = d.Allow && ok
	if h.poolKey != nil && set.Pool == nil {
		// A pool member takes no job before it has its pool's policy: without it the
		// node would run under its local policy alone, looser than the pool wants.
		d.Checks = append(d.Checks, Check{Layer: "pool", Rule: "pool_policy", Kind: KindPool,
			Detail: "no signed pool policy yet (" + h.cfg.PoolPolicyFile + "); waiting for the pool to publish one"})
		d.Allow = false
	}
	return d
}

func (h *Holder) record(stage string, r Request, d Decision) {
	result := "allow"
	if !d.Allow {
		result = "deny"
	}
	h.m.decisions.WithLabelValues(stage, result).Inc()
	if d.Allow {
		return
	}
	seen := map[Kind]bool{}
	for _, c := range d.Failed() {
		if !seen[c.Kind] {
			seen[c.Kind] = true
			h.m.rejections.WithLabelValues(string(c.Kind)).Inc()
		}
	}
	rj := Rejection{Time: time.Now().UTC(), Sponsor: r.Sponsor, Failed: d.Failed()}
	if r.Manifest != nil {
		rj.Image = r.Manifest.Image
	}
	h.remember(rj)
}

// remember keeps rj among the recent rejections.
func (h *Holder) remember(rj Rejection) {
	if h.cfg.History == 0 {
		return
	}
	h.hmu.Lock()
	defer h.hmu.Unlock()
	h.rejections = append(h.rejections, rj)
	if n := len(h.rejections) - h.cfg.History; n > 0 {
		h.rejections = append([]Rejection(nil), h.rejections[n:]...)
	}
}

// Rejections returns the recent rejections, newest last.
func (h *Holder) Rejections() []Rejection {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	return append([]Rejection(nil), h.rejections...)
}

// Status describes the policy in force, for the control API and `gpunode status`:
// Overridden lists the local rules looser than the pool's, which the pool overrides;
// Paused says why the node takes no job right now (time window, thermal limits).
func (h *Holder) Status() api.PolicyStatus {
	set := h.Set()
	h.mu.Lock()
	defer h.mu.Unlock()
	return api.PolicyStatus{
		File: h.cfg.File, PoolKey: h.cfg.PoolKey, PoolPolicyFile: h.cfg.PoolPolicyFile,
		PoolSeq: set.PoolSeq, HasPool: set.Pool != nil, HasLocal: set.Local != nil,
		LastReload: h.lastReload, LastReloadError: h.reloadError, Admission: h.Admission().API(),
		Overridden: errStrings(set.overridden), Paused: h.Paused(),
	}
}

func errStrings(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// Check explains a request against the policy in force without counting it: what
// `gpunode policy check --daemon` asks. A request without node state gets the node's
// current one.
func (h *Holder) Check(r Request) Decision {
	if r.Node.Now.IsZero() {
		r.Node = h.CurrentNode()
	}
	return h.Explain(r)
}
