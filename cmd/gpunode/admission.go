package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
)

func printAdmission(cmd *cobra.Command, a api.AdmissionStatus) {
	fmt.Fprintf(cmd.OutOrStdout(), "node %s since %s", a.State, a.Since.Format(time.RFC3339))
	if a.Reason != "" {
		fmt.Fprintf(cmd.OutOrStdout(), " (%s)", a.Reason)
	}
	fmt.Fprintf(cmd.OutOrStdout(), ", %d job(s) running\n", a.RunningJobs)
}

func newDrainCmd() *cobra.Command {
	socket, reason := api.DefaultSocket, ""
	cmd := &cobra.Command{
		Use:   "drain",
		Short: "Finish running jobs and take no new ones (state becomes drained when the last ends)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := api.NewClient(socket).Drain(cmd.Context(), reason)
			if err != nil {
				return fmt.Errorf("drain: %w", err)
			}
			printAdmission(cmd, a)
			return nil
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown in status")
	return cmd
}

func newCordonCmd() *cobra.Command {
	socket, reason := api.DefaultSocket, ""
	cmd := &cobra.Command{
		Use:   "cordon",
		Short: "Take no new jobs until uncordoned; running jobs go on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := api.NewClient(socket).Cordon(cmd.Context(), reason)
			if err != nil {
				return fmt.Errorf("cordon: %w", err)
			}
			printAdmission(cmd, a)
			return nil
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown in status")
	return cmd
}

func newUncordonCmd() *cobra.Command {
	socket := api.DefaultSocket
	cmd := &cobra.Command{
		Use:   "uncordon",
		Short: "Take jobs again, ending a cordon or a drain",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := api.NewClient(socket).Uncordon(cmd.Context())
			if err != nil {
				return fmt.Errorf("uncordon: %w", err)
			}
			printAdmission(cmd, a)
			return nil
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	return cmd
}
