package node

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/provider"
	"github.com/gpunode/gpunode/node/sealkey"
	"github.com/gpunode/gpunode/node/validator"
)

// workV2 is the node's side of JobMarketV2 beside the JobMarket's: the provider's chain
// adapter, key store, key server and registration, and the validator's key source.
type workV2 struct {
	m         *market.V2
	chain     *provider.ChainV2
	keys      *sealkey.KeyStore
	server    *sealkey.Server
	keySource validator.KeySource
	registrar *provider.Registrar
}

// openWorkV2 builds the node's JobMarketV2 side; nil without an error when the chain has
// no JobMarketV2.
func openWorkV2(cfg Config, d workDeps, log *slog.Logger) (*workV2, error) {
	v2, err := d.Market.V2()
	if errors.Is(err, market.ErrNoV2) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	self := d.Market.Account()
	if self == (common.Address{}) {
		return nil, errors.New("watch-only: unlock the market key to take or judge JobMarketV2 jobs")
	}
	ks, err := sealkey.OpenKeyStore(cfg.Layout().SealKeys(), v2.ChainID(), v2.Contract(), self)
	if err != nil {
		return nil, err
	}
	w := &workV2{m: v2, keys: ks, chain: provider.NewChainV2(v2, ks, d.Logs, log),
		registrar: provider.NewRegistrar(v2, d.PeerID, d.Report, log.With("market", "v2"))}
	if d.Host != nil {
		if w.server, err = sealkey.NewServer(d.Host, sealkey.Default(), ks, provider.Draw{M: v2}, log, nil); err != nil {
			return nil, err
		}
		if key := d.Market.Key(); key != nil {
			w.keySource = sealkey.Client{Host: d.Host, Account: key}
		}
	}
	return w, nil
}

// handleV2 is the market's handler of JobMarketV2 events.
func (w *work) handleV2(ctx context.Context, ev any) error {
	if w.v2 == nil {
		return nil
	}
	switch v := ev.(type) {
	case *bindings.JobMarketV2JobPosted:
		if v.Sponsor == w.self {
			return nil // our own job, as a researcher
		}
		if w.coord != nil {
			return w.coord.Posted(ctx, provider.PostingV2(v)) // declined: pools take no sealed jobs yet
		}
		return w.machine.Discover(ctx, provider.PostingV2(v))
	case *bindings.JobMarketV2JobAccepted:
		if !provider.Names(v.Validators, w.self) {
			return nil
		}
		// Drawn: the duty starts now, with the job's terms from its posting.
		posted, err := w.v2.m.Posted(ctx, v.JobId)
		if err != nil {
			return err
		}
		return w.duties.Named(provider.PostingV2(posted), posted.Params.Threshold, posted.Params.ValidatorFee)
	case *bindings.JobMarketV2ResultSubmitted:
		return w.submittedV2(ctx, v)
	}
	return nil
}

// submittedV2 hands a sealed result to the duty of a job the node was drawn for.
func (w *work) submittedV2(ctx context.Context, v *bindings.JobMarketV2ResultSubmitted) error {
	posted, err := w.v2.m.Posted(ctx, v.JobId)
	if err != nil {
		return err
	}
	peerID, err := w.v2.m.ProviderPeer(ctx, v.Provider)
	if err != nil {
		return err
	}
	// The validator asks for the key until a third of the commit window is left, then
	// commits a failing score: a provider that withholds the key fails its job.
	commitBy := time.Unix(v.CommitBy.Int64(), 0)
	window := time.Duration(posted.Params.CommitWindow.Int64()) * time.Second
	s := validator.Sealed{
		ChainID: w.v2.m.ChainID().String(), Contract: w.v2.m.Contract().Hex(), Provider: v.Provider.Hex(),
		ProviderPeer: peerID, KeyHash: common.Hash(v.KeyHash).Hex(), KeyBy: commitBy.Add(-window / 3),
		LowerIsBetter: posted.Params.LowerIsBetter,
	}
	return w.duties.SubmittedSealed(ctx, provider.V2Key(v.JobId), v.CheckpointCID, v.ResultHash, s)
}
