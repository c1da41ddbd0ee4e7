package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/version"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "gpunode",
		Short:         "Rent out a GPU rig for machine-learning training",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCmd(),
		newDaemonCmd(),
		newConfigCmd(),
		newStatusCmd(),
		newJobCmd(),
		newImageCmd(),
		newLogsCmd(),
		newBenchCmd(),
		newPolicyCmd(), newPoolCmd(), newDrainCmd(), newCordonCmd(), newUncordonCmd(),
		newIPFSCmd(),
		newDevchainCmd(),
		newWalletCmd(),
		newValidatorCmd(),
		newPeersCmd(),
		newMarketCmd(),
		newDoctorCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "gpunode", version.Get())
			return err
		},
	}
}
