package policy

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
)

// The rules of an open market, where the sponsor may be hostile: what the node locks as
// bond, who judges its work, which tokens pay, whether the run window leaves time to
// finish, and how large an image it pulls.

// DefaultRunWindowFactor applies when no layer sets min_run_window_factor.
const DefaultRunWindowFactor = 1.25

// DefaultMaxImageBytes applies when no layer sets max_image_bytes.
const DefaultMaxImageBytes = 32 << 30

// AnyValidator in validators.allow lets any validator judge the node's jobs.
const AnyValidator = "any"

// Validators restricts the validators of the jobs a node takes, by Ethereum address.
type Validators struct {
	// Allow lists the only validators a job may name, or "any"; empty allows any.
	Allow []string `toml:"allow"`
	// Deny lists validators a job may not name.
	Deny []string `toml:"deny"`
}

// Token is an ERC-20 token jobs may pay in. Amounts are in the token's smallest unit.
type Token struct {
	// PriceFloors are the token's minimum prices per GPU-hour by GPU model ("*" for the
	// rest), as price_floors is for ETH.
	PriceFloors map[string]Wei `toml:"price_floors"`
	// MaxBond is the largest bond in this token the node locks for one job; unset is 0.
	// Every layer must list the token and allow the bond.
	MaxBond Wei `toml:"max_bond"`
}

// Terms are the contract's terms of a job and what the node measured of it before
// accepting; zero values are unknown and their rules are not checked.
type Terms struct {
	// Token is the ERC-20 the job pays in; empty or the zero address for ETH.
	Token string `json:"token,omitempty"`
	// BondWei is the bond the provider locks on accepting, in the job's currency.
	BondWei *big.Int `json:"bond_wei,omitempty"`
	// Validators are the addresses that judge the result.
	Validators []string `json:"validators,omitempty"`
	// RunWindow is the time from acceptance to the submission deadline.
	RunWindow time.Duration `json:"run_window,omitempty"`
	// PrepareTime is how long fetching the job's inputs and image took the node.
	PrepareTime time.Duration `json:"prepare_time,omitempty"`
	// ImageBytes is the size of the job's image as the engine stores it.
	ImageBytes int64 `json:"image_bytes,omitempty"`
}

// PaysETH tells whether the job pays in ETH rather than a token.
func (t Terms) PaysETH() bool {
	return t.Token == "" || strings.TrimLeft(strings.TrimPrefix(strings.ToLower(t.Token), "0x"), "0") == ""
}

func (p *Policy) validateMarket() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	validators := func(key string, list []string, anyOK bool) {
		if len(list) > maxListLen {
			bad("%s: more than %d entries", key, maxListLen)
		}
		for _, a := range list {
			if a == AnyValidator {
				if !anyOK {
					bad("%s: %q is only meaningful in validators.allow", key, a)
				}
				continue
			}
			if !addrRE.MatchString(a) {
				bad("%s: %q is neither %q nor an Ethereum address (0x + 40 hex digits)", key, a, AnyValidator)
			}
		}
	}
	validators("validators.allow", p.Validators.Allow, true)
	validators("validators.deny", p.Validators.Deny, false)
	if f := p.MinRunWindowFactor; f != 0 && (math.IsNaN(f) || f < 1 || f > 100) {
		bad("min_run_window_factor: %v out of range 1..100 (the run window must at least cover the job)", f)
	}
	if p.MaxImageBytes < 0 {
		bad("max_image_bytes: negative")
	}
	if len(p.Tokens) > maxListLen {
		bad("tokens: more than %d entries", maxListLen)
	}
	for addr, tok := range p.Tokens {
		if !addrRE.MatchString(addr) {
			bad("tokens: %q is not a token contract address (0x + 40 hex digits)", addr)
		} else if (Terms{Token: addr}).PaysETH() {
			bad("tokens: %q is the zero address, which stands for ETH: use price_floors and max_bond_wei", addr)
		}
		if len(tok.PriceFloors) > maxListLen {
			bad("tokens.%q.price_floors: more than %d entries", addr, maxListLen)
		}
		for model, w := range tok.PriceFloors {
			if model == "" || len(model) > 128 {
				bad("tokens.%q.price_floors: GPU model name %q must be 1..128 characters", addr, model)
			}
			if w.Int == nil {
				bad("tokens.%q.price_floors.%q: missing amount", addr, model)
			}
		}
	}
	return errs
}

// token returns the layer's entry for a token address, matched without regard to case.
func (p *Policy) token(addr string) (Token, bool) {
	for k, t := range p.Tokens {
		if strings.EqualFold(k, addr) {
			return t, true
		}
	}
	return Token{}, false
}

