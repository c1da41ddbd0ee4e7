package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
)

func newPoolJobsCmd() *cobra.Command {
	socket := api.DefaultSocket
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List the pool's jobs, their state and the members running them (on the pool's coordinator)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, err := api.NewClient(socket).PoolJobs(cmd.Context())
			if err != nil {
				return fmt.Errorf("pool jobs: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), j)
			}
			return printPoolJobs(cmd.OutOrStdout(), j)
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

// printPoolJobs prints one line per job: its state, the members running it by rank, and
// why it was declined, failed or last taken from a member.
func printPoolJobs(w io.Writer, j api.PoolJobs) error {
	if len(j.Jobs) == 0 {
		_, err := fmt.Fprintln(w, "The pool has no jobs yet.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tNODES\tMEMBERS\tREASSIGNED\tUPDATED\tREASON")
	for _, pj := range j.Jobs {
		var ms []string
		for _, m := range pj.Members {
			s := fmt.Sprintf("%d:%s", m.Rank, m.Member)
			if m.Status != "" {
				s += "(" + m.Status + ")"
			}
			ms = append(ms, s)
		}
		members := strings.Join(ms, " ")
		if members == "" {
			members = "-"
		}
		reason := pj.Reason
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", pj.ID, pj.State, max(pj.Nodes, 1), members, pj.Reassignments, pj.UpdatedAt.Format(time.RFC3339), reason)
	}
	return tw.Flush()
}
