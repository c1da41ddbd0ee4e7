// Package earnings is the node's ledger: what the JobMarket credited it (a provider's
// rewards, a validator's fees) and what it withdrew, booked once per confirmed chain
// event in the job's currency (ETH or the job's ERC-20 token), summed for status and
// metrics; and the automatic withdrawal of the ETH credit past a configured amount.
package earnings

import (
	"context"
	"log/slog"
	"math/big"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
)

// Ledger kinds.
const (
	KindReward     = "reward"
	KindFee        = "fee"
	KindWithdrawal = "withdrawal"
)

// Market is what the ledger needs of the chain side.
type Market interface {
	// Account is the node's account; the zero address when watch-only.
	Account() common.Address
	Job(ctx context.Context, id *big.Int) (bindings.JobMarketJob, error)
	Credit(ctx context.Context, token, account common.Address) (*big.Int, error)
	Withdraw(ctx context.Context, token common.Address) (*types.Receipt, *big.Int, error)
}

// Ledger books the node's earnings in its store.
type Ledger struct {
	m     Market
	st    *store.Store
	at    *big.Int
	log   *slog.Logger
	wg    sync.WaitGroup
	doing atomic.Bool // a withdrawal is under way
}

// New returns the ledger kept in st for the node's account in m; once the ETH credit
// reaches autoWithdraw (nil: never) the node withdraws it.
func New(m Market, st *store.Store, autoWithdraw *big.Int, log *slog.Logger) *Ledger {
	return &Ledger{m: m, st: st, at: autoWithdraw, log: log.With("component", "chain")}
}

// Reward books the reward of job id, completed with this node as its provider.
func (l *Ledger) Reward(ctx context.Context, e market.Event, id *big.Int) error {
	return l.bookJob(ctx, e, KindReward, id, func(j bindings.JobMarketJob) *big.Int { return j.Reward })
}

// Fee books the validator fee of job id, attested by this node.
func (l *Ledger) Fee(ctx context.Context, e market.Event, id *big.Int) error {
	return l.bookJob(ctx, e, KindFee, id, func(j bindings.JobMarketJob) *big.Int { return j.ValidatorFee })
}

// Withdrawal books amount of token (zero: ETH) withdrawn by this node.
func (l *Ledger) Withdrawal(ctx context.Context, e market.Event, token common.Address, amount *big.Int) error {
	return l.book(ctx, e, KindWithdrawal, "", token, amount)
}

// bookJob books what job id credited the node, amount of its on-chain record (the
// reward or the validator fee), in the job's currency.
func (l *Ledger) bookJob(ctx context.Context, e market.Event, kind string, id *big.Int, amount func(bindings.JobMarketJob) *big.Int) error {
	view, err := l.m.Job(ctx, id)
	if err != nil {
		return err // the watcher offers the event again
	}
	return l.book(ctx, e, kind, id.String(), view.Token, amount(view))
}

// book records a credit or a payout of the node's account in token (zero: ETH), once per
// event, and withdraws automatically when the ETH credit passes the configured amount.
func (l *Ledger) book(ctx context.Context, e market.Event, kind, jobID string, token common.Address, amount *big.Int) error {
	entry := store.Entry{Kind: kind, Wei: amount.String(), JobID: jobID, TxHash: e.Log.TxHash.Hex()}
	if token != (common.Address{}) {
		entry.Token = token.Hex()
	}
	booked, err := l.st.Book(e.ID(), entry)
	if err != nil || !booked {
		return err
	}
	l.log.Info("booked "+kind, "job_id", jobID, "amount", amount, "token", tokenLabel(entry.Token))
	if kind != KindWithdrawal && entry.Token == "" {
		l.autoWithdraw(ctx)
	}
	return nil
}

// tokenLabel names a ledger entry's currency: "ETH", or the token contract's address.
func tokenLabel(token string) string {
	if token == "" {
		return "ETH"
	}
	return token
}

// autoWithdraw withdraws the node's whole credit in the background once it reaches the
// configured amount; one withdrawal at a time.
func (l *Ledger) autoWithdraw(ctx context.Context) {
	at := l.at
	if at == nil || !l.doing.CompareAndSwap(false, true) {
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer l.doing.Store(false)
		credit, err := l.m.Credit(ctx, common.Address{}, l.m.Account())
		if err != nil {
			l.log.Warn("auto-withdraw: read credit", "err", err)
			return
		}
		if credit.Cmp(at) < 0 {
			return
		}
		r, amount, err := l.m.Withdraw(ctx, common.Address{})
		if err != nil {
			l.log.Warn("auto-withdraw failed; the credit stays on chain", "credit_wei", credit, "err", err)
			return
		}
		l.log.Info("auto-withdrew earnings", "wei", amount, "tx", r.TxHash.Hex(), "at_least_wei", at)
	}()
}

