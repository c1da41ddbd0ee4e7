// Package offers answers the direct offers of jobs peers send over the p2p network. Pay
// only ever comes from the contract's escrow, so an offer names a job already posted on
// chain; the node reads that job from the chain (not from the offer), hands it to the job
// machine as it would a JobPosted event, and answers with the machine's evaluation —
// taken, or declined and why — as far as it gets within the offer's time.
package offers

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/provider"
	"github.com/gpunode/gpunode/node/store"
)

// Market is what judging an offer needs of the chain side.
type Market interface {
	// Account is the node's account; the zero address when watch-only.
	Account() common.Address
	// Posted returns job id's JobPosted event; market.ErrNotPosted if there is none.
	Posted(ctx context.Context, id *big.Int) (*bindings.JobMarketJobPosted, error)
}

// Jobs is the job machine.
type Jobs interface {
	Discover(ctx context.Context, p jobs.Posting) error
	Get(id string) (jobs.Job, error)
}

// Desk decides the offers made to the node.
type Desk struct {
	m      Market
	jobs   Jobs
	posted *postedCache
	poll   time.Duration
}

// New returns the desk that hands offered jobs, read from m, to the machine j.
func New(m Market, j Jobs) *Desk {
	return &Desk{m: m, jobs: j, posted: newPostedCache(4096, 30*time.Second), poll: 100 * time.Millisecond}
}

// Decide is the node's p2p.OfferHandler.
func (d *Desk) Decide(ctx context.Context, from peer.ID, o p2p.Offer) p2p.Decision {
	decline := func(format string, a ...any) p2p.Decision { return p2p.Decision{Reason: fmt.Sprintf(format, a...)} }
	if o.JobID == "" {
		return decline("no job_id: post the job on chain first (the reward is paid from its escrow), then offer its id")
	}
	id, ok := parseJobID(o.JobID)
	if !ok {
		return decline("job_id %q: want a decimal or 0x-hex job id", o.JobID)
	}
	ev, err := d.posted.get(ctx, id, d.m.Posted)
	if errors.Is(err, market.ErrNotPosted) {
		return decline("job %s is not posted on this node's chain", id)
	}
	if err != nil {
		return decline("cannot read job %s from the chain: %v", id, err)
	}
	if ev.ManifestCID != o.ManifestCID {
		return decline("the offer's manifest %s is not the one posted with job %s (%s)", o.ManifestCID, id, ev.ManifestCID)
	}
	if provider.Names(ev.Validators, d.m.Account()) {
		return decline("this node is one of job %s's validators; it cannot take the job too", id)
	}
	if ev.Sponsor == d.m.Account() {
		return decline("job %s is this node's own", id)
	}
	p := provider.Posting(ev)
	p.Source = "offer from " + from.String()
	if err := d.jobs.Discover(ctx, p); err != nil {
		return decline("job queue: %v", err)
	}
	// The machine evaluates the job (manifest, GPUs, datasets, policy) and accepts it on
	// chain if it fits; answer with how far it got.
	t := time.NewTicker(d.poll)
	defer t.Stop()
	for {
		j, err := d.jobs.Get(p.ID)
		if err == nil && j.State != jobs.Discovered {
			return decision(j)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return decline("job %s: %v", p.ID, err)
		}
		select {
		case <-ctx.Done():
			return p2p.Decision{Accepted: true, Reason: fmt.Sprintf("job %s queued; still evaluating its manifest: watch the chain for the acceptance", p.ID)}
		case <-t.C:
		}
	}
}

// decision describes a job's state as an answer to its offer.
func decision(j jobs.Job) p2p.Decision {
	switch j.State {
	case jobs.Declined:
		return p2p.Decision{Reason: j.Reason}
	case jobs.Lost:
		return p2p.Decision{Reason: "another provider accepted job " + j.ID + " first"}
	case jobs.Failed, jobs.Rejected, jobs.Expired:
		return p2p.Decision{Reason: fmt.Sprintf("job %s already ended here: %s %s", j.ID, j.State, j.Reason)}
	case jobs.Paid:
		return p2p.Decision{Reason: "job " + j.ID + " was already done and paid here"}
	}
	return p2p.Decision{Accepted: true, Reason: fmt.Sprintf("taking job %s (%s)", j.ID, j.State)}
}

func parseJobID(s string) (*big.Int, bool) {
	base := 10
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s, base = s[2:], 16
	}
	id, ok := new(big.Int).SetString(s, base)
	return id, ok && id.Sign() > 0
}
