package market

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
)

// Position is how far the watcher has handled the chain: every log of blocks before
// Block, and the logs of Block with an index below NextIndex. Hash is the hash of block
// Block-1 when it was handled, to notice a reorg deeper than the confirmation depth.
type Position struct {
	Block     uint64      `json:"block"`
	NextIndex uint        `json:"next_index"`
	Hash      common.Hash `json:"hash"`
}

// CursorStore keeps the watcher's Position across restarts. The daemon's store
// implements it in the same transaction as the job transition an event causes; FileCursor
// is a standalone one.
type CursorStore interface {
	// Load returns the saved position, or ok=false when nothing was saved yet.
	Load() (p Position, ok bool, err error)
	// Save records p durably before returning.
	Save(p Position) error
}

// FileCursor is a CursorStore in a JSON file, replaced atomically on every Save.
type FileCursor string

// Load implements CursorStore.
func (f FileCursor) Load() (Position, bool, error) {
	b, err := readLimited(string(f), 4096)
	if errors.Is(err, os.ErrNotExist) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, fmt.Errorf("cursor %s: %w", f, err)
	}
	var p Position
	if err := json.Unmarshal(b, &p); err != nil {
		return Position{}, false, fmt.Errorf("cursor %s: %w", f, err)
	}
	return p, true, nil
}

// Save implements CursorStore.
func (f FileCursor) Save(p Position) error {
	b, _ := json.Marshal(p)
	tmp := string(f) + ".tmp"
	if err := os.MkdirAll(filepath.Dir(string(f)), 0o755); err != nil {
		return fmt.Errorf("cursor %s: %w", f, err)
	}
	fh, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("cursor %s: %w", f, err)
	}
	if _, err := fh.Write(b); err != nil {
		fh.Close()
		return fmt.Errorf("cursor %s: %w", f, err)
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return fmt.Errorf("cursor %s: %w", f, err)
	}
	fh.Close()
	if err := os.Rename(tmp, string(f)); err != nil {
		return fmt.Errorf("cursor %s: %w", f, err)
	}
	return nil
}

// Event is one JobMarket log, confirmed.
type Event struct {
	// Name is the Solidity event name ("JobPosted", ...), empty for a log the ABI does not know.
	Name string
	// V2 marks a log of the JobMarketV2 (WatcherConfig.ContractV2): decode it with
	// DecodeEvent, which picks that contract's ABI.
	V2  bool
	Log types.Log
}

// ID identifies the event on the chain: block hash and log index.
func (e Event) ID() string { return fmt.Sprintf("%s:%d", e.Log.BlockHash.Hex(), e.Log.Index) }

// Handler is called once per confirmed event, in chain order. An error stops the round;
// the same event is offered again on the next one.
type Handler func(ctx context.Context, e Event) error

// LogSource is what the watcher needs of a chain client.
type LogSource interface {
	BlockNumber(ctx context.Context) (uint64, error)
	HeaderByNumber(ctx context.Context, n *big.Int) (*types.Header, error)
	FilterLogs(ctx context.Context, q ethereum.FilterQuery) ([]types.Log, error)
}

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Contract is the JobMarket address.
	Contract common.Address
	// ContractV2 is the JobMarketV2 address, watched too; zero when none.
	ContractV2 common.Address
	// StartBlock is where to begin when no position was saved (the deployment block).
	StartBlock uint64
	// Confirmations is how many blocks must follow a log's block before it is handled;
	// reorgs shallower than this never reach the handler.
	Confirmations uint64
	// PollInterval is the time between rounds.
	PollInterval time.Duration
	// MaxRange bounds the blocks asked for in one eth_getLogs.
	MaxRange uint64
	// MaxBackoff caps the wait after RPC errors.
	MaxBackoff time.Duration
}

// Watcher turns confirmed JobMarket logs into handler calls, exactly once across
// restarts: the position is saved after every handled event.
type Watcher struct {
	cfg     WatcherConfig
	src     LogSource
	cursor  CursorStore
	handle  Handler
	log     *slog.Logger
	metrics *Metrics

	mu     sync.Mutex
	pos    Position
	status WatcherStatus
}

