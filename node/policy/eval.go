package policy

import (
	"fmt"
	"math/big"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gpunode/gpunode/job"
)

// Request is a job offered to the node, with the node's state at the time.
type Request struct {
	// Manifest is the job.
	Manifest *job.Manifest `json:"manifest"`
	// Sponsor is the Ethereum address that posted the job.
	Sponsor string `json:"sponsor"`
	// PriceWei is the offered price in wei per GPU-hour.
	PriceWei *big.Int `json:"price_wei"`
	// Node is the node's state when the job is evaluated.
	Node NodeState `json:"node"`
	// Market holds the contract's terms of the job, when it comes from the chain.
	Market Terms `json:"market"`
	// Pool marks a pool coordinator judging a job for its members: the rules about a
	// rig (datasets, thermal limits) are left to the member that runs it, whose own
	// policy checks them again when the job is dispatched to it.
	Pool bool `json:"pool,omitempty"`
}

// NodeState is what the policy needs to know about the node.
type NodeState struct {
	// GPUModel is the model name of the node's GPUs, as NVML reports it.
	GPUModel string `json:"gpu_model"`
	// GPUs and GPUsFree count the node's GPUs and those not running a job.
	GPUs     int `json:"gpus"`
	GPUsFree int `json:"gpus_free"`
	// MaxGPUTempC and MaxGPUPowerW are the hottest GPU and the largest draw right now.
	MaxGPUTempC  float64 `json:"max_gpu_temp_c"`
	MaxGPUPowerW float64 `json:"max_gpu_power_w"`
	// VerifiedTFLOPS is the best throughput a capacity challenge verified of this rig
	// (a passing attestation it holds), 0 if none.
	VerifiedTFLOPS float64 `json:"verified_tflops"`
	// Now is the time of the decision.
	Now time.Time `json:"now"`
}

// Kind classifies a rule; rejections are counted by kind.
type Kind string

// Rule kinds.
const (
	KindAdmission Kind = "admission"
	KindPool      Kind = "pool"
	KindManifest  Kind = "manifest"
	KindImage     Kind = "image"
	KindSponsor   Kind = "sponsor"
	KindPrice     Kind = "price"
	KindDuration  Kind = "duration"
	KindGPUs      Kind = "gpus"
	KindOutput    Kind = "output"
	KindDataset   Kind = "dataset"
	KindNetwork   Kind = "network"
	KindWindow    Kind = "window"
	KindThermal   Kind = "thermal"
	KindRule      Kind = "rule"

	// The kinds of an open market's checks (see market.go), some made by the job machine
	// before it accepts a job.
	KindBond       Kind = "bond"
	KindValidators Kind = "validators"
	KindToken      Kind = "token"
	KindRunWindow  Kind = "run_window"
	KindTerms      Kind = "terms"
	KindImageSize  Kind = "image_size"
	KindContainer  Kind = "container"
	KindInput      Kind = "input"
	KindResources  Kind = "resources"
)

// Kinds lists every kind, for metrics.
var Kinds = []Kind{KindAdmission, KindPool, KindManifest, KindImage, KindSponsor, KindPrice, KindDuration,
	KindGPUs, KindOutput, KindDataset, KindNetwork, KindWindow, KindThermal, KindRule,
	KindBond, KindValidators, KindToken, KindRunWindow, KindTerms, KindImageSize, KindContainer, KindInput, KindResources}

// Check is one rule applied to one request.
type Check struct {
	// Layer is where the rule comes from: "pool", "local", "default" or "node".
	Layer string `json:"layer"`
	// Rule is the policy key, e.g. "images.allow" or "rules.small-jobs".
	Rule string `json:"rule"`
	// Kind is the reason class.
	Kind Kind `json:"kind"`
	// Pass reports whether the request satisfied the rule.
	Pass bool `json:"pass"`
	// Detail says why, in words.
	Detail string `json:"detail"`
}

func (c Check) String() string {
	verdict := "pass"
	if !c.Pass {
		verdict = "FAIL"
	}
	return fmt.Sprintf("%-4s %s %s: %s", verdict, c.Layer, c.Rule, c.Detail)
}

// Decision is the outcome of evaluating a request: allowed only if every check passed.
type Decision struct {
	Allow  bool    `json:"allow"`
	Checks []Check `json:"checks"`
}

// Failed returns the checks that did not pass.
func (d Decision) Failed() []Check {
	var out []Check
	for _, c := range d.Checks {
		if !c.Pass {
			out = append(out, c)
		}
	}
	return out
}