// Wait waits for a withdrawal under way to end.
func (l *Ledger) Wait() { l.wg.Wait() }

// Entries lists the ledger, oldest first.
func (l *Ledger) Entries() ([]api.LedgerEntry, error) {
	entries, err := l.st.Ledger()
	if err != nil {
		return nil, err
	}
	out := make([]api.LedgerEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, api.LedgerEntry{Kind: e.Kind, Wei: e.Wei, JobID: e.JobID, Token: e.Token, TxHash: e.TxHash, At: e.At})
	}
	sort.Slice(out, func(i, k int) bool { return out[i].At.Before(out[k].At) })
	return out, nil
}

// sums are the ledger's totals by currency ("" for ETH, else the token's address) and
// kind.
type sums map[string]map[string]*big.Int

func (s sums) get(token, kind string) *big.Int {
	if v := s[token][kind]; v != nil {
		return v
	}
	return new(big.Int)
}

// sums adds up the ledger by currency and kind.
func (l *Ledger) sums() (sums, error) {
	entries, err := l.st.Ledger()
	if err != nil {
		return nil, err
	}
	out := sums{"": {}}
	for _, e := range entries {
		v, ok := new(big.Int).SetString(e.Wei, 10)
		if !ok || (e.Kind != KindReward && e.Kind != KindFee && e.Kind != KindWithdrawal) {
			continue
		}
		if out[e.Token] == nil {
			out[e.Token] = map[string]*big.Int{}
		}
		sum := out[e.Token][e.Kind]
		if sum == nil {
			sum = new(big.Int)
			out[e.Token][e.Kind] = sum
		}
		sum.Add(sum, v)
	}
	return out, nil
}

// Earnings sums the ledger: ETH in the top-level fields, each token apart.
func (l *Ledger) Earnings() (api.Earnings, error) {
	s, err := l.sums()
	if err != nil {
		return api.Earnings{}, err
	}
	out := api.Earnings{RewardsWei: s.get("", KindReward).String(), FeesWei: s.get("", KindFee).String(), WithdrawnWei: s.get("", KindWithdrawal).String()}
	if l.at != nil {
		out.AutoWithdrawWei = l.at.String()
	}
	tokens := make([]string, 0, len(s))
	for t := range s {
		if t != "" {
			tokens = append(tokens, t)
		}
	}
	slices.Sort(tokens)
	for _, t := range tokens {
		out.Tokens = append(out.Tokens, api.TokenEarnings{
			Token: t, Rewards: s.get(t, KindReward).String(), Fees: s.get(t, KindFee).String(), Withdrawn: s.get(t, KindWithdrawal).String(),
		})
	}
	return out, nil
}

// Status is the ledger with the credit still on chain in each currency, for status.
func (l *Ledger) Status(ctx context.Context) *api.Earnings {
	e, err := l.Earnings()
	if err != nil {
		return &api.Earnings{Error: err.Error()}
	}
	self := l.m.Account()
	if self == (common.Address{}) {
		return &e
	}
	if credit, err := l.m.Credit(ctx, common.Address{}, self); err == nil {
		e.CreditWei = credit.String()
	} else {
		e.Error = err.Error()
	}
	for i := range e.Tokens {
		if credit, err := l.m.Credit(ctx, common.HexToAddress(e.Tokens[i].Token), self); err == nil {
			e.Tokens[i].Credit = credit.String()
		} else {
			e.Error = err.Error()
		}
	}
	return &e
}

var (
	earnedDesc = prometheus.NewDesc("gpunode_earned_wei_total",
		"Credited to the node by the JobMarket, in the smallest unit of token (\"ETH\": wei; else the ERC-20 contract's address): rewards as provider, fees as validator.",
		[]string{"kind", "token"}, nil)
	withdrawnDesc = prometheus.NewDesc("gpunode_withdrawn_wei_total",
		"Withdrawn by the node from the JobMarket, in the smallest unit of token (\"ETH\": wei; else the ERC-20 contract's address).",
		[]string{"token"}, nil)
)

// Collector exports the ledger, read from the store at each scrape.
func (l *Ledger) Collector() prometheus.Collector { return collector{l} }

type collector struct{ l *Ledger }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- earnedDesc
	ch <- withdrawnDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.l.sums()
	if err != nil {
		return
	}
	f := func(v *big.Int) float64 {
		x, _ := new(big.Float).SetInt(v).Float64()
		return x
	}
	for token := range s {
		label := tokenLabel(token)
		ch <- prometheus.MustNewConstMetric(earnedDesc, prometheus.CounterValue, f(s.get(token, KindReward)), KindReward, label)
		ch <- prometheus.MustNewConstMetric(earnedDesc, prometheus.CounterValue, f(s.get(token, KindFee)), KindFee, label)
		ch <- prometheus.MustNewConstMetric(withdrawnDesc, prometheus.CounterValue, f(s.get(token, KindWithdrawal)), label)
	}
}
