package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/doctor"
)

func newDoctorCmd() *cobra.Command {
	var (
		flags  configFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check every prerequisite of the node and say how to fix what is wrong",
		Long: `Checks the NVIDIA driver and NVML, persistence mode, the Docker Engine, runc and
the NVIDIA Container Toolkit against their patched releases, a real GPU container
start, the CDI spec, per-job output quotas, /dev/shm and disk space, the p2p listen
ports, IPFS, the chain's endpoint and id, the clock against the chain, the wallet's
balance for gas, the benchmark's age and the running daemon's own checks.

It reads the configuration as the daemon does (defaults, file, flags). Exit status 1
when a check fails; warnings do not. The report is kept in the data directory, where
the daemon's dashboard shows it. The deep check that runs real workloads on the
GPUs is the rigcheck suite (runtime/gpu/rigcheck).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load(cmd)
			if err != nil {
				return err
			}
			rep := doctor.Run(cmd.Context(), cfg, doctor.DefaultOptions(), cfg.Log.NewLogger(os.Stderr))
			// The dashboard shows the last report; a data dir this user cannot write
			// keeps the one before (said on stderr, not an error of the checks).
			if err := doctor.Save(rep, cfg.DataDir); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "gpunode doctor: the dashboard keeps its previous report: %v\n", err)
			}
			if asJSON {
				err = writeJSON(cmd.OutOrStdout(), rep)
			} else {
				err = printDoctor(cmd.OutOrStdout(), rep)
			}
			if err != nil {
				return err
			}
			if rep.Failed {
				return fmt.Errorf("doctor: %d of %d checks failed", count(rep, doctor.Fail), len(rep.Checks))
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

func count(rep doctor.Report, s doctor.Status) int {
	n := 0
	for _, c := range rep.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

func printDoctor(w io.Writer, rep doctor.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tDETAIL")
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(string(c.Status)), c.Name, c.Detail)
		if c.Fix != "" && c.Status != doctor.OK {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	fmt.Fprintf(tw, "\n%d ok, %d warnings, %d failed, %d skipped\n",
		count(rep, doctor.OK), count(rep, doctor.Warn), count(rep, doctor.Fail), count(rep, doctor.Skip))
	return tw.Flush()
}