// bondCap is the bond cap for the job's currency: every layer must allow the bond, and
// a layer that sets no cap allows none. It returns the smallest cap and the layer and
// rule it comes from.
func bondCap(ls []layer, t Terms) (*big.Int, string, string) {
	var capWei *big.Int
	var lay, from string
	for _, l := range ls {
		w, rule := l.p.MaxBondWei, "max_bond_wei"
		if !t.PaysETH() {
			tok, _ := l.p.token(t.Token)
			w, rule = tok.MaxBond, "tokens."+strings.ToLower(t.Token)+".max_bond"
		}
		v := w.Int
		if v == nil {
			v = new(big.Int)
		}
		if capWei == nil || v.Cmp(capWei) < 0 {
			capWei, lay, from = v, l.name, rule
			if w.Int == nil {
				from += " (unset: no bond)"
			}
		}
	}
	return capWei, lay, from
}

// RunWindowFactor is the largest min_run_window_factor of every layer, or the default.
func (s *Set) RunWindowFactor() float64 {
	f := 0.0
	for _, l := range s.layers() {
		f = max(f, l.p.MinRunWindowFactor)
	}
	if f == 0 {
		return DefaultRunWindowFactor
	}
	return f
}

// MaxImageBytes is the smallest max_image_bytes of every layer, or the default.
func (s *Set) MaxImageBytes() int64 {
	var m int64
	for _, l := range s.layers() {
		if v := l.p.MaxImageBytes; v > 0 && (m == 0 || v < m) {
			m = v
		}
	}
	if m == 0 {
		return DefaultMaxImageBytes
	}
	return m
}

// RunWindowNeeded is how long a run window must be for a job that may run maxDuration
// and took prepare to get ready, with the factor's margin for uploading and submitting.
func RunWindowNeeded(factor float64, maxDuration, prepare time.Duration) time.Duration {
	need := factor * (float64(maxDuration) + float64(prepare))
	if need >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(need).Round(time.Second)
}

// marketChecks are the rules about the contract's terms: token, bond, validators, run
// window and image size, each checked once it is known.
func marketChecks(ls []layer, r Request) []Check {
	var out []Check
	add := func(lay, rule string, k Kind, pass bool, format string, a ...any) {
		out = append(out, Check{Layer: lay, Rule: rule, Kind: k, Pass: pass, Detail: fmt.Sprintf(format, a...)})
	}
	t := r.Market
	if !t.PaysETH() {
		token := strings.ToLower(t.Token)
		for _, l := range ls {
			tok, ok := l.p.token(token)
			switch {
			case ok:
				add(l.name, "tokens", KindToken, true, "token %s is accepted", token)
				if floor, model := tok.floor(r.Node.GPUModel); floor != nil {
					price := r.PriceWei
					if price == nil {
						price = new(big.Int)
					}
					add(l.name, "tokens."+token+".price_floors", KindPrice, price.Cmp(floor) >= 0,
						"offered %s per GPU-hour in token %s, floor for %q is %s", price, token, model, floor)
				}
			default:
				add(l.name, "tokens", KindToken, false, "the job pays in token %s, which is not listed under [tokens] (its price cannot be judged)", token)
			}
		}
	}

	if bond := t.BondWei; bond != nil && bond.Sign() > 0 {
		capWei, lay, rule := bondCap(ls, t)
		add(lay, rule, KindBond, bond.Cmp(capWei) <= 0, "the job asks a bond of %s, cap %s", bond, capWei)
	}

	if len(t.Validators) > 0 {
		for _, l := range ls {
			v := l.p.Validators
			if len(v.Deny) > 0 {
				var denied []string
				for _, a := range t.Validators {
					if containsFold(v.Deny, a) {
						denied = append(denied, strings.ToLower(a))
					}
				}
				add(l.name, "validators.deny", KindValidators, len(denied) == 0, "denied validators named: %v", denied)
			}
			if len(v.Allow) > 0 && !slices.Contains(v.Allow, AnyValidator) {
				var other []string
				for _, a := range t.Validators {
					if !containsFold(v.Allow, a) {
						other = append(other, strings.ToLower(a))
					}
				}
				if len(other) > 0 {
					add(l.name, "validators.allow", KindValidators, false, "validators %v are not on the allow list", other)
				} else {
					add(l.name, "validators.allow", KindValidators, true, "every validator (%d) is on the allow list", len(t.Validators))
				}
			}
		}
	}
	out = append(out, measuredChecks(ls, r)...)
	return out
}

