package policy

import (
	"fmt"
	"maps"
	"math/big"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gpunode/gpunode/job"
)

// Validator is the [validator] section: the validation duties the node consents to. A
// sponsor names a job's validators without asking them, so without these rules a
// sponsor could make the node pull an image of any size from anyone and run it. A duty
// that fails them is declined before anything is fetched, pulled or run. Unset keys do
// not restrict, like everywhere else in the file; the caps apply on top of the node's
// own [validator] configuration, never above it.
type Validator struct {
	// Sponsors lists the only sponsors whose jobs the node evaluates; empty: any sponsor.
	Sponsors []string `toml:"sponsors"`
	// DenySponsors lists sponsors whose jobs the node never evaluates.
	DenySponsors []string `toml:"deny_sponsors"`
	// Images restricts evaluation images by repository pattern and digest.
	Images Images `toml:"images"`
	// MaxImageBytes is the largest evaluation image the node pulls: the pull stops once
	// the layers announced pass it, and the image is removed (0: no cap).
	MaxImageBytes int64 `toml:"max_image_bytes"`
	// MaxCPUs and MaxMemoryMiB cap the evaluation container, whatever the job says.
	MaxCPUs      float64 `toml:"max_cpus"`
	MaxMemoryMiB int64   `toml:"max_memory_mib"`
	// MaxDuration caps one evaluation's run, below the node's eval_timeout.
	MaxDuration Duration `toml:"max_duration"`
	// MinFeeWei is the smallest validator fee, in wei, of a job paid in ETH.
	MinFeeWei Wei `toml:"min_fee_wei"`
	// TokenMinFees maps ERC-20 token addresses to the smallest fee in that token's base
	// units. When any layer sets this table, a job paid in a token it does not list is
	// declined: a fee in a worthless token passes any floor in wei.
	TokenMinFees map[string]Wei `toml:"token_min_fees"`

	hasTokens bool
}

// maxEvalCPUs and maxEvalMemoryMiB bound the caps to plausible values, so that a typo
// is an error rather than no cap.
const (
	maxEvalCPUs      = 4096
	maxEvalMemoryMiB = 64 << 20 // 64 TiB
)

func (v *Validator) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("validator."+format, a...)) }
	for key, list := range map[string][]string{"sponsors": v.Sponsors, "deny_sponsors": v.DenySponsors} {
		if len(list) > maxListLen {
			bad("%s: more than %d entries", key, maxListLen)
		}
		for _, a := range list {
			if !addrRE.MatchString(a) {
				bad("%s: %q is not an Ethereum address (0x + 40 hex digits)", key, a)
			}
		}
	}
	for key, list := range map[string][]string{"images.allow": v.Images.Allow, "images.deny": v.Images.Deny} {
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
	if len(v.Images.Pinned) > maxListLen {
		bad("images.pinned: more than %d entries", maxListLen)
	}
	for _, d := range v.Images.Pinned {
		if !digestRE.MatchString(d) {
			bad("images.pinned: %q is not sha256:<64 lowercase hex>", d)
		}
	}
	if v.MaxImageBytes < 0 {
		bad("max_image_bytes: negative")
	}
	if v.MaxCPUs < 0 || v.MaxCPUs > maxEvalCPUs || v.MaxCPUs != v.MaxCPUs {
		bad("max_cpus: %v out of range 0..%d", v.MaxCPUs, maxEvalCPUs)
	}
	if v.MaxMemoryMiB < 0 || v.MaxMemoryMiB > maxEvalMemoryMiB {
		bad("max_memory_mib: %d out of range 0..%d", v.MaxMemoryMiB, maxEvalMemoryMiB)
	}
	if v.MaxDuration.Duration < 0 {
		bad("max_duration: negative")
	}
	if len(v.TokenMinFees) > maxListLen {
		bad("token_min_fees: more than %d entries", maxListLen)
	}
	for token, w := range v.TokenMinFees {
		if !addrRE.MatchString(token) {
			bad("token_min_fees: %q is not a token address (0x + 40 hex digits)", token)
		}
		if w.Int == nil {
			bad("token_min_fees.%q: missing amount", token)
		}
	}
	return errs
}

