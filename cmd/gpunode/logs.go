package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
)

func newLogsCmd() *cobra.Command {
	var socket string
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs JOB",
		Short: "Print a job's log (stdout and stderr of its container)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, err := api.NewClient(socket).JobLogs(cmd.Context(), args[0], follow)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(cmd.OutOrStdout(), rc)
			return err
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming until the job ends")
	return cmd
}