// measuredChecks are the rules that depend on what the node measured before accepting:
// the run window against the job's duration and prepare time, and the image's size.
func measuredChecks(ls []layer, r Request) []Check {
	var out []Check
	s := &Set{}
	for _, l := range ls {
		switch l.name {
		case "pool":
			s.Pool = l.p
		case "local":
			s.Local = l.p
		}
	}
	t := r.Market
	if t.RunWindow > 0 && r.Manifest != nil {
		f := s.RunWindowFactor()
		need := RunWindowNeeded(f, r.Manifest.MaxDuration.Duration, t.PrepareTime)
		out = append(out, Check{Layer: "node", Rule: "min_run_window_factor", Kind: KindRunWindow, Pass: t.RunWindow >= need,
			Detail: fmt.Sprintf("run window %s; the job needs %.2f × (max_duration %s + prepare %s) = %s",
				t.RunWindow, f, r.Manifest.MaxDuration.Duration, t.PrepareTime.Round(time.Millisecond), need)})
	}
	if t.ImageBytes > 0 {
		m := s.MaxImageBytes()
		out = append(out, Check{Layer: "node", Rule: "max_image_bytes", Kind: KindImageSize, Pass: t.ImageBytes <= m,
			Detail: fmt.Sprintf("image is %d bytes, cap %d", t.ImageBytes, m)})
	}
	return out
}

// Measured re-checks a job once the node has measured it (prepare time, image size).
func (s *Set) Measured(r Request) Decision {
	d := Decision{Allow: true, Checks: measuredChecks(s.layers(), r)}
	for _, c := range d.Checks {
		if !c.Pass {
			d.Allow = false
		}
	}
	return d
}

// floor returns the token's price floor for model, and the entry it came from.
func (t Token) floor(model string) (*big.Int, string) {
	if w, ok := t.PriceFloors[model]; ok && w.Int != nil {
		return w.Int, model
	}
	if w, ok := t.PriceFloors["*"]; ok && w.Int != nil {
		return w.Int, "*"
	}
	return nil, ""
}

// marketTightens reports the market rules of local that are looser than pool's.
func marketTightens(pool, local *Policy, loose func(format string, a ...any)) {
	if l, p := local.MaxBondWei.Int, pool.MaxBondWei.Int; l != nil && (p == nil || l.Cmp(p) > 0) {
		if p == nil {
			p = new(big.Int)
		}
		loose("max_bond_wei = %s exceeds the pool's %s", l, p)
	}
	if l, p := local.MinRunWindowFactor, pool.MinRunWindowFactor; l > 0 && p > 0 && l < p {
		loose("min_run_window_factor = %v is below the pool's %v", l, p)
	}
	if l, p := local.MaxImageBytes, pool.MaxImageBytes; p > 0 && l > p {
		loose("max_image_bytes = %d exceeds the pool's %d", l, p)
	}
	if pa := pool.Validators.Allow; len(pa) > 0 && !slices.Contains(pa, AnyValidator) {
		for _, a := range local.Validators.Allow {
			if a == AnyValidator || !containsFold(pa, a) {
				loose("validators.allow %s is not on the pool's allow list", a)
			}
		}
	}
	for _, a := range local.Validators.Allow {
		if containsFold(pool.Validators.Deny, a) {
			loose("validators.allow %s is denied by the pool", a)
		}
	}
	for _, addr := range slices.Sorted(maps.Keys(local.Tokens)) {
		tok := local.Tokens[addr]
		pt, ok := pool.token(addr)
		if !ok {
			loose("tokens.%s is not accepted by the pool", addr)
			continue
		}
		if l, p := tok.MaxBond.Int, pt.MaxBond.Int; l != nil && (p == nil || l.Cmp(p) > 0) {
			loose("tokens.%s.max_bond = %s exceeds the pool's", addr, l)
		}
		for _, model := range slices.Sorted(maps.Keys(tok.PriceFloors)) {
			w := tok.PriceFloors[model]
			if pf, _ := pt.floor(model); w.Int != nil && pf != nil && w.Cmp(pf) < 0 {
				loose("tokens.%s.price_floors.%q = %s is below the pool's floor %s", addr, model, w, pf)
			}
		}
	}
}

// Measured re-checks a job with what the node measured before accepting it (prepare
// time, image size); a failure is counted and listed like a refused offer.
func (h *Holder) Measured(r Request) Decision {
	d := h.Set().Measured(r)
	h.record("preflight", r, d)
	return d
}

// Declined counts a job the node declined on its own checks before accepting it (terms
// that disagree with the manifest, an image that cannot run, an input that cannot be
// fetched), under kind, and lists it with the recent rejections.
func (h *Holder) Declined(kind Kind, r Request, detail string) {
	h.record("preflight", r, Decision{Checks: []Check{{Layer: "node", Rule: string(kind), Kind: kind, Detail: detail}}})
}
