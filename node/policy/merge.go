package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrLoosens marks a local policy that tries to loosen its pool's.
var ErrLoosens = errors.New("local policy loosens the pool policy")

// CheckTightens returns one error per rule in local that is looser than pool's, each
// wrapping ErrLoosens. Evaluation already requires every layer to allow a job, so a looser
// local rule could not take effect; it is refused anyway so the operator learns the pool
// overrides it instead of believing it applies. Empty fields in local inherit the pool's.
func CheckTightens(pool, local *Policy) []error {
	if pool == nil || local == nil {
		return nil
	}
	var errs []error
	loose := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrLoosens, fmt.Sprintf(format, a...)))
	}

	// Allow lists: every local entry must already be allowed by the pool.
	if len(pool.Images.Allow) > 0 {
		for _, pat := range local.Images.Allow {
			if _, ok := matchAny(pool.Images.Allow, pat); !ok {
				loose("images.allow %q is not within the pool's allowed patterns %v", pat, pool.Images.Allow)
			}
		}
	}
	for _, pat := range local.Images.Allow {
		if d, ok := matchAny(pool.Images.Deny, pat); ok {
			loose("images.allow %q allows what the pool denies (%q)", pat, d)
		}
	}
	if len(pool.Images.Pinned) > 0 {
		for _, d := range local.Images.Pinned {
			if !slices.Contains(pool.Images.Pinned, d) {
				loose("images.pinned %s is not among the pool's pinned digests", short(d))
			}
		}
	}
	if len(pool.Sponsors.Allow) > 0 {
		for _, a := range local.Sponsors.Allow {
			if !containsFold(pool.Sponsors.Allow, a) {
				loose("sponsors.allow %s is not on the pool's allow list", a)
			}
		}
	}
	for _, a := range local.Sponsors.Allow {
		if containsFold(pool.Sponsors.Deny, a) {
			loose("sponsors.allow %s is denied by the pool", a)
		}
	}

	// Floors: a local floor may only be higher than the pool's floor for the same model.
	for _, model := range slices.Sorted(maps.Keys(local.PriceFloors)) {
		w := local.PriceFloors[model]
		if w.Int == nil {
			continue
		}
		if pf, from := pool.floor(model); pf != nil && w.Cmp(pf) < 0 {
			loose("price_floors.%q = %s wei is below the pool's floor %s (from %q)", model, w, pf, from)
		}
	}

	// Limits: a local limit may only be lower; zero inherits.
	if l, p := local.Limits.MaxDuration.Duration, pool.Limits.MaxDuration.Duration; p > 0 && l > p {
		loose("limits.max_duration = %v exceeds the pool's %v", l, p)
	}
	if l, p := local.Limits.MaxGPUs, pool.Limits.MaxGPUs; p > 0 && l > p {
		loose("limits.max_gpus = %d exceeds the pool's %d", l, p)
	}
	if l, p := local.Limits.MaxOutputBytes, pool.Limits.MaxOutputBytes; p > 0 && l > p {
		loose("limits.max_output_bytes = %d exceeds the pool's %d", l, p)
	}
	if l, p := local.Thermal.MaxGPUTempC, pool.Thermal.MaxGPUTempC; p > 0 && l > p {
		loose("thermal.max_gpu_temp_c = %v exceeds the pool's %v", l, p)
	}
	if l, p := local.Thermal.MaxGPUPowerW, pool.Thermal.MaxGPUPowerW; p > 0 && l > p {
		loose("thermal.max_gpu_power_w = %v exceeds the pool's %v", l, p)
	}

	// Egress: granted only if the pool grants it, and only to domains the pool allows.
	if local.Network.Egress == EgressAllowlist {
		if pool.Network.Egress != EgressAllowlist {
			loose("network.egress = %q, but the pool grants no egress", EgressAllowlist)
		} else {
			for _, d := range local.Network.AllowDomains {
				if !domainWithin(pool.Network.AllowDomains, d) {
					loose("network.allow_domains %q is not within the pool's allowlist %v", d, pool.Network.AllowDomains)
				}
			}
		}
	}

	validatorTightens(&pool.Validator, &local.Validator, loose)
	marketTightens(pool, local, loose)

	// Datasets: if the pool shares datasets, local grants must be within the pool's.
	if pool.hasDatasets {
		for _, tag := range slices.Sorted(maps.Keys(local.Datasets)) {
			who := local.Datasets[tag]
			pw, ok := pool.Datasets[tag]
			if !ok {
				loose("datasets.%s is not shared by the pool", tag)
				continue
			}
			if slices.Contains(pw, "*") {
				continue
			}
			for _, a := range who {
				if a == "*" || !containsFold(pw, a) {
					loose("datasets.%s grants %s, which the pool does not", tag, a)
				}
			}
		}
	}
	return errs
}

// domainWithin reports whether every host matched by d is matched by allow.
func domainWithin(allow []string, d string) bool {
	if suffix, ok := strings.CutPrefix(d, "*."); ok {
		for _, a := range allow {
			if as, ok := strings.CutPrefix(a, "*."); ok && (suffix == as || strings.HasSuffix(suffix, "."+as)) {
				return true
			}
		}
		return false
	}
	return domainAllowed(allow, d)
}
