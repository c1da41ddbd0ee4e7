// Package policy is the operator's workload policy: which jobs a node takes, and with what
// limits their containers run.
//
// A policy is a TOML file (see configs/policy.example.toml). A node evaluates an offered
// job against a Set of layers — the pool's signed policy, if the node belongs to a pool,
// and the operator's local policy — and a job is taken only if every layer allows it. That
// makes the merge semantics exact: allow lists intersect, deny lists add up, price floors
// take the maximum and limits the minimum. A local policy that tries to loosen its pool's
// (a higher limit, a lower floor, an allow entry the pool does not allow, egress the pool
// does not grant) is refused as a whole, with one message per loosening rule.
//
// Every Decision lists each rule it checked and why it passed or failed. The Holder keeps
// the policy in force, swaps it atomically on reload or on a newer pool update, keeps the
// old one when the new one is bad, counts decisions by reason, and holds the node's
// admission state (cordoned, draining).
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // time windows name IANA zones; do not depend on the host having them

	"github.com/BurntSushi/toml"
)

// Version is the policy file format version.
const Version = 1

// MaxPolicyBytes bounds a policy file; pool policies arrive over the network.
const MaxPolicyBytes = 256 << 10

// ErrInvalid marks a policy that failed to parse or validate.
var ErrInvalid = errors.New("invalid policy")

// Policy is one layer of workload policy. Unset fields do not restrict.
type Policy struct {
	// Version is the file format version; must be 1.
	Version int `toml:"version"`
	// Images restricts which container images run.
	Images Images `toml:"images"`
	// Sponsors restricts who may post jobs to this node (Ethereum addresses).
	Sponsors Sponsors `toml:"sponsors"`
	// PriceFloors is the minimum price in wei per GPU-hour by GPU model name as NVML
	// reports it; "*" applies to models without their own entry. Values are decimal
	// strings because wei amounts overflow TOML integers.
	PriceFloors map[string]Wei `toml:"price_floors"`
	// Limits bounds what a single job may ask for.
	Limits Limits `toml:"limits"`
	// Datasets maps a local dataset tag to the sponsors allowed to train on it ("*" for
	// anyone). When no layer has a datasets table, no job may use a local dataset.
	Datasets map[string][]string `toml:"datasets"`
	// Network is the egress jobs may be granted.
	Network Network `toml:"network"`
	// Windows are the times the node takes jobs; none means always.
	Windows []Window `toml:"windows"`
	// Thermal pauses taking jobs while a GPU runs hotter or draws more than these.
	Thermal Thermal `toml:"thermal"`
	// Rules are custom CEL expressions over the job, the offer and the node; each must
	// evaluate to true for a job to be taken.
	Rules []Rule `toml:"rules"`
	// Validator is what the node consents to evaluate as a validator (see Validator).
	Validator Validator `toml:"validator"`

	// MaxBondWei is the largest bond, in wei, the node locks to accept one job paid in
	// ETH. Unset is 0: no bond is risked until the operator (and the pool) says so.
	MaxBondWei Wei `toml:"max_bond_wei"`
	// Validators restricts who judges the jobs the node takes: a sponsor that names
	// validators it controls can have any result rejected.
	Validators Validators `toml:"validators"`
	// MinRunWindowFactor is how much longer than the job's max_duration plus the measured
	// prepare time the run window must be; at least 1, DefaultRunWindowFactor when unset.
	MinRunWindowFactor float64 `toml:"min_run_window_factor"`
	// MaxImageBytes caps a job's image as the engine stores it (uncompressed); when no
	// layer sets it, DefaultMaxImageBytes applies.
	MaxImageBytes int64 `toml:"max_image_bytes"`
	// Tokens are the ERC-20 tokens, by contract address, that jobs may pay in, each with
	// its own price floors and bond cap. A job paying in a token that a layer does not
	// list is declined.
	Tokens map[string]Token `toml:"tokens"`

	hasDatasets bool
	windows     []window
	programs    []*program
}

// Images restricts images by repository pattern and digest.
type Images struct {
	// Allow lists repository patterns (path.Match syntax, e.g. "ghcr.io/lab/*");
	// empty allows every repository.
	Allow []string `toml:"allow"`
	// Deny lists repository patterns that never run.
	Deny []string `toml:"deny"`
	// Pinned lists the only image digests ("sha256:…") that run; empty allows any.
	Pinned []string `toml:"pinned"`
}

// Sponsors restricts job posters by Ethereum address.
type Sponsors struct {
	// Allow lists the only addresses whose jobs are taken; empty allows everyone.
	Allow []string `toml:"allow"`
	// Deny lists addresses whose jobs are never taken.
	Deny []string `toml:"deny"`
}

// Limits bounds a job. Zero means no limit from this layer.
type Limits struct {
	// MaxDuration is the longest running time a job may ask for ("24h").
	MaxDuration Duration `toml:"max_duration"`
	// MaxGPUs is the most GPUs one job may use.
	MaxGPUs int `toml:"max_gpus"`
	// MaxOutputBytes is the largest output a job may declare.
	MaxOutputBytes int64 `toml:"max_output_bytes"`
}

