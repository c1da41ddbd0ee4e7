package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/jobs"
)

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Jobs: list what this node runs, show one; post, offer, cancel one, fetch its checkpoint",
	}
	cmd.AddCommand(newJobListCmd(), newJobStatusCmd(), newJobPostCmd(), newJobFetchCmd(), newJobOfferCmd(), newJobCancelCmd())
	return cmd
}

func newJobListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the jobs this node knows, newest first",
		Args:  cobra.NoArgs,
	}
	socket := apiFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	var posted bool
	cmd.Flags().BoolVar(&posted, "posted", false, "list the jobs this node posted (as a researcher), as the chain records them")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if posted {
			list, err := api.NewClient(*socket).PostedJobs(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSTATE\tREWARD (wei)\tPROVIDER\tPASS/FAIL\tDEADLINE\tSETTLEMENT")
			for _, j := range list {
				deadline := ""
				if !j.Deadline.IsZero() {
					deadline = j.Deadline.Local().Format(time.DateTime)
				}
				settled, _, _ := strings.Cut(j.Settlement, ":")
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.JobID, j.State, j.Reward, j.Provider, j.Passes, j.Fails, deadline, settled)
			}
			return tw.Flush()
		}
		c := api.NewClient(*socket)
		var list []jobs.Job
		if err := c.Jobs(cmd.Context(), &list); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(cmd.OutOrStdout(), list)
		}
		// What each job earned, from the node's ledger of chain events.
		ledger, _ := c.Ledger(cmd.Context())
		earned := map[string]string{}
		for _, e := range ledger {
			if e.Kind == "reward" {
				earned[e.JobID] = amountOf(e.Wei, e.Token)
			}
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tSTATE\tSPONSOR\tREWARD (wei)\tEARNED\tGPUS\tUPDATED\tREASON")
		for _, j := range list {
			e := earned[j.ID]
			if e == "" {
				e = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.State, j.Posting.Sponsor, j.Posting.RewardWei, e,
				len(j.GPUs), j.UpdatedAt.Local().Format(time.DateTime), j.Reason)
		}
		return tw.Flush()
	}
	return cmd
}

// jobStatus is `gpunode job status --json`: what this node did with the job, if it knows
// it, and what the contract says of it, if the node is on a chain.
type jobStatus struct {
	Node  *jobs.Detail  `json:"node"`
	Chain *api.ChainJob `json:"chain"`
}

func newJobStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show one job: this node's state, record and history, and the job on chain",
		Long: `status shows what this node did with a job (as provider) and the job's record on chain:
its state there and, once it is over, who was credited — the provider's pay, or the
sponsor's refund when the training failed, a deadline passed or the validators rejected
the result. A researcher's node, which posted the job, shows the chain part.`,
		Args: cobra.ExactArgs(1),
	}
	socket := apiFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	v2 := addV2Read(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if v2.set() {
			// A JobMarketV2 job: its state and the drawn validators' commits and reveals.
			id, err := jobNumber(args[0])
			if err != nil {
				return err
			}
			v, err := dialRead(cmd, v2)
			if err != nil {
				return err
			}
			defer v.Close()
			return printV2Job(cmd.Context(), cmd.OutOrStdout(), v, id)
		}
		c := api.NewClient(*socket)
		var st jobStatus
		var d jobs.Detail
		nodeErr := c.Job(cmd.Context(), args[0], &d)
		if nodeErr == nil {
			st.Node = &d
		} else if errors.Is(nodeErr, api.ErrNotRunning) {
			return nodeErr
		}
		cj, chainErr := c.ChainJob(cmd.Context(), args[0])
		if chainErr == nil {
			st.Chain = &cj
		}
		if st.Node == nil && st.Chain == nil {
			return fmt.Errorf("job %s: %v; on chain: %v", args[0], nodeErr, chainErr)
		}
		if asJSON {
			return writeJSON(cmd.OutOrStdout(), st)
		}
		w := cmd.OutOrStdout()
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "Job:\t%s\n", args[0])
		if st.Node != nil {
			fmt.Fprintf(tw, "State:\t%s\n", d.State)
			if d.Reason != "" {
				fmt.Fprintf(tw, "Reason:\t%s\n", d.Reason)
			}
			if d.Refund != "" {
				fmt.Fprintf(tw, "Refund:\t%s\n", d.Refund)
			}
			fmt.Fprintf(tw, "Sponsor:\t%s\n", d.Posting.Sponsor)
			fmt.Fprintf(tw, "Reward:\t%s wei\n", d.Posting.RewardWei)
			fmt.Fprintf(tw, "Manifest:\t%s\n", d.Posting.ManifestCID)
			if d.Manifest != nil {
				fmt.Fprintf(tw, "Image:\t%s\n", d.Manifest.Image)
			}
			if d.Result != nil {
				fmt.Fprintf(tw, "Result:\texit %d after %s, %.0f GPU-seconds\n", d.Result.ExitCode, d.Result.WallTime.Round(time.Second), d.Result.GPUSeconds)
			}
			if d.OutputCID != "" {
				fmt.Fprintf(tw, "Output:\t%s (hash %s)\n", d.OutputCID, d.OutputHash)
			}
		}
		if st.Chain != nil {
			fmt.Fprintf(tw, "On chain:\t%s", cj.State)
			if !cj.Deadline.IsZero() {
				fmt.Fprintf(tw, " until %s", cj.Deadline.Local().Format(time.DateTime))
			}
			fmt.Fprintf(tw, " (sponsor %s", cj.Sponsor)
			if cj.Provider != "" {
				fmt.Fprintf(tw, ", provider %s", cj.Provider)
			}
			fmt.Fprintf(tw, ", %d pass, %d fail)\n", cj.Passes, cj.Fails)
			if cj.Settlement != "" {
				fmt.Fprintf(tw, "Settlement:\t%s\n", cj.Settlement)
			}
		} else if !errors.Is(chainErr, api.ErrNotRunning) {
			fmt.Fprintf(tw, "On chain:\tunknown (%v)\n", chainErr)
		}
		tw.Flush()
		if st.Node == nil {
			return nil
		}
		fmt.Fprintln(w, "\nHistory:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, h := range d.History {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", h.At.Local().Format(time.DateTime), h.To, h.Note)
		}
		return tw.Flush()
	}
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
