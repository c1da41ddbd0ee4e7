package main

import (
	"fmt"
	"io"
	"math/big"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
)

// apiFlag adds --api-socket to a command that talks to the daemon.
func apiFlag(cmd *cobra.Command) *string {
	s := new(string)
	apiSocketVar(cmd.Flags(), s)
	return s
}

// apiSocketVar declares --api-socket on a flag set, into p: the flag's one declaration,
// with one default and one help text, for the daemon (which listens on the socket) and
// for every command that talks to it.
func apiSocketVar(fs interface {
	StringVar(p *string, name, value, usage string)
}, p *string) {
	fs.StringVar(p, "api-socket", api.DefaultSocket, api.SocketFlagUsage)
}

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's version, uptime, state and GPUs",
		Args:  cobra.NoArgs,
	}
	socket := apiFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		st, err := api.NewClient(*socket).Status(cmd.Context())
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(cmd.OutOrStdout(), st)
		}
		return printStatus(cmd.OutOrStdout(), st)
	}
	return cmd
}

func printStatus(w io.Writer, st api.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Node:\t%s\n", st.Hostname)
	fmt.Fprintf(tw, "Version:\t%s\n", st.Version)
	fmt.Fprintf(tw, "State:\t%s\n", st.State)
	if a := st.Admission; a != nil {
		jobsLine := "taking jobs"
		if a.State != "active" {
			jobsLine = fmt.Sprintf("%s since %s", a.State, a.Since.Format(time.RFC3339))
			if a.Reason != "" {
				jobsLine += " (" + a.Reason + ")"
			}
		}
		fmt.Fprintf(tw, "Jobs:\t%s, %d running\n", jobsLine, a.RunningJobs)
	}
	for _, p := range st.PolicyPaused {
		fmt.Fprintf(tw, "Paused:\t%s\n", p)
	}
	if i := st.Idle; i != nil {
		fmt.Fprintf(tw, "Idle workload:\t%s\n", idleLine(i))
	}
	fmt.Fprintf(tw, "Uptime:\t%s (since %s)\n", (time.Duration(st.UptimeSeconds) * time.Second).String(), st.StartedAt.Format(time.RFC3339))
	mode := st.GPUMode
	switch st.GPUMode {
	case "simulated":
		mode = "SIMULATED (not real hardware)"
	case "cpu-only":
		mode = "CPU-only: " + st.GPUNote
	}
	fmt.Fprintf(tw, "GPUs:\t%d, %s\n", len(st.GPUs), mode)
	if st.Driver != "" {
		fmt.Fprintf(tw, "Driver:\t%s (CUDA %s)\n", st.Driver, st.CUDA)
	}
	if b := st.Benchmark; b != nil {
		fmt.Fprintf(tw, "DL hashrate:\t%.4f TFLOPS (%s benchmark, %s, %s)\n", b.RigScore, b.Profile, b.Backend, b.CreatedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(tw, "DL hashrate:\tnot measured yet: run `gpunode bench`\n")
	}
	if st.PeerID != "" {
		fmt.Fprintf(tw, "Peer ID:\t%s\n", st.PeerID)
	}
	if c := st.Chain; c != nil {
		acct := c.Account
		if acct == "" {
			acct = "watch-only (no unlocked key)"
		}
		fmt.Fprintf(tw, "Chain:\t%d at %s, head %d, handled through %d, account %s\n", c.ChainID, c.RPCURL, c.Head, c.HandledBlock, acct)
		if c.LastError != "" {
			fmt.Fprintf(tw, "Chain error:\t%s\n", c.LastError)
		}
	}
	if st.Jobs != nil || st.Chain != nil {
		states := make([]string, 0, len(st.Jobs))
		for state, n := range st.Jobs {
			states = append(states, fmt.Sprintf("%s %d", state, n))
		}
		sort.Strings(states)
		summary := "none yet"
		if len(states) > 0 {
			summary = strings.Join(states, ", ")
		}
		fmt.Fprintf(tw, "Job history:\t%s\n", summary)
	}
	if len(st.Validations) > 0 {
		var parts []string
		for _, k := range []string{"posted", "submitted", "done"} {
			if n := st.Validations[k]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", map[string]string{"posted": "awaiting a result", "submitted": "evaluating", "done": "attested"}[k], n))
			}
		}
		fmt.Fprintf(tw, "Validations:\t%s\n", strings.Join(parts, ", "))
	}
	if e := st.Earnings; e != nil {
		line := fmt.Sprintf("rewards %s, validator fees %s, withdrawn %s", etherOf(e.RewardsWei), etherOf(e.FeesWei), etherOf(e.WithdrawnWei))
		if e.CreditWei != "" {
			line += fmt.Sprintf("; %s to withdraw", etherOf(e.CreditWei))
		}
		if e.AutoWithdrawWei != "" {
			line += fmt.Sprintf(" (withdrawn automatically from %s)", etherOf(e.AutoWithdrawWei))
		}
		if e.Error != "" {
			line += " — " + e.Error
		}
		fmt.Fprintf(tw, "Earnings:\t%s\n", line)
		for _, te := range e.Tokens {
			line := fmt.Sprintf("rewards %s, validator fees %s, withdrawn %s", te.Rewards, te.Fees, te.Withdrawn)
			if te.Credit != "" {
				line += fmt.Sprintf("; %s to withdraw", te.Credit)
			}
			fmt.Fprintf(tw, "Earnings in %s:\t%s (token units)\n", te.Token, line)
		}
	}
	if o := st.PoolOwed; o != nil {
		fmt.Fprintf(tw, "Pool owes you:\t%s\n", poolOwedLine(o))
	}
	for _, c := range st.GPURuntime {
		line := fmt.Sprintf("%s (patched from %s)", c.Version, c.Minimum)
		if !c.OK {
			line = "PROBLEM: " + c.Problem
		}
		fmt.Fprintf(tw, "%s:\t%s\n", c.Name, line)
	}
	for _, c := range st.Checks {
		if c.OK {
			fmt.Fprintf(tw, "%s:\tok\n", c.Name)
		} else {
			fmt.Fprintf(tw, "%s:\tPROBLEM: %s\n", c.Name, c.Message)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.GPUs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GPU\tNAME\tMEMORY\tUTIL\tTEMP\tPOWER\tSM CLOCK\tXID\tUUID")
	for _, g := range st.GPUs {
		note := ""
		if !g.Healthy && g.Problem != "" {
			note = " (OUT OF SERVICE: " + g.Problem + ")"
		}
		for _, in := range g.Instances {
			note += " [MIG " + in.UUID + "]"
		}
		if g.Sample == nil {
			if g.Error != "" && note == "" {
				note = " (error: " + g.Error + ")"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t-\t-\t-\t-\t-\t%s%s\n", g.Index, g.Name, gib(g.MemoryBytes), g.UUID, note)
			continue
		}
		s := g.Sample
		mem := "-/" + gib(g.MemoryBytes)
		if s.MemoryUsedBytes != nil {
			mem = gib(*s.MemoryUsedBytes) + "/" + gib(g.MemoryBytes)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s%s\n", g.Index, g.Name, mem,
			reading(s.GPUUtilPercent, "%d%%"), reading(s.TemperatureC, "%d°C"), reading(s.PowerWatts, "%.0f W"),
			reading(s.SMClockMHz, "%d MHz"), s.LastXID, g.UUID, note)
	}
	return tw.Flush()
}

// reading formats a GPU reading, or "n/a" where the GPU does not report it.
func reading[T uint32 | float64](v *T, format string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *v)
}

func gib(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// amountOf writes a ledger amount: in ETH for ETH, in the token's smallest unit and its
// address for a token.
func amountOf(wei, token string) string {
	if token == "" {
		return etherOf(wei)
	}
	return wei + " of token " + token
}

// etherOf writes a decimal wei amount in ETH.
func etherOf(wei string) string {
	v, ok := new(big.Int).SetString(wei, 10)
	if !ok {
		return wei + " wei"
	}
	return ether(v) + " ETH"
}

// idleLine says what the idle workload does: running, giving way to jobs, or failing.
func idleLine(i *api.IdleStatus) string {
	var s string
	switch {
	case i.Running:
		s = fmt.Sprintf("running since %s (%s)", i.StartedAt.Format(time.RFC3339), i.Image)
	case len(i.HeldBy) > 0:
		s = fmt.Sprintf("stopped for job %s (%s)", strings.Join(i.HeldBy, ", "), i.Image)
	default:
		s = fmt.Sprintf("not running (%s)", i.Image)
	}
	if i.LastStopSeconds > 0 {
		s += fmt.Sprintf("; last gave way in %.1fs", i.LastStopSeconds)
	}
	if i.LastError != "" {
		s += "; " + i.LastError
	}
	return s
}

// poolOwedLine is what the pool owes a member: booked on the coordinator, published
// (claimable with `gpunode pool claim`), and claimed.
func poolOwedLine(o *api.PoolOwed) string {
	line := fmt.Sprintf("%s booked, %s published unclaimed, %s claimed", etherOf(o.BookedWei), etherOf(o.PublishedWei), etherOf(o.ClaimedWei))
	if o.Error != "" {
		line += " — " + o.Error
	}
	return line
}
