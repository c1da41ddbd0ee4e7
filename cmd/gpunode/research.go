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
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/offers"
	"github.com/gpunode/gpunode/node/validator"
)

// The researcher's commands: post a job, fetch and verify its checkpoint.

func newJobPostCmd() *cobra.Command {
	var (
		validators                          []string
		quorum                              int
		reward, fee, bond, token            string
		acceptWithin, runWindow, attestWait time.Duration
		validatorCount                      int
		commitWindow, revealWindow          time.Duration
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
	f.StringVar(&token, "token", "", "pay in this ERC-20 token (reward, fees and bond in its smallest unit) instead of ETH")
	f.DurationVar(&acceptWithin, "accept-within", time.Hour, "how long a provider has to accept")
	f.DurationVar(&runWindow, "run-window", 6*time.Hour, "how long the provider has to submit, from acceptance")
	f.DurationVar(&attestWait, "attest-window", time.Hour, "how long validators have to attest, from submission")
	f.IntVar(&validatorCount, "validator-count", 0, "post on JobMarketV2: draw this many staked validators at acceptance (instead of --validators)")
	f.DurationVar(&commitWindow, "commit-window", time.Hour, "JobMarketV2: how long drawn validators have to commit, from submission")
	f.DurationVar(&revealWindow, "reveal-window", time.Hour, "JobMarketV2: how long they have to reveal, after the commit window")
	cmd.Long += `

Inputs given as "file" (a file or folder on this machine, relative to the manifest) are
added to the node's IPFS first; the manifest posted names their CIDs instead, and is kept
beside the original as NAME.posted.json.`
	cmd.MarkFlagsOneRequired("validators", "validator-count")
	cmd.MarkFlagsMutuallyExclusive("validators", "validator-count")
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
			quorum = max(len(validators), validatorCount)
		}
		if validatorCount < 0 || validatorCount > math.MaxUint8 {
			return fmt.Errorf("validator count %d: out of range", validatorCount)
		}
		if quorum > math.MaxUint8 {
			return fmt.Errorf("quorum %d: too large", quorum)
		}
		c := api.NewClient(*socket)
		if len(man.LocalFiles()) > 0 {
			if raw, path, err = uploadInputs(cmd, c, man, path); err != nil {
				return err
			}
		}
		added, err := c.IPFSUpload(cmd.Context(), path, filepath.Base(path))
		if err != nil {
			return fmt.Errorf("add manifest to IPFS: %w", err)
		}
		sum := sha256.Sum256(raw)
		res, err := c.PostJob(cmd.Context(), api.PostJobRequest{
			ManifestCID: added.CID, ManifestHash: hex.EncodeToString(sum[:]),
			Threshold:  uint32(math.Round(man.Evaluation.Threshold * validator.ScoreScale)),
			Validators: validators, Quorum: uint8(quorum),
			RewardWei: reward, ValidatorFeeWei: fee, BondWei: bond, Token: token,
			AcceptWithinSeconds: uint64(acceptWithin.Seconds()), RunWindowSeconds: uint32(runWindow.Seconds()),
			AttestWindowSeconds: uint32(attestWait.Seconds()),
			ValidatorCount:      uint8(validatorCount), LowerIsBetter: man.Evaluation.LowerIsBetter(),
			CommitWindowSeconds: uint32(commitWindow.Seconds()), RevealWindowSeconds: uint32(revealWindow.Seconds()),
		})
		if err != nil {
			return err
		}
		on := ""
		if res.Contract != "" {
			on = " on " + res.Contract
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "posted job %s%s\nmanifest %s (sha256 %x)\ntx %s\n", res.JobID, on, added.CID, sum, res.TxHash)
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
	v2 := addV2Read(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		dir, err := filepath.Abs(args[1])
		if err != nil {
			return err
		}
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return fmt.Errorf("%s is not empty: fetch into a new or empty folder, so the hash covers only the checkpoint", dir)
		}
		c := api.NewClient(*socket)
		if v2.set() {
			// A JobMarketV2 job: the checkpoint is sealed; its key is on chain once paid.
			id, err := jobNumber(args[0])
			if err != nil {
				return err
			}
			v, err := dialRead(cmd, v2)
			if err != nil {
				return err
			}
			defer v.Close()
			return fetchSealed(cmd.Context(), cmd.OutOrStdout(), c, v, id, dir)
		}
		res, err := c.JobResult(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if err := c.IPFSDownload(cmd.Context(), res.CheckpointCID, dir); err != nil {
			return err
		}
		got, err := treehash.Sum(dir)
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

func newJobOfferCmd() *cobra.Command {
	var (
		peerID, price string
		gpus          int
		maxDuration   time.Duration
		check         bool
	)
	cmd := &cobra.Command{
		Use:   "offer ID --peer PEER_ID",
		Short: "Offer a posted job to one rig over the p2p network and print its answer",
		Long: `offer asks one rig (by libp2p peer ID, as 'gpunode market' lists them) to take a job
already posted on chain. The rig reads the job from the chain, evaluates it as it would
any posted job — manifest, GPUs, datasets, its workload policy — and answers at once:
taking it, or declined and why. The reward is still paid from the job's escrow.`,
		Args: cobra.ExactArgs(1),
	}
	socket := apiFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&peerID, "peer", "", "the rig's libp2p peer ID")
	f.IntVar(&gpus, "gpus", 0, "GPUs the job needs (the rig declines if fewer are free)")
	f.StringVar(&price, "price", "0", "offered price in wei per GPU-hour (the rig declines below its ask)")
	f.DurationVar(&maxDuration, "max-duration", time.Hour, "the job's longest run")
	f.BoolVar(&check, "challenge", true, "challenge the rig's claimed capacity first and offer nothing to a rig that fails")
	cmd.MarkFlagRequired("peer")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c := api.NewClient(*socket)
		cj, err := c.ChainJob(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if cj.ManifestCID == "" {
			return fmt.Errorf("job %s: its manifest is not known to this node's chain client", args[0])
		}
		if check {
			r, err := c.Challenge(cmd.Context(), api.ChallengeRequest{PeerID: peerID})
			if err != nil {
				return fmt.Errorf("challenge %s: %w (offer without it: --challenge=false)", peerID, err)
			}
			switch r.Verdict {
			case "failed":
				return fmt.Errorf("job %s: not offered: %s failed the capacity challenge (%s: %s)", cj.JobID, peerID, r.Failed, r.Reason)
			case "passed":
				fmt.Fprintf(cmd.OutOrStdout(), "%s: verified %.4f TFLOPS (%s n=%d), claimed %.4f\n", peerID, r.VerifiedTFLOPS, r.Precision, r.N, r.ClaimedTFLOPS)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "%s: not verified: %s\n", peerID, r.Reason)
			}
		}
		offer := offers.Make(cj.JobID, cj.ManifestCID, offers.Terms{GPUs: gpus, PricePerGPUHour: price, MaxDuration: maxDuration}, time.Now())
		d, err := c.P2POffer(cmd.Context(), peerID, api.Offer(offer))
		if err != nil {
			return err
		}
		if !d.Accepted {
			return fmt.Errorf("job %s: declined by %s: %s", cj.JobID, peerID, d.Reason)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "job %s: accepted by %s: %s\n", cj.JobID, peerID, d.Reason)
		return err
	}
	return cmd
}