// WatcherStatus is what the watcher reports to the node's status.
type WatcherStatus struct {
	Head        uint64    `json:"head"`
	Handled     uint64    `json:"handled_through_block"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Connected   bool      `json:"connected"`
}

// NewWatcher returns a watcher; m may be nil.
func NewWatcher(cfg WatcherConfig, src LogSource, cursor CursorStore, h Handler, log *slog.Logger, m *Metrics) *Watcher {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxRange == 0 {
		cfg.MaxRange = 1000
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	return &Watcher{cfg: cfg, src: src, cursor: cursor, handle: h, log: log.With("component", "market.watcher"), metrics: m}
}

var (
	marketABI   = bindings.NewJobMarket().GetABI()
	marketV2ABI = bindings.NewJobMarketV2().GetABI()
)

func (w *Watcher) addresses() []common.Address {
	if w.cfg.ContractV2 == (common.Address{}) {
		return []common.Address{w.cfg.Contract}
	}
	return []common.Address{w.cfg.Contract, w.cfg.ContractV2}
}

// Run watches until ctx ends. RPC errors are logged, counted and retried with backoff;
// they never end Run.
func (w *Watcher) Run(ctx context.Context) error {
	p, ok, err := w.cursor.Load()
	if err != nil {
		return err
	}
	if !ok {
		p = Position{Block: w.cfg.StartBlock}
	}
	w.setPos(p)
	backoff := w.cfg.PollInterval
	for {
		err := w.Round(ctx)
		wait := w.cfg.PollInterval
		if err != nil && ctx.Err() == nil {
			w.fail(err)
			wait = backoff
			backoff = min(2*backoff, w.cfg.MaxBackoff)
		} else {
			backoff = w.cfg.PollInterval
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (w *Watcher) fail(err error) {
	w.log.Warn("chain round failed; retrying", "err", err)
	w.mu.Lock()
	w.status.LastError, w.status.LastErrorAt, w.status.Connected = err.Error(), time.Now(), false
	w.mu.Unlock()
	if w.metrics != nil {
		w.metrics.rpcErrors.Inc()
		w.metrics.up.Set(0)
	}
}

func (w *Watcher) setPos(p Position) {
	w.mu.Lock()
	w.pos = p
	if p.Block > 0 {
		w.status.Handled = p.Block - 1
	}
	w.mu.Unlock()
}

// Status reports the watcher's progress and last error.
func (w *Watcher) Status() WatcherStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Round handles every event confirmed since the last round. Exported for tests and for
// callers that drive the watcher themselves.
func (w *Watcher) Round(ctx context.Context) error {
	head, err := w.src.BlockNumber(ctx)
	if err != nil {
		return fmt.Errorf("head: %w", err)
	}
	w.mu.Lock()
	w.status.Head, w.status.Connected = head, true
	pos := w.pos
	w.mu.Unlock()
	if w.metrics != nil {
		w.metrics.up.Set(1)
		w.metrics.head.Set(float64(head))
	}
	if head < w.cfg.Confirmations {
		return nil
	}
	safe := head - w.cfg.Confirmations
	if pos.Block > 0 && pos.Hash != (common.Hash{}) && pos.Block-1 <= safe {
		h, err := w.src.HeaderByNumber(ctx, new(big.Int).SetUint64(pos.Block-1))
		if err != nil {
			return fmt.Errorf("header %d: %w", pos.Block-1, err)
		}
		if h.Hash() != pos.Hash {
			// A reorg deeper than the confirmation depth replaced a block already handled:
			// nothing can be un-handled, so say so loudly and go on from the new chain.
			w.log.Error("reorg deeper than the confirmation depth", "block", pos.Block-1, "handled_hash", pos.Hash, "canonical_hash", h.Hash(), "confirmations", w.cfg.Confirmations)
			if w.metrics != nil {
				w.metrics.deepReorgs.Inc()
			}
		}
	}
	for pos.Block <= safe {
		to := min(safe, pos.Block+w.cfg.MaxRange-1)
		logs, err := w.src.FilterLogs(ctx, ethereum.FilterQuery{
			FromBlock: new(big.Int).SetUint64(pos.Block),
			ToBlock:   new(big.Int).SetUint64(to),
			Addresses: w.addresses(),
		})
		if err != nil {
			return fmt.Errorf("logs %d-%d: %w", pos.Block, to, err)
		}
		for _, l := range logs {
			if l.Removed || l.BlockNumber < pos.Block || (l.BlockNumber == pos.Block && l.Index < pos.NextIndex) {
				continue
			}
			ev := Event{Log: l}
			a := marketABI
			if w.cfg.ContractV2 != (common.Address{}) && l.Address == w.cfg.ContractV2 {
				ev.V2, a = true, marketV2ABI
			}
			if len(l.Topics) > 0 {
				if e, err := a.EventByID(l.Topics[0]); err == nil {
					ev.Name = e.Name
				}
			}
			if err := w.handle(ctx, ev); err != nil {
				return fmt.Errorf("handle %s %s: %w", ev.Name, ev.ID(), err)
			}
			next := Position{Block: l.BlockNumber, NextIndex: l.Index + 1, Hash: pos.Hash}
			if l.BlockNumber != pos.Block {
				next.Hash = common.Hash{} // the previous block's hash is not at hand; checked at the range end
			}
			if err := w.cursor.Save(next); err != nil {
				return err
			}
			pos = next
			w.setPos(pos)
			if w.metrics != nil {
				w.metrics.events.WithLabelValues(ev.Name).Inc()
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		h, err := w.src.HeaderByNumber(ctx, new(big.Int).SetUint64(to))
		if err != nil {
			return fmt.Errorf("header %d: %w", to, err)
		}
		pos = Position{Block: to + 1, Hash: h.Hash()}
		if err := w.cursor.Save(pos); err != nil {
			return err
		}
		w.setPos(pos)
	}
	return nil
}

func filterAll(contract common.Address, from uint64) ethereum.FilterQuery {
	return ethereum.FilterQuery{FromBlock: new(big.Int).SetUint64(from), Addresses: []common.Address{contract}}
}
