package node

import (
	"context"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
)

// Ledger kinds: what the node earned (a provider's reward, a validator's fee) and what it
// withdrew, booked from confirmed chain events, each in the job's currency: ETH or the
// ERC-20 token the job was posted in.
const (
	kindReward     = "reward"
	kindFee        = "fee"
	kindWithdrawal = "withdrawal"
)

// bookJob books what job id credited the node, amount of its on-chain record (the
// reward or the validator fee), in the job's currency.
func (c *chain) bookJob(ctx context.Context, e market.Event, kind string, id *big.Int, amount func(bindings.JobMarketJob) *big.Int) error {
	view, err := c.m.Job(ctx, id)
	if err != nil {
		return err // the watcher offers the event again
	}
	return c.book(ctx, e, kind, id.String(), view.Token, amount(view))
}

// book records a credit or a payout of the node's account in token (zero: ETH), once per
// event, and withdraws automatically when the ETH credit passes the configured amount.
func (c *chain) book(ctx context.Context, e market.Event, kind, jobID string, token common.Address, amount *big.Int) error {
	entry := store.Entry{Kind: kind, Wei: amount.String(), JobID: jobID, TxHash: e.Log.TxHash.Hex()}
	if token != (common.Address{}) {
		entry.Token = token.Hex()
	}
	booked, err := c.store.Book(e.ID(), entry)
	if err != nil || !booked {
		return err
	}
	c.log.Info("booked "+kind, "job_id", jobID, "amount", amount, "token", tokenLabel(entry.Token))
	if kind != kindWithdrawal && entry.Token == "" {
		c.autoWithdraw(ctx)
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
func (c *chain) autoWithdraw(ctx context.Context) {
	at := c.m.Config().AutoWithdraw()
	if at == nil || !c.withdrawing.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.withdrawing.Store(false)
		credit, err := c.m.Credit(ctx, common.Address{}, c.m.Account())
		if err != nil {
			c.log.Warn("auto-withdraw: read credit", "err", err)
			return
		}
		if credit.Cmp(at) < 0 {
			return
		}
		r, amount, err := c.m.Withdraw(ctx, common.Address{})
		if err != nil {
			c.log.Warn("auto-withdraw failed; the credit stays on chain", "credit_wei", credit, "err", err)
			return
		}
		c.log.Info("auto-withdrew earnings", "wei", amount, "tx", r.TxHash.Hex(), "at_least_wei", at)
	}()
}

// ledgerSums are the ledger's totals by currency ("" for ETH, else the token's address)
// and kind.
type ledgerSums map[string]map[string]*big.Int

func (s ledgerSums) get(token, kind string) *big.Int {
	if v := s[token][kind]; v != nil {
		return v
	}
	return new(big.Int)
}

// sums adds up the ledger by currency and kind.
func (c *chain) sums() (ledgerSums, error) {
	entries, err := c.store.Ledger()
	if err != nil {
		return nil, err
	}
	sums := ledgerSums{"": {}}
	for _, e := range entries {
		v, ok := new(big.Int).SetString(e.Wei, 10)
		if !ok || (e.Kind != kindReward && e.Kind != kindFee && e.Kind != kindWithdrawal) {
			continue
		}
		if sums[e.Token] == nil {
			sums[e.Token] = map[string]*big.Int{}
		}
		sum := sums[e.Token][e.Kind]
		if sum == nil {
			sum = new(big.Int)
			sums[e.Token][e.Kind] = sum
		}
		sum.Add(sum, v)
	}
	return sums, nil
}

// earnings sums the ledger: ETH in the top-level fields, each token apart.
func (c *chain) earnings() (api.Earnings, error) {
	sums, err := c.sums()
	if err != nil {
		return api.Earnings{}, err
	}
	out := api.Earnings{RewardsWei: sums.get("", kindReward).String(), FeesWei: sums.get("", kindFee).String(), WithdrawnWei: sums.get("", kindWithdrawal).String()}
	if at := c.m.Config().AutoWithdraw(); at != nil {
		out.AutoWithdrawWei = at.String()
	}
	tokens := make([]string, 0, len(sums))
	for t := range sums {
		if t != "" {
			tokens = append(tokens, t)
		}
	}
	slices.Sort(tokens)
	for _, t := range tokens {
		out.Tokens = append(out.Tokens, api.TokenEarnings{
			Token: t, Rewards: sums.get(t, kindReward).String(), Fees: sums.get(t, kindFee).String(), Withdrawn: sums.get(t, kindWithdrawal).String(),
		})
	}
	return out, nil
}

// earningsStatus is the ledger with the credit still on chain in each currency, for status.
func (c *chain) earningsStatus(ctx context.Context) *api.Earnings {
	e, err := c.earnings()
	if err != nil {
		return &api.Earnings{Error: err.Error()}
	}
	self := c.m.Account()
	if self == (common.Address{}) {
		return &e
	}
	if credit, err := c.m.Credit(ctx, common.Address{}, self); err == nil {
		e.CreditWei = credit.String()
	} else {
		e.Error = err.Error()
	}
	for i := range e.Tokens {
		if credit, err := c.m.Credit(ctx, common.HexToAddress(e.Tokens[i].Token), self); err == nil {
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

// ledgerCollector exports the ledger, read from the store at each scrape.
type ledgerCollector struct{ c *chain }

func (l ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- earnedDesc
	ch <- withdrawnDesc
}

func (l ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	sums, err := l.c.sums()
	if err != nil {
		return
	}
	f := func(v *big.Int) float64 {
		x, _ := new(big.Float).SetInt(v).Float64()
		return x
	}
	for token := range sums {
		label := tokenLabel(token)
		ch <- prometheus.MustNewConstMetric(earnedDesc, prometheus.CounterValue, f(sums.get(token, kindReward)), kindReward, label)
		ch <- prometheus.MustNewConstMetric(earnedDesc, prometheus.CounterValue, f(sums.get(token, kindFee)), kindFee, label)
		ch <- prometheus.MustNewConstMetric(withdrawnDesc, prometheus.CounterValue, f(sums.get(token, kindWithdrawal)), label)
	}
}
