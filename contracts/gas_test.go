package contracts_test

import (
	"fmt"
	"io"
	"math/big"
	"os"
	"testing"
	"text/tabwriter"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/bindings/mocks"
)

// gasBudget is the target for v1's post + accept + submit + 3 attests + withdraw,
// paid in ETH. An ERC-20 job adds two transferFroms, a transfer and the balance checks
// that refuse fee-taking tokens (about 70,000 gas of the token's own storage writes), so
// it has its own, looser cap. gasBudgetV2 is issue #16's budget for v2's paid path (post +
// accept with the draw + submit + 3 commits + 3 reveals + releaseKey + withdraw).
const (
	gasBudget        = 500_000
	gasBudgetERC20   = 600_000
	gasBudgetV2      = 750_000
	gasBudgetV2ERC20 = 850_000
	// gasV1Reference is v1's ETH total when v2 was written, printed beside v2's.
	gasV1Reference = 494_000
)

type gasRow struct {
	call string
	gas  uint64
}

// lifecycleGas runs the paid path with three validators and a quorum of three and
// returns the gas of each transaction, in ETH or in a token.
func lifecycleGas(t testing.TB, erc20 bool) []gasRow {
	c := newChain(t)
	var token common.Address
	if erc20 {
		token = c.newToken(mocks.MockTokenMetaData.Bin)
	}
	var rows []gasRow
	p := c.params(token, 3)
	var value = escrow(p)
	if erc20 {
		value = nil
	}
	r := c.mustSend(c.sponsor, c.market, value, market.PackPostJob(p))
	rows = append(rows, gasRow{"postJob", r.GasUsed})
	id, err := market.UnpackJobPostedEvent(r.Logs[len(r.Logs)-1])
	if err != nil {
		t.Fatal(err)
	}
	rows = append(rows, gasRow{"acceptJob", c.accept(id.JobId, token).GasUsed})
	rows = append(rows, gasRow{"submitResult", c.submit(id.JobId).GasUsed})
	for i := range 3 {
		rows = append(rows, gasRow{fmt.Sprintf("attest #%d", i+1), c.attest(id.JobId, i, threshold).GasUsed})
	}
	rows = append(rows, gasRow{"withdraw (provider)", c.withdraw(c.provider, token).GasUsed})
	return rows
}

func total(rows []gasRow) uint64 {
	var s uint64
	for _, r := range rows {
		s += r.gas
	}
	return s
}

func printGas(w io.Writer, eth, tok []gasRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "call\tETH gas\tERC-20 gas\t")
	for i := range eth {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", eth[i].call, eth[i].gas, tok[i].gas)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t\n", total(eth), total(tok))
	fmt.Fprintf(tw, "budget\t%d\t%d\t\n", gasBudget, gasBudgetERC20)
	tw.Flush()
}

// lifecycleGasV2 runs v2's paid path with three drawn validators and a quorum of three and
// returns the gas of each transaction, in ETH or in a token.
func lifecycleGasV2(t testing.TB, erc20 bool) []gasRow {
	c := newChain2(t)
	var token common.Address
	if erc20 {
		token = c.newToken(mocks.MockTokenMetaData.Bin)
		for _, a := range []account{c.sponsor, c.provider} {
			c.mustSend(a, token, nil, tokenABI.PackApprove(c.v2, new(big.Int).Mul(big.NewInt(1000), ether)))
		}
	}
	id := c.post2(c.params2(token, 3, 3))
	drawn := c.accept2(id, token, false, nil)
	s := newSealed(t)
	c.submit2(id, s)
	for _, v := range drawn {
		c.commit2(id, drawn, v, threshold)
	}
	for _, v := range drawn {
		c.reveal2(id, drawn, v, threshold)
	}
	c.record("releaseKey", c.provider, nil, market2.PackReleaseKey(id, s.key))
	c.record("withdraw (provider)", c.provider, nil, market2.PackWithdraw(token))
	if j := c.job2(id); j.State != v2Completed {
		t.Fatalf("job state %d, want Completed", j.State)
	}
	rows := c.gas
	for i := range rows {
		if rows[i].call == "commit" || rows[i].call == "reveal" {
			rows[i].call = fmt.Sprintf("%s #%d", rows[i].call, (i-3)%3+1)
		}
	}
	return rows
}

func printGasV2(w io.Writer, eth, tok []gasRow, v1 uint64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "JobMarketV2 call\tETH gas\tERC-20 gas\t")
	for i := range eth {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", eth[i].call, eth[i].gas, tok[i].gas)
	}
	fmt.Fprintf(tw, "total v2\t%d\t%d\t\n", total(eth), total(tok))
	fmt.Fprintf(tw, "budget v2\t%d\t%d\t\n", gasBudgetV2, gasBudgetV2ERC20)
	fmt.Fprintf(tw, "v1 today (3 attests)\t%d\t\t\n", v1)
	fmt.Fprintf(tw, "v1 reference\t%d\t\t\n", gasV1Reference)
	tw.Flush()
}

// TestGasBudget keeps the paid paths within their budgets. v1's gas is deterministic; v2's
// acceptJob varies by a few thousand gas with the pool entries its draw probes (the
// simulated chain's prevrandao is random), well inside the budget's margin.
func TestGasBudget(t *testing.T) {
	eth2, tok2 := lifecycleGasV2(t, false), lifecycleGasV2(t, true)
	if total(eth2) > gasBudgetV2 {
		t.Errorf("v2 ETH lifecycle uses %d gas, budget %d", total(eth2), gasBudgetV2)
	}
	if total(tok2) > gasBudgetV2ERC20 {
		t.Errorf("v2 ERC-20 lifecycle uses %d gas, budget %d", total(tok2), gasBudgetV2ERC20)
	}
	eth, tok := lifecycleGas(t, false), lifecycleGas(t, true)
	if t.Failed() || testing.Verbose() {
		printGasV2(os.Stdout, eth2, tok2, total(eth))
	}
	if total(eth) > gasBudget {
		t.Errorf("ETH lifecycle uses %d gas, budget %d", total(eth), gasBudget)
	}
	if total(tok) > gasBudgetERC20 {
		t.Errorf("ERC-20 lifecycle uses %d gas, budget %d", total(tok), gasBudgetERC20)
	}
	if t.Failed() || testing.Verbose() {
		printGas(os.Stdout, eth, tok)
	}
}

// BenchmarkLifecycleGas prints the gas of each call of a paid v2 job beside v1's total
// and reports the totals; it fails when v2 exceeds its budget.
func BenchmarkLifecycleGas(b *testing.B) {
	var eth, tok, eth2, tok2 []gasRow
	for b.Loop() {
		eth, tok = lifecycleGas(b, false), lifecycleGas(b, true)
		eth2, tok2 = lifecycleGasV2(b, false), lifecycleGasV2(b, true)
	}
	b.ReportMetric(float64(total(eth2)), "gas-eth-v2/lifecycle")
	b.ReportMetric(float64(total(tok2)), "gas-erc20-v2/lifecycle")
	b.ReportMetric(float64(total(eth)), "gas-eth-v1/lifecycle")
	b.ReportMetric(float64(total(tok)), "gas-erc20-v1/lifecycle")
	printGas(os.Stdout, eth, tok)
	printGasV2(os.Stdout, eth2, tok2, total(eth))
	if total(eth2) > gasBudgetV2 {
		b.Errorf("v2 ETH lifecycle uses %d gas, budget %d", total(eth2), gasBudgetV2)
	}
}
