package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/validator"
)

// The researcher's commands: post a job, fetch and verify its checkpoint.

func newJobPostCmd() *cobra.Command {
	var (
		validators                          []string
		quorum                              int
		reward, fee, bond                   string
		acceptWithin, runWindow, attestWait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "post MANIFEST",
		Short: "Post a job: put its manifest on IPFS and escrow the reward on chain",
		Long: `Post a job from this node's account. The manifest is checked strictly first, added to
the node's IPFS, and its CID and sha256 are posted with the reward and each validator's
fee in escrow. Validators attest the evaluation metric; the threshold is the manifest's.`,
		Args: cobra.ExactArgs(1),
	}
	socket := apiFlag(cmd)
	f := cmd.Flags()
	f.StringSliceVar(&validators, "validators", nil, "validator addresses (comma-separated)")
	f.IntVar(&quorum, "quorum", 0, "attestations needed (default: every validator)")
	f.StringVar(&reward, "reward", "", "reward in wei")
	f.StringVar(&fee, "validator-fee", "0", "fee per validator in wei")
	f.StringVar(&bond, "bond", "0", "bond the provider locks, in wei")
	f.DurationVar(&acceptWithin, "accept-within", time.Hour, "how long a provider has to accept")
	f.DurationVar(&runWindow, "run-window", 6*time.Hour, "how long the provider has to submit, from acceptance")
	f.DurationVar(&attestWait, "attest-window", time.Hour, "how long validators have to attest, from submission")
	cmd.MarkFlagRequired("validators")
	cmd.MarkFlagRequired("reward")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		raw, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		man, err := job.Decode(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		path, err := filepath.Abs(args[0])
		if err != nil {
			return err
		}
		if quorum == 0 {
			quorum = len(validators)
		}
		if quorum > math.MaxUint8 {
			return fmt.Errorf("quorum %d: too large", quorum)
		}
		c := api.NewClient(*socket)
		added, err := c.IPFSAdd(cmd.Context(), path, "")
		if err != nil {
			return fmt.Errorf("add manifest to IPFS: %w", err)
		}
		sum := sha256.Sum256(raw)
		res, err := c.PostJob(cmd.Context(), api.PostJobRequest{
			ManifestCID: added.CID, ManifestHash: hex.EncodeToString(sum[:]),
			Threshold:  uint32(math.Round(man.Evaluation.Threshold * validator.ScoreScale)),
			Validators: validators, Quorum: uint8(quorum),
			RewardWei: reward, ValidatorFeeWei: fee, BondWei: bond,
			AcceptWithinSeconds: uint64(acceptWithin.Seconds()), RunWindowSeconds: uint32(runWindow.Seconds()),
			AttestWindowSeconds: uint32(attestWait.Seconds()),
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "posted job %s\nmanifest %s (sha256 %x)\ntx %s\n", res.JobID, added.CID, sum, res.TxHash)
		return err
	}
	return cmd
}

func newJobFetchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fetch ID DIR",
		Short: "Download a job's checkpoint into DIR and check it against the hash on chain",
		Args:  cobra.ExactArgs(2),
	}
	socket := apiFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		dir, err := filepath.Abs(args[1])
		if err != nil {
			return err
		}
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return fmt.Errorf("%s is not empty: fetch into a new or empty folder, so the hash covers only the checkpoint", dir)
		}
		c := api.NewClient(*socket)
		res, err := c.JobResult(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if _, err := c.IPFSGet(cmd.Context(), res.CheckpointCID, dir); err != nil {
			return fmt.Errorf("fetch %s: %w", res.CheckpointCID, err)
		}
		got, err := jobs.TreeHash(dir)
		if err != nil {
			return err
		}
		if want := strings.TrimPrefix(strings.ToLower(res.ResultHash), "0x"); got != want {
			return fmt.Errorf("checkpoint %s in %s hashes to %s, the chain says %s: do not trust it", res.CheckpointCID, dir, got, want)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "job %s: checkpoint %s in %s, hash %s matches the chain\n", args[0], res.CheckpointCID, dir, got)
		return err
	}
	return cmd
}