// Reasons returns the failing checks as text.
func (d Decision) Reasons() []string {
	var out []string
	for _, c := range d.Failed() {
		out = append(out, c.Layer+" "+c.Rule+": "+c.Detail)
	}
	return out
}

// Stage is the point in a job's life where the policy is enforced.
type Stage int

const (
	// Offer is when a job is offered or about to be accepted: every rule applies.
	Offer Stage = iota
	// Container is when the job's container is created: the rules that shape the
	// container (image, datasets, egress, limits) are checked again against the policy in
	// force, so a job accepted under an older policy cannot run with what the new one forbids.
	// Time windows, temperature, price and sponsor were settled at acceptance.
	Container
)

// Set is the policy in force: the pool's layer (if the node is a pool member) and the
// operator's local layer. A request is allowed only if every layer allows it.
type Set struct {
	// Pool is the pool's verified policy; nil outside a pool.
	Pool *Policy
	// PoolSeq is the sequence number of the pool policy.
	PoolSeq uint64
	// Local is the operator's policy; nil if none.
	Local *Policy

	localRaw   []byte  // the local file as read, to tell an edit from a reload
	poolRaw    []byte  // the pool's signed envelope, to relay to other members
	overridden []error // local rules looser than the pool's (see CheckTightens)
}

type layer struct {
	name string
	p    *Policy
}

func (s *Set) layers() []layer {
	var ls []layer
	if s != nil && s.Pool != nil {
		ls = append(ls, layer{"pool", s.Pool})
	}
	if s != nil && s.Local != nil {
		ls = append(ls, layer{"local", s.Local})
	}
	if len(ls) == 0 {
		ls = append(ls, layer{"default", &Policy{Version: Version}})
	}
	return ls
}

// Evaluate decides whether the node takes the request at stage st, and why.
func (s *Set) Evaluate(r Request, st Stage) Decision {
	var checks []Check
	if r.Manifest == nil {
		checks = append(checks, Check{Layer: "node", Rule: "manifest", Kind: KindManifest, Detail: "no job manifest"})
		return Decision{Checks: checks}
	}
	if errs := r.Manifest.Validate(); len(errs) > 0 {
		checks = append(checks, Check{Layer: "node", Rule: "manifest", Kind: KindManifest, Detail: fmt.Sprintf("invalid manifest: %v", errs[0])})
	}
	ls := s.layers()
	for _, l := range ls {
		checks = append(checks, l.p.evaluate(l.name, r, st)...)
	}
	if !r.Pool {
		checks = append(checks, datasetChecks(ls, r)...)
	}
	if min := r.Manifest.Resources.MinVerifiedScore; min > 0 {
		checks = append(checks, Check{Layer: "node", Rule: "resources.min_verified_score", Kind: KindGPUs, Pass: r.Node.VerifiedTFLOPS >= min,
			Detail: fmt.Sprintf("job needs %g TFLOPS verified by a capacity challenge; this rig holds %g (a peer verifies it with `gpunode bench challenge`)", min, r.Node.VerifiedTFLOPS)})
	}
	if st == Offer {
		checks = append(checks, marketChecks(ls, r)...)
	}
	d := Decision{Allow: true, Checks: checks}
	for _, c := range checks {
		if !c.Pass {
			d.Allow = false
		}
	}
	return d
}

