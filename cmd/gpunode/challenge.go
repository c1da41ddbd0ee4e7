package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
)

func newBenchChallengeCmd() *cobra.Command {
	var (
		asJSON bool
		socket string
		req    api.ChallengeRequest
	)
	cmd := &cobra.Command{
		Use:   "challenge PEER_ID",
		Short: "Check a rig's claimed throughput with a matrix-product challenge, through the daemon",
		Long: `challenge asks the running daemon to challenge the rig PEER_ID over libp2p: the rig
computes C = A·B for matrices from a fresh seed and commits to it; the daemon checks
the answer at a small fraction of the cost, times it, and signs an attestation.
It prints the rig's claimed and verified TFLOPS, the verifier's cost and the verdict.
Flags left at 0 take the daemon's [challenge] settings.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.PeerID = args[0]
			r, err := api.NewClient(socket).Challenge(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return p2pWriteJSON(cmd.OutOrStdout(), r)
			}
			return printChallenge(cmd.OutOrStdout(), r)
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.Flags().IntVar(&req.N, "n", 0, "matrix size, a power of two from 16 to 8192")
	cmd.Flags().StringVar(&req.Precision, "precision", "", "fp32, tf32, fp16 or bf16")
	cmd.Flags().IntVar(&req.Count, "count", 0, "products to compute, 1 to 8")
	cmd.Flags().Int64Var(&req.DeadlineMS, "deadline-ms", 0, "time the rig has to commit, in milliseconds")
	return cmd
}

func printChallenge(w io.Writer, r api.ChallengeResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "peer\t%s\n", r.PeerID)
	fmt.Fprintf(tw, "problem\t%d × n=%d %s\n", r.Count, r.N, r.Precision)
	if r.Device != "" {
		fmt.Fprintf(tw, "device\t%s\n", r.Device)
	}
	fmt.Fprintf(tw, "claimed\t%.4f TFLOPS\n", r.ClaimedTFLOPS)
	fmt.Fprintf(tw, "verified\t%.4f TFLOPS\n", r.VerifiedTFLOPS)
	fmt.Fprintf(tw, "timing\t%.1f ms to commitment, %.2f ms round trip\n", r.ElapsedMS, r.RTTMS)
	fmt.Fprintf(tw, "verifier cost\t%.1f ms, %d stamp hashes\n", r.VerifierMS, r.StampHashes)
	verdict := r.Verdict
	if r.Reason != "" {
		verdict += ": " + r.Reason
	}
	fmt.Fprintf(tw, "verdict\t%s\n", verdict)
	return tw.Flush()
}
