package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Report publishes the node's signed benchmark report and returns its CID and the sha256
// of its bytes; an empty CID when the node has no report yet.
type Report func(ctx context.Context) (cid string, sum common.Hash, err error)

// Registry is where a provider registers: the JobMarket (Market) or the JobMarketV2
// (market.V2).
type Registry interface {
	Account() common.Address
	Provider(ctx context.Context, account common.Address) (registered bool, reportHash common.Hash, err error)
	RegisterProvider(ctx context.Context, peerID, reportCID string, reportHash common.Hash) (*types.Receipt, error)
}

// Registrar registers the node as a provider on chain (acceptJob refuses unregistered
// accounts) with its signed benchmark report, and again when the report changes.
type Registrar struct {
	m      Registry
	peerID string
	report Report
	log    *slog.Logger

	// published is the report CID registered last.
	published atomic.Value
}

// NewRegistrar returns the registrar of the node's account in m under its libp2p peerID
// ("" when the p2p network is off: registering then fails saying so), with the reports
// report publishes (nil: the node has no benchmark).
func NewRegistrar(m Registry, peerID string, report Report, log *slog.Logger) *Registrar {
	return &Registrar{m: m, peerID: peerID, report: report, log: log.With("component", "chain")}
}

// Register makes the node a provider on chain with its current report, unless it is
// registered with that report already; a watch-only node cannot and says so.
func (r *Registrar) Register(ctx context.Context) error {
	self := r.m.Account()
	if self == (common.Address{}) {
		return errors.New("watch-only: unlock the market key to take jobs")
	}
	ok, current, err := r.m.Provider(ctx, self)
	if err != nil {
		return err
	}
	var reportCID string
	var reportHash common.Hash
	if r.report != nil {
		cid, hash, err := r.report(ctx)
		switch {
		case err != nil && ok:
			return fmt.Errorf("publish the benchmark report: %w", err) // keep the registered one
		case err != nil:
			r.log.Warn("cannot publish the benchmark report; registering without it", "err", err)
		default:
			reportCID, reportHash = cid, hash
		}
	}
	if ok && current == reportHash {
		r.published.Store(reportCID)
		return nil
	}
	if r.peerID == "" {
		return errors.New("no peer ID to register: the p2p network is off")
	}
	rc, err := r.m.RegisterProvider(ctx, r.peerID, reportCID, reportHash)
	if err != nil {
		return fmt.Errorf("register provider: %w", err)
	}
	r.published.Store(reportCID)
	r.log.Info("registered as provider", "account", self.Hex(), "peer_id", r.peerID, "report_cid", reportCID, "tx", rc.TxHash.Hex())
	return nil
}

// Published is the CID of the benchmark report the node registered, if any.
func (r *Registrar) Published() string {
	s, _ := r.published.Load().(string)
	return s
}

// Run keeps the registration current until ctx ends: it registers once measured is
// closed (nil: at once), so that a new rig registers with its first report, then every
// ten minutes (every minute after a failure: accepting needs the registration) and at
// once after each value on reports.
func (r *Registrar) Run(ctx context.Context, measured, reports <-chan struct{}) {
	if measured != nil {
		select {
		case <-ctx.Done():
			return
		case <-measured:
		}
	}
	for ctx.Err() == nil {
		wait := 10 * time.Minute
		if err := r.Register(ctx); err != nil {
			r.log.Warn("cannot register as provider; retrying", "err", err)
			wait = time.Minute
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		case <-reports:
		}
	}
}
