package contracts_test

import (
	"fmt"
	"io"
	"os"
	"testing"
	"text/tabwriter"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/bindings/mocks"
)

// gasBudget is the target for post + accept + submit + 3 attests + withdraw,
// paid in ETH. An ERC-20 job adds two transferFroms, a transfer and the balance checks
// that refuse fee-taking tokens (about 70,000 gas of the token's own storage writes), so
// it has its own, looser cap.
const (
	gasBudget      = 500_000
	gasBudgetERC20 = 600_000
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

// TestGasBudget keeps the paid path within the budget (gas is deterministic).
func TestGasBudget(t *testing.T) {
	eth, tok := lifecycleGas(t, false), lifecycleGas(t, true)
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

// BenchmarkLifecycleGas prints the gas of each call of a paid job and reports the totals.
func BenchmarkLifecycleGas(b *testing.B) {
	var eth, tok []gasRow
	for b.Loop() {
		eth, tok = lifecycleGas(b, false), lifecycleGas(b, true)
	}
	b.ReportMetric(float64(total(eth)), "gas-eth/lifecycle")
	b.ReportMetric(float64(total(tok)), "gas-erc20/lifecycle")
	printGas(os.Stdout, eth, tok)
}