func (p *Policy) evaluate(name string, r Request, st Stage) []Check {
	var out []Check
	add := func(rule string, k Kind, pass bool, format string, a ...any) {
		out = append(out, Check{Layer: name, Rule: rule, Kind: k, Pass: pass, Detail: fmt.Sprintf(format, a...)})
	}
	m := r.Manifest
	repo, digest := m.ImageRepo(), m.ImageDigest()

	if pat, ok := matchAny(p.Images.Deny, repo); ok {
		add("images.deny", KindImage, false, "image repository %q matches denied pattern %q", repo, pat)
	} else if len(p.Images.Deny) > 0 {
		add("images.deny", KindImage, true, "image repository %q matches no denied pattern", repo)
	}
	if len(p.Images.Allow) > 0 {
		if pat, ok := matchAny(p.Images.Allow, repo); ok {
			add("images.allow", KindImage, true, "image repository %q matches allowed pattern %q", repo, pat)
		} else {
			add("images.allow", KindImage, false, "image repository %q matches no allowed pattern %v", repo, p.Images.Allow)
		}
	}
	if len(p.Images.Pinned) > 0 {
		if slices.Contains(p.Images.Pinned, digest) {
			add("images.pinned", KindImage, true, "image digest %s is pinned", short(digest))
		} else {
			add("images.pinned", KindImage, false, "image digest %s is not among the %d pinned digests", short(digest), len(p.Images.Pinned))
		}
	}

	limits := func() {
		if max := p.Limits.MaxDuration.Duration; max > 0 {
			got := m.MaxDuration.Duration
			add("limits.max_duration", KindDuration, got <= max, "job asks for %v, limit %v", got, max)
		}
		if max := p.Limits.MaxGPUs; max > 0 {
			add("limits.max_gpus", KindGPUs, m.Resources.GPUs <= max, "job asks for %d GPUs, limit %d", m.Resources.GPUs, max)
		}
		if max := p.Limits.MaxOutputBytes; max > 0 {
			add("limits.max_output_bytes", KindOutput, m.Output.MaxBytes <= max, "job declares %d output bytes, limit %d", m.Output.MaxBytes, max)
		}
	}
	limits()

	if m.Network.Mode == job.NetworkEgress {
		if p.Network.Egress != EgressAllowlist {
			add("network.egress", KindNetwork, false, "job asks for egress to %v; this policy grants no egress", m.Network.Domains)
		} else {
			var denied []string
			for _, d := range m.Network.Domains {
				if !domainAllowed(p.Network.AllowDomains, d) {
					denied = append(denied, d)
				}
			}
			if len(denied) > 0 {
				add("network.allow_domains", KindNetwork, false, "job asks for egress to %v, not in the allowlist %v", denied, p.Network.AllowDomains)
			} else {
				add("network.allow_domains", KindNetwork, true, "every domain the job asks for (%v) is allowed", m.Network.Domains)
			}
		}
	}

	if st == Container {
		return out
	}

	sponsor := strings.ToLower(r.Sponsor)
	if len(p.Sponsors.Deny) > 0 {
		denied := containsFold(p.Sponsors.Deny, sponsor)
		add("sponsors.deny", KindSponsor, !denied, "sponsor %s %s", sponsor, map[bool]string{true: "is denied", false: "is not denied"}[denied])
	}
	if len(p.Sponsors.Allow) > 0 {
		ok := containsFold(p.Sponsors.Allow, sponsor)
		add("sponsors.allow", KindSponsor, ok, "sponsor %s %s", sponsor, map[bool]string{true: "is allowed", false: "is not on the allow list"}[ok])
	}

	// Floors in wei hold for ETH; a job paid in a token meets that token's floors (market.go).
	if floor, model := p.floor(r.Node.GPUModel); floor != nil && r.Market.PaysETH() {
		price := r.PriceWei
		if price == nil {
			price = new(big.Int)
		}
		add("price_floors", KindPrice, price.Cmp(floor) >= 0, "offered %s wei per GPU-hour, floor for %q is %s", price, model, floor)
	}

	for _, c := range p.nodeChecks(name, r.Node) {
		if r.Pool && c.Kind == KindThermal {
			continue // the coordinator's GPUs do not run the job
		}
		out = append(out, c)
	}

	if len(p.programs) > 0 {
		vars, err := celVars(r)
		for _, prg := range p.programs {
			rule := "rules." + prg.rule.Name
			if err != nil {
				add(rule, KindRule, false, "rule inputs: %v", err)
				continue
			}
			ok, err := prg.eval(vars)
			switch {
			case err != nil:
				add(rule, KindRule, false, "%s: evaluation failed: %v", prg.rule.Expr, err)
			case ok:
				add(rule, KindRule, true, "%s", prg.rule.Expr)
			case prg.rule.Message != "":
				add(rule, KindRule, false, "%s", prg.rule.Message)
			default:
				add(rule, KindRule, false, "%s is false", prg.rule.Expr)
			}
		}
	}
	return out
}

// nodeChecks are the rules about the node rather than the job: time windows and thermal
// limits. They also tell whether the node is paused (see Holder.Paused).
func (p *Policy) nodeChecks(name string, n NodeState) []Check {
	var out []Check
	add := func(rule string, k Kind, pass bool, format string, a ...any) {
		out = append(out, Check{Layer: name, Rule: rule, Kind: k, Pass: pass, Detail: fmt.Sprintf(format, a...)})
	}
	r := Request{Node: n}
	if len(p.windows) > 0 {
		var in string
		for _, w := range p.windows {
			if w.contains(r.Node.Now) {
				in = w.text
				break
			}
		}
		if in != "" {
			add("windows", KindWindow, true, "%s is inside window %s", r.Node.Now.UTC().Format(time.RFC3339), in)
		} else {
			add("windows", KindWindow, false, "%s is outside every window", r.Node.Now.UTC().Format(time.RFC3339))
		}
	}

	if max := p.Thermal.MaxGPUTempC; max > 0 {
		add("thermal.max_gpu_temp_c", KindThermal, r.Node.MaxGPUTempC <= max, "hottest GPU at %.0f°C, limit %.0f°C", r.Node.MaxGPUTempC, max)
	}
	if max := p.Thermal.MaxGPUPowerW; max > 0 {
		add("thermal.max_gpu_power_w", KindThermal, r.Node.MaxGPUPowerW <= max, "largest GPU draw %.0f W, limit %.0f W", r.Node.MaxGPUPowerW, max)
	}
	return out
}

