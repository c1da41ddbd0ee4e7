package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print or check node configuration files",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the complete default configuration, with comments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(node.DefaultTOML())
			return err
		},
	}, &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file; every problem is reported",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := node.LoadConfig(args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return err
		},
	})
	return cmd
}