// uploadInputs adds the manifest's local input files to the node's IPFS, replaces them
// with their CIDs, and writes the manifest to post beside the original; it returns its
// bytes and path.
func uploadInputs(cmd *cobra.Command, c *api.Client, man *job.Manifest, path string) ([]byte, string, error) {
	raw, err := man.UploadFiles(filepath.Dir(path), func(file, p string) (string, error) {
		added, err := c.IPFSUpload(cmd.Context(), p, filepath.Base(p))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "input %s: %s\n", file, added.CID)
		return added.CID, nil
	})
	if err != nil {
		return nil, "", err
	}
	posted := job.PostedPath(path)
	if err := os.WriteFile(posted, raw, 0o644); err != nil {
		return nil, "", fmt.Errorf("keep the manifest to post: %w", err)
	}
	return raw, posted, nil
}

func newJobCancelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job this node posted, while nobody has accepted it; the escrow comes back",
		Long: `cancel withdraws a posted job before any provider accepts it: the reward and the
validators' fees are credited back to the sponsor (withdraw them with 'gpunode wallet
withdraw'). Once a provider has accepted, the job runs its course or expires.`,
		Args: cobra.ExactArgs(1),
	}
	socket := apiFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		res, err := api.NewClient(*socket).CancelJob(cmd.Context(), args[0])
		if err != nil {
			return fmt.Errorf("cancel job %s: %w", args[0], err)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "cancelled job %s in tx %s: the escrow is credited back\n", res.JobID, res.TxHash)
		return err
	}
	return cmd
}