// datasetChecks: a local dataset may be mounted only if some layer has a datasets table and
// every layer that has one grants the tag to the sponsor. Without any table, none may be used.
func datasetChecks(ls []layer, r Request) []Check {
	var out []Check
	sponsor := strings.ToLower(r.Sponsor)
	for _, tag := range r.Manifest.Datasets() {
		defined := false
		for _, l := range ls {
			if !l.p.hasDatasets {
				continue
			}
			defined = true
			who, ok := l.p.Datasets[tag]
			switch {
			case !ok:
				out = append(out, Check{Layer: l.name, Rule: "datasets", Kind: KindDataset, Detail: fmt.Sprintf("dataset %q is not shared", tag)})
			case slices.Contains(who, "*") || containsFold(who, sponsor):
				out = append(out, Check{Layer: l.name, Rule: "datasets", Kind: KindDataset, Pass: true, Detail: fmt.Sprintf("sponsor %s may use dataset %q", sponsor, tag)})
			default:
				out = append(out, Check{Layer: l.name, Rule: "datasets", Kind: KindDataset, Detail: fmt.Sprintf("sponsor %s may not use dataset %q", sponsor, tag)})
			}
		}
		if !defined {
			out = append(out, Check{Layer: ls[len(ls)-1].name, Rule: "datasets", Kind: KindDataset, Detail: fmt.Sprintf("dataset %q: no policy shares any local dataset", tag)})
		}
	}
	return out
}

// floor returns the price floor that applies to model, and the entry it came from.
func (p *Policy) floor(model string) (*big.Int, string) {
	if w, ok := p.PriceFloors[model]; ok && w.Int != nil {
		return w.Int, model
	}
	if w, ok := p.PriceFloors["*"]; ok && w.Int != nil {
		return w.Int, "*"
	}
	return nil, ""
}

func matchAny(patterns []string, s string) (string, bool) {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return p, true
		}
	}
	return "", false
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// domainAllowed: "example.org" matches itself, "*.example.org" matches its subdomains.
func domainAllowed(allow []string, d string) bool {
	for _, a := range allow {
		if suffix, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(d, "."+suffix) {
				return true
			}
		} else if a == d {
			return true
		}
	}
	return false
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19] + "…"
	}
	return digest
}

// ContainerLimits is what the policy in force imposes on a job's container.
type ContainerLimits struct {
	// Egress lists the domains the container may reach; empty means no network.
	Egress []string `json:"egress,omitempty"`
	// MaxDuration is the running time after which the container is stopped.
	MaxDuration time.Duration `json:"max_duration"`
	// MaxOutputBytes caps the output directory.
	MaxOutputBytes int64 `json:"max_output_bytes"`
	// Datasets are the local datasets the container may mount read-only.
	Datasets []string `json:"datasets,omitempty"`
}

// Container re-checks the request at container creation and returns the limits to apply:
// the job's own asks, capped by the smallest limit of every layer.
func (s *Set) Container(r Request) (ContainerLimits, Decision) {
	d := s.Evaluate(r, Container)
	if !d.Allow {
		return ContainerLimits{}, d
	}
	m := r.Manifest
	cl := ContainerLimits{MaxDuration: m.MaxDuration.Duration, MaxOutputBytes: m.Output.MaxBytes, Datasets: m.Datasets()}
	for _, l := range s.layers() {
		if v := l.p.Limits.MaxDuration.Duration; v > 0 && v < cl.MaxDuration {
			cl.MaxDuration = v
		}
		if v := l.p.Limits.MaxOutputBytes; v > 0 && v < cl.MaxOutputBytes {
			cl.MaxOutputBytes = v
		}
	}
	if m.Network.Mode == job.NetworkEgress {
		cl.Egress = slices.Clone(m.Network.Domains)
	}
	return cl, d
}
