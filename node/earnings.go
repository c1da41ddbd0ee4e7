package node

import (
	"context"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
)

// Ledger kinds: what the node earned (a provider's reward, a validator's fee) and what it
// withdrew, in ETH, booked from confirmed chain events.
const (
	kindReward     = "reward"
	kindFee        = "fee"
	kindWithdrawal = "withdrawal"
)

// bookJob books what job id credited the node, amount of its on-chain record (the
// reward or the validator fee), in ETH jobs.
func (c *chain) bookJob(ctx context.Context, e market.Event, kind string, id *big.Int, amount func(bindings.JobMarketJob) *big.Int) error {
	view, err := c.m.Job(ctx, id)
	if err != nil {
		return err // the watcher offers the event again
	}
	if view.Token != (common.Address{}) {
		return nil // the ledger counts ETH
	}
	return c.book(ctx, e, kind, id.String(), amount(view))
}

// book records a credit or a payout of the node's account, once per event, and withdraws
// automatically when the credit passes the configured amount.
func (c *chain) book(ctx context.Context, e market.Event, kind, jobID string, wei *big.Int) error {
	booked, err := c.store.Book(e.ID(), store.Entry{Kind: kind, Wei: wei.String(), JobID: jobID})
	if err != nil || !booked {
		return err
	}
	c.log.Info("booked "+kind, "job_id", jobID, "wei", wei)
	if kind != kindWithdrawal {
		c.autoWithdraw(ctx)
	}
	return nil
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

// earnings sums the ledger.
func (c *chain) earnings() (api.Earnings, error) {
	entries, err := c.store.Ledger()
	if err != nil {
		return api.Earnings{}, err
	}
	sum := map[string]*big.Int{kindReward: new(big.Int), kindFee: new(big.Int), kindWithdrawal: new(big.Int)}
	for _, e := range entries {
		v, ok := new(big.Int).SetString(e.Wei, 10)
		if s := sum[e.Kind]; ok && s != nil {
			s.Add(s, v)
		}
	}
	out := api.Earnings{RewardsWei: sum[kindReward].String(), FeesWei: sum[kindFee].String(), WithdrawnWei: sum[kindWithdrawal].String()}
	if at := c.m.Config().AutoWithdraw(); at != nil {
		out.AutoWithdrawWei = at.String()
	}
	return out, nil
}

// earningsStatus is the ledger with the credit still on chain, for status.
func (c *chain) earningsStatus(ctx context.Context) *api.Earnings {
	e, err := c.earnings()
	if err != nil {
		return &api.Earnings{Error: err.Error()}
	}
	if self := c.m.Account(); self != (common.Address{}) {
		if credit, err := c.m.Credit(ctx, common.Address{}, self); err == nil {
			e.CreditWei = credit.String()
		} else {
			e.Error = err.Error()
		}
	}
	return &e
}

var (
	earnedDesc    = prometheus.NewDesc("gpunode_earned_wei_total", "ETH credited to the node by the JobMarket, in wei: rewards as provider, fees as validator.", []string{"kind"}, nil)
	withdrawnDesc = prometheus.NewDesc("gpunode_withdrawn_wei_total", "ETH the node withdrew from the JobMarket, in wei.", nil, nil)
)

// ledgerCollector exports the ledger, read from the store at each scrape.
type ledgerCollector struct{ c *chain }

func (l ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- earnedDesc
	ch <- withdrawnDesc
}

func (l ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	e, err := l.c.earnings()
	if err != nil {
		return
	}
	f := func(s string) float64 {
		v, _ := new(big.Float).SetString(s)
		x, _ := v.Float64()
		return x
	}
	ch <- prometheus.MustNewConstMetric(earnedDesc, prometheus.CounterValue, f(e.RewardsWei), kindReward)
	ch <- prometheus.MustNewConstMetric(earnedDesc, prometheus.CounterValue, f(e.FeesWei), kindFee)
	ch <- prometheus.MustNewConstMetric(withdrawnDesc, prometheus.CounterValue, f(e.WithdrawnWei))
}