// Egress modes.
const (
	EgressNone      = "none"
	EgressAllowlist = "allowlist"
)

// Network is the egress a layer grants.
type Network struct {
	// Egress is "none" (the default) or "allowlist".
	Egress string `toml:"egress"`
	// AllowDomains lists the domains jobs may reach with egress "allowlist"; "*.example.org"
	// matches subdomains.
	AllowDomains []string `toml:"allow_domains"`
}

// Window is a time range during which the node takes jobs.
type Window struct {
	// Days limits the window to weekdays ("mon".."sun"); empty means every day.
	Days []string `toml:"days"`
	// Start and End are "HH:MM"; an End before Start wraps past midnight.
	Start string `toml:"start"`
	End   string `toml:"end"`
	// Timezone is an IANA name; empty means UTC.
	Timezone string `toml:"timezone"`
}

// Thermal holds the limits above which the node pauses taking jobs. Zero means none.
type Thermal struct {
	// MaxGPUTempC is the hottest a GPU may be, in degrees Celsius.
	MaxGPUTempC float64 `toml:"max_gpu_temp_c"`
	// MaxGPUPowerW is the most a GPU may draw, in watts.
	MaxGPUPowerW float64 `toml:"max_gpu_power_w"`
}

// Rule is a custom CEL rule.
type Rule struct {
	// Name identifies the rule in decisions and metrics.
	Name string `toml:"name"`
	// Expr is a CEL expression of type bool over job, offer and node.
	Expr string `toml:"expr"`
	// Message explains a failure; defaults to the expression.
	Message string `toml:"message"`
}

// Wei is an amount in wei, written as a decimal string.
type Wei struct{ *big.Int }

// UnmarshalText reads a non-negative decimal amount.
func (w *Wei) UnmarshalText(b []byte) error {
	if len(b) == 0 || len(b) > 78 {
		return fmt.Errorf("wei amount %q: want 1..78 decimal digits", b)
	}
	v, ok := new(big.Int).SetString(string(b), 10)
	if !ok || v.Sign() < 0 || strings.ContainsAny(string(b), "+-") {
		return fmt.Errorf("wei amount %q: want a non-negative decimal integer", b)
	}
	w.Int = v
	return nil
}

// MarshalText writes the amount in decimal.
func (w Wei) MarshalText() ([]byte, error) {
	if w.Int == nil {
		return []byte("0"), nil
	}
	return []byte(w.String()), nil
}

// Duration is a time.Duration written as a Go duration string.
type Duration struct{ time.Duration }

// UnmarshalText reads a duration such as "24h".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Parse decodes and validates a policy. Unknown keys are errors: a misspelt key silently
// ignored would loosen the policy. All problems are reported at once, wrapping ErrInvalid.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxPolicyBytes)
	}
	var p Policy
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, fmt.Errorf("unknown key %q", k.String()))
	}
	p.hasDatasets = md.IsDefined("datasets")
	p.Validator.hasTokens = md.IsDefined("validator", "token_min_fees")
	errs = append(errs, p.validate()...)
	errs = append(errs, p.validateMarket()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return &p, nil
}