// DutyRequest is a validation duty: a job that names this node as one of its validators.
type DutyRequest struct {
	// Sponsor is the address that posted the job.
	Sponsor string `json:"sponsor"`
	// Token is the ERC-20 the job pays in; empty or the zero address for ETH.
	Token string `json:"token,omitempty"`
	// FeeWei is the fee each validator earns, in the token's base units.
	FeeWei *big.Int `json:"fee_wei"`
	// Image is the evaluation image (repo@sha256:…); empty before the manifest is read,
	// and the image rules are then left for later.
	Image string `json:"image,omitempty"`
}

// EvalLimits caps an evaluation container: the smallest value any layer sets, 0 where
// none sets one.
type EvalLimits struct {
	CPUs          float64       `json:"cpus,omitempty"`
	MemoryBytes   int64         `json:"memory_bytes,omitempty"`
	MaxDuration   time.Duration `json:"max_duration,omitempty"`
	MaxImageBytes int64         `json:"max_image_bytes,omitempty"`
}

const zeroAddress = "0x0000000000000000000000000000000000000000"

func (r DutyRequest) paysInToken() bool {
	return r.Token != "" && !strings.EqualFold(r.Token, zeroAddress)
}

// Duty decides whether the node evaluates a duty, and with what caps. Every layer must
// allow it.
func (s *Set) Duty(r DutyRequest) (EvalLimits, Decision) {
	ls := s.layers()
	var checks []Check
	for _, l := range ls {
		checks = append(checks, l.p.Validator.evaluate(l.name, r)...)
	}
	if r.paysInToken() {
		listed := false
		for _, l := range ls {
			listed = listed || l.p.Validator.hasTokens
		}
		if !listed {
			checks = append(checks, Check{Layer: ls[len(ls)-1].name, Rule: "validator.token_min_fees", Kind: KindPrice,
				Detail: fmt.Sprintf("the job pays its fee in token %s and no layer lists tokens it evaluates for", r.Token)})
		}
	}
	d := Decision{Allow: true, Checks: checks}
	for _, c := range checks {
		d.Allow = d.Allow && c.Pass
	}
	var lim EvalLimits
	for _, l := range ls {
		v := l.p.Validator
		lim.CPUs = minPositive(lim.CPUs, v.MaxCPUs)
		lim.MemoryBytes = minPositive(lim.MemoryBytes, v.MaxMemoryMiB<<20)
		lim.MaxDuration = minPositive(lim.MaxDuration, v.MaxDuration.Duration)
		lim.MaxImageBytes = minPositive(lim.MaxImageBytes, v.MaxImageBytes)
	}
	return lim, d
}

// minPositive is the smaller of two caps where 0 means none.
func minPositive[T int64 | float64 | time.Duration](a, b T) T {
	switch {
	case a <= 0:
		return max(b, 0)
	case b <= 0:
		return a
	}
	return min(a, b)
}

func (v *Validator) evaluate(name string, r DutyRequest) []Check {
	var out []Check
	add := func(rule string, k Kind, pass bool, format string, a ...any) {
		out = append(out, Check{Layer: name, Rule: "validator." + rule, Kind: k, Pass: pass, Detail: fmt.Sprintf(format, a...)})
	}
	sponsor := strings.ToLower(r.Sponsor)
	if containsFold(v.DenySponsors, sponsor) {
		add("deny_sponsors", KindSponsor, false, "sponsor %s is denied", sponsor)
	}
	if len(v.Sponsors) > 0 {
		ok := containsFold(v.Sponsors, sponsor)
		add("sponsors", KindSponsor, ok, "sponsor %s %s", sponsor, map[bool]string{true: "is allowed", false: "is not among the sponsors this node evaluates for"}[ok])
	}

	if r.Image != "" {
		repo, digest, err := job.ParseImage(r.Image)
		if err != nil {
			add("images", KindImage, false, "evaluation image %q: %v", r.Image, err)
		} else {
			if pat, ok := matchAny(v.Images.Deny, repo); ok {
				add("images.deny", KindImage, false, "evaluation image repository %q matches denied pattern %q", repo, pat)
			}
			if len(v.Images.Allow) > 0 {
				pat, ok := matchAny(v.Images.Allow, repo)
				add("images.allow", KindImage, ok, "evaluation image repository %q %s", repo,
					map[bool]string{true: fmt.Sprintf("matches allowed pattern %q", pat), false: fmt.Sprintf("matches no allowed pattern %v", v.Images.Allow)}[ok])
			}
			if len(v.Images.Pinned) > 0 {
				ok := slices.Contains(v.Images.Pinned, digest)
				add("images.pinned", KindImage, ok, "evaluation image digest %s %s", short(digest), map[bool]string{true: "is pinned", false: "is not pinned"}[ok])
			}
		}
	}

	fee := r.FeeWei
	if fee == nil {
		fee = new(big.Int)
	}
	if r.paysInToken() {
		if v.hasTokens {
			floor, ok := lookupFold(v.TokenMinFees, r.Token)
			switch {
			case !ok:
				add("token_min_fees", KindPrice, false, "the job pays in token %s, which is not listed", r.Token)
			default:
				add("token_min_fees", KindPrice, fee.Cmp(floor) >= 0, "fee %s of token %s, minimum %s", fee, r.Token, floor)
			}
		}
	} else if floor := v.MinFeeWei.Int; floor != nil && floor.Sign() > 0 {
		add("min_fee_wei", KindPrice, fee.Cmp(floor) >= 0, "fee %s wei, minimum %s wei", fee, floor)
	}
	return out
}

