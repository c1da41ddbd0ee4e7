package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/jobs"
)

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Jobs: list what this node runs, show one; post one, fetch its checkpoint",
	}
	cmd.AddCommand(newJobListCmd(), newJobStatusCmd(), newJobPostCmd(), newJobFetchCmd())
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
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var list []jobs.Job
		if err := api.NewClient(*socket).Get(cmd.Context(), "/v1/jobs", &list); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(cmd.OutOrStdout(), list)
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tSTATE\tSPONSOR\tREWARD (wei)\tGPUS\tUPDATED\tREASON")
		for _, j := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.State, j.Posting.Sponsor, j.Posting.RewardWei,
				len(j.GPUs), j.UpdatedAt.Local().Format(time.DateTime), j.Reason)
		}
		return tw.Flush()
	}
	return cmd
}

func newJobStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show one job: its state, record and history",
		Args:  cobra.ExactArgs(1),
	}
	socket := apiFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var d jobs.Detail
		if err := api.NewClient(*socket).Get(cmd.Context(), "/v1/jobs/"+args[0], &d); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(cmd.OutOrStdout(), d)
		}
		w := cmd.OutOrStdout()
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "Job:\t%s\n", d.ID)
		fmt.Fprintf(tw, "State:\t%s\n", d.State)
		if d.Reason != "" {
			fmt.Fprintf(tw, "Reason:\t%s\n", d.Reason)
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
		tw.Flush()
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
