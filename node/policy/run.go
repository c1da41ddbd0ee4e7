package policy

import (
	"context"
	"math/big"
	"slices"
)

// Run reloads the policy on every value from reload (the daemon's main turns SIGHUP into
// one: signals belong to main) until ctx is cancelled; a nil reload never reloads. A
// failed reload keeps the policy in force (see Reload); running jobs are never touched.
func (h *Holder) Run(ctx context.Context, reload <-chan struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reload:
			h.log.Info("reloading policy")
			_ = h.Reload() // logged and counted by Reload
		}
	}
}

// Advert is what the policy contributes to the node's capacity record.
type Advert struct {
	// State is the admission state; TakingJobs is false unless it is active.
	State      string `json:"state"`
	TakingJobs bool   `json:"taking_jobs"`
	// Datasets are the local dataset tags every layer shares with at least one sponsor.
	Datasets []string `json:"datasets,omitempty"`
	// PriceFloorWei is the highest floor any layer sets for the node's GPU model; nil if none.
	PriceFloorWei *big.Int `json:"price_floor_wei,omitempty"`
	// Egress reports whether any job could be granted network egress.
	Egress bool `json:"egress"`
	// Paused says why the node takes no job right now (time window, thermal limits).
	Paused []string `json:"paused,omitempty"`
}

// Advert returns the capacity-record view of the policy for a node with GPUs of model.
func (h *Holder) Advert(model string) Advert {
	a := h.Admission()
	ad := Advert{State: a.State, Egress: true, Paused: h.Paused()}
	ad.TakingJobs = a.TakingJobs() && len(ad.Paused) == 0
	ls := h.Set().layers()
	var tags []string
	defined := false
	for _, l := range ls {
		if f, _ := l.p.floor(model); f != nil && (ad.PriceFloorWei == nil || f.Cmp(ad.PriceFloorWei) > 0) {
			ad.PriceFloorWei = f
		}
		if l.p.Network.Egress != EgressAllowlist {
			ad.Egress = false
		}
		if !l.p.hasDatasets {
			continue
		}
		var mine []string
		for tag, who := range l.p.Datasets {
			if len(who) > 0 {
				mine = append(mine, tag)
			}
		}
		if !defined {
			tags, defined = mine, true
		} else {
			tags = slices.DeleteFunc(tags, func(t string) bool { return !slices.Contains(mine, t) })
		}
	}
	slices.Sort(tags)
	ad.Datasets = tags
	return ad
}