func lookupFold(m map[string]Wei, key string) (*big.Int, bool) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if strings.EqualFold(k, key) && m[k].Int != nil {
			return m[k].Int, true
		}
	}
	return nil, false
}

// validatorTightens lists the [validator] rules of local that are looser than pool's.
func validatorTightens(pool, local *Validator, loose func(format string, a ...any)) {
	if len(pool.Sponsors) > 0 {
		for _, a := range local.Sponsors {
			if !containsFold(pool.Sponsors, a) {
				loose("validator.sponsors %s is not among the pool's", a)
			}
		}
	}
	for _, a := range local.Sponsors {
		if containsFold(pool.DenySponsors, a) {
			loose("validator.sponsors %s is denied by the pool", a)
		}
	}
	if len(pool.Images.Allow) > 0 {
		for _, pat := range local.Images.Allow {
			if _, ok := matchAny(pool.Images.Allow, pat); !ok {
				loose("validator.images.allow %q is not within the pool's allowed patterns %v", pat, pool.Images.Allow)
			}
		}
	}
	if len(pool.Images.Pinned) > 0 {
		for _, d := range local.Images.Pinned {
			if !slices.Contains(pool.Images.Pinned, d) {
				loose("validator.images.pinned %s is not among the pool's pinned digests", short(d))
			}
		}
	}
	capLoose := func(key string, l, p float64) {
		if p > 0 && l > p {
			loose("validator.%s = %v exceeds the pool's %v", key, l, p)
		}
	}
	capLoose("max_image_bytes", float64(local.MaxImageBytes), float64(pool.MaxImageBytes))
	capLoose("max_cpus", local.MaxCPUs, pool.MaxCPUs)
	capLoose("max_memory_mib", float64(local.MaxMemoryMiB), float64(pool.MaxMemoryMiB))
	capLoose("max_duration", local.MaxDuration.Seconds(), pool.MaxDuration.Seconds())
	if l, p := local.MinFeeWei.Int, pool.MinFeeWei.Int; l != nil && p != nil && l.Cmp(p) < 0 {
		loose("validator.min_fee_wei = %s is below the pool's %s", l, p)
	}
	for _, token := range slices.Sorted(maps.Keys(local.TokenMinFees)) {
		l := local.TokenMinFees[token]
		p, ok := lookupFold(pool.TokenMinFees, token)
		switch {
		case pool.hasTokens && !ok:
			loose("validator.token_min_fees %s is not a token the pool evaluates for", token)
		case ok && l.Int != nil && l.Cmp(p) < 0:
			loose("validator.token_min_fees.%s = %s is below the pool's %s", token, l, p)
		}
	}
}

// Duty decides a validation duty under the policy in force. Declined duties are counted
// by reason and listed with the recent rejections.
func (h *Holder) Duty(r DutyRequest) (EvalLimits, Decision) {
	lim, d := h.Set().Duty(r)
	result := "allow"
	if !d.Allow {
		result = "deny"
	}
	h.m.decisions.WithLabelValues("duty", result).Inc()
	if d.Allow {
		return lim, d
	}
	seen := map[Kind]bool{}
	for _, c := range d.Failed() {
		if !seen[c.Kind] {
			seen[c.Kind] = true
			h.m.duties.WithLabelValues(string(c.Kind)).Inc()
		}
	}
	h.remember(Rejection{Time: time.Now().UTC(), Image: r.Image, Sponsor: r.Sponsor, Failed: d.Failed()})
	return lim, d
}