var (
	addrRE   = regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`)
	digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	domainRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	clockRE  = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	tagRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

const maxListLen = 1024

func (p *Policy) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if p.Version != Version {
		bad("version: got %d, want %d", p.Version, Version)
	}
	patterns := func(key string, list []string) {
		if len(list) > maxListLen {
			bad("%s: more than %d entries", key, maxListLen)
		}
		for _, pat := range list {
			if pat == "" || len(pat) > 255 {
				bad("%s: pattern %q must be 1..255 characters", key, pat)
			} else if _, err := path.Match(pat, ""); err != nil {
				bad("%s: pattern %q: %v", key, pat, err)
			}
		}
	}
	patterns("images.allow", p.Images.Allow)
	patterns("images.deny", p.Images.Deny)
	for _, d := range p.Images.Pinned {
		if !digestRE.MatchString(d) {
			bad("images.pinned: %q is not sha256:<64 lowercase hex>", d)
		}
	}
	addrs := func(key string, list []string) {
		if len(list) > maxListLen {
			bad("%s: more than %d entries", key, maxListLen)
		}
		for _, a := range list {
			if !addrRE.MatchString(a) {
				bad("%s: %q is not an Ethereum address (0x + 40 hex digits)", key, a)
			}
		}
	}
	addrs("sponsors.allow", p.Sponsors.Allow)
	addrs("sponsors.deny", p.Sponsors.Deny)
	if len(p.PriceFloors) > maxListLen {
		bad("price_floors: more than %d entries", maxListLen)
	}
	for model, w := range p.PriceFloors {
		if model == "" || len(model) > 128 {
			bad("price_floors: GPU model name %q must be 1..128 characters", model)
		}
		if w.Int == nil {
			bad("price_floors.%q: missing amount", model)
		}
	}
	if p.Limits.MaxDuration.Duration < 0 {
		bad("limits.max_duration: negative")
	}
	if p.Limits.MaxGPUs < 0 {
		bad("limits.max_gpus: negative")
	}
	if p.Limits.MaxOutputBytes < 0 {
		bad("limits.max_output_bytes: negative")
	}
	if len(p.Datasets) > maxListLen {
		bad("datasets: more than %d entries", maxListLen)
	}
	for tag, who := range p.Datasets {
		if !tagRE.MatchString(tag) {
			bad("datasets: %q is not a dataset tag", tag)
		}
		for _, a := range who {
			if a != "*" && !addrRE.MatchString(a) {
				bad("datasets.%s: %q is neither \"*\" nor an Ethereum address", tag, a)
			}
		}
	}
	switch p.Network.Egress {
	case "", EgressNone:
		if len(p.Network.AllowDomains) > 0 {
			bad("network.allow_domains: set only with egress = %q", EgressAllowlist)
		}
	case EgressAllowlist:
		if len(p.Network.AllowDomains) == 0 {
			bad("network.allow_domains: egress = %q needs at least one domain", EgressAllowlist)
		}
	default:
		bad("network.egress: %q, want %q or %q", p.Network.Egress, EgressNone, EgressAllowlist)
	}
	if len(p.Network.AllowDomains) > maxListLen {
		bad("network.allow_domains: more than %d entries", maxListLen)
	}
	for _, d := range p.Network.AllowDomains {
		if len(d) > 253 || !domainRE.MatchString(d) {
			bad("network.allow_domains: %q is not a domain name", d)
		}
	}
	if len(p.Windows) > 64 {
		bad("windows: more than 64")
	}
	p.windows = p.windows[:0]
	for i, w := range p.Windows {
		pw, err := parseWindow(w)
		if err != nil {
			bad("windows[%d]: %v", i, err)
			continue
		}
		p.windows = append(p.windows, pw)
	}
	if p.Thermal.MaxGPUTempC < 0 || p.Thermal.MaxGPUTempC > 200 {
		bad("thermal.max_gpu_temp_c: %v out of range 0..200", p.Thermal.MaxGPUTempC)
	}
	if p.Thermal.MaxGPUPowerW < 0 || p.Thermal.MaxGPUPowerW > 10000 {
		bad("thermal.max_gpu_power_w: %v out of range 0..10000", p.Thermal.MaxGPUPowerW)
	}
	if len(p.Rules) > 64 {
		bad("rules: more than 64")
	}
	p.programs = p.programs[:0]
	seen := map[string]bool{}
	for i, r := range p.Rules {
		if !nameRE.MatchString(r.Name) {
			bad("rules[%d].name: %q must be lowercase letters, digits, _ or -", i, r.Name)
		} else if seen[r.Name] {
			bad("rules[%d].name: %q used twice", i, r.Name)
		}
		seen[r.Name] = true
		if len(r.Message) > 512 {
			bad("rules[%d].message: longer than 512 characters", i)
		}
		prg, err := compileRule(r)
		if err != nil {
			bad("rules[%d] %q: %v", i, r.Name, err)
			continue
		}
		p.programs = append(p.programs, prg)
	}
	errs = append(errs, p.Validator.validate()...)
	return errs
}

type window struct {
	days       []time.Weekday
	start, end int // minutes after midnight
	loc        *time.Location
	text       string
}

func parseWindow(w Window) (window, error) {
	var pw window
	for _, d := range w.Days {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			return pw, fmt.Errorf("days: %q is not one of mon..sun", d)
		}
		pw.days = append(pw.days, wd)
	}
	if !clockRE.MatchString(w.Start) || !clockRE.MatchString(w.End) {
		return pw, fmt.Errorf("start and end must be HH:MM, got %q and %q", w.Start, w.End)
	}
	pw.start = clockMinutes(w.Start)
	pw.end = clockMinutes(w.End)
	if pw.start == pw.end {
		return pw, errors.New("start equals end: an empty window")
	}
	pw.loc = time.UTC
	if w.Timezone != "" {
		if len(w.Timezone) > 64 || strings.Contains(w.Timezone, "..") {
			return pw, fmt.Errorf("timezone %q: not an IANA name", w.Timezone)
		}
		loc, err := time.LoadLocation(w.Timezone)
		if err != nil {
			return pw, fmt.Errorf("timezone %q: %v", w.Timezone, err)
		}
		pw.loc = loc
	}
	days := "every day"
	if len(w.Days) > 0 {
		days = strings.Join(w.Days, ",")
	}
	pw.text = fmt.Sprintf("%s %s-%s %s", days, w.Start, w.End, pw.loc)
	return pw, nil
}

func clockMinutes(s string) int {
	return (int(s[0]-'0')*10+int(s[1]-'0'))*60 + int(s[3]-'0')*10 + int(s[4]-'0')
}

// contains reports whether t falls in the window. A window wrapping past midnight belongs to
// the day it starts on.
func (w window) contains(t time.Time) bool {
	t = t.In(w.loc)
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	switch {
	case w.start < w.end:
		if m < w.start || m >= w.end {
			return false
		}
	case m >= w.start:
	case m < w.end:
		day = (day + 6) % 7
	default:
		return false
	}
	return len(w.days) == 0 || slices.Contains(w.days, day)
}
