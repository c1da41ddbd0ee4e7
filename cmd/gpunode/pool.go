package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/policy"
)

func newPoolCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Pool operators and members: keys, signed pool policies, members, payouts",
	}
	cmd.AddCommand(newPoolKeygenCmd(), newPoolSignCmd(), newPoolVerifyCmd(), newPoolPushCmd(), newPoolMembersCmd(), newPoolJobsCmd(),
		newPoolPayoutsCmd(), newPoolPublishCmd(), newPoolClaimCmd())
	return cmd
}

func newPoolKeygenCmd() *cobra.Command {
	dir := "."
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make a pool key pair: pool.key (secret) and pool.pub (for member nodes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, priv, err := policy.GenerateKey()
			if err != nil {
				return err
			}
			keyFile, pubFile := filepath.Join(dir, "pool.key"), filepath.Join(dir, "pool.pub")
			f, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s exists: refusing to replace a pool key (member nodes trust it)", keyFile)
			}
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(f, policy.EncodePrivateKey(priv)); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.WriteFile(pubFile, []byte(policy.EncodePublicKey(pub)+"\n"), 0o644); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s (keep it secret) and %s\n", keyFile, pubFile)
			fmt.Fprintf(out, "member nodes set in their config:\n  [policy]\n  pool_key = %q\n", policy.EncodePublicKey(pub))
			fmt.Fprintf(out, "pool topic: %s\n", policy.Topic(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", dir, "folder to write pool.key and pool.pub to")
	return cmd
}

func newPoolSignCmd() *cobra.Command {
	var keyFile, out, seqFlag string
	cmd := &cobra.Command{
		Use:   "sign POLICY",
		Short: "Sign a policy file for the pool's members",
		Long: `Signs POLICY with the pool key. Members replace their pool policy only with one of a
higher sequence number; the default, the current Unix time, grows by itself.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kb, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			priv, err := policy.ParsePrivateKey(string(kb))
			if err != nil {
				return fmt.Errorf("%s: %w", keyFile, err)
			}
			seq := uint64(time.Now().Unix())
			if seqFlag != "" {
				if seq, err = strconv.ParseUint(seqFlag, 10, 64); err != nil {
					return fmt.Errorf("--seq: %w", err)
				}
			}
			pb, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			signed, err := policy.Sign(priv, seq, pb)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if out == "" {
				out = args[0] + ".signed"
			}
			if out == "-" {
				_, err := cmd.OutOrStdout().Write(signed)
				return err
			}
			if err := os.WriteFile(out, signed, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (seq %d)\n", out, seq)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "pool.key", "the pool's private key file")
	cmd.Flags().StringVarP(&out, "output", "o", "", "where to write the signed policy (default POLICY.signed; - for stdout)")
	cmd.Flags().StringVar(&seqFlag, "seq", "", "sequence number (default: the current Unix time)")
	return cmd
}

func newPoolVerifyCmd() *cobra.Command {
	var pubKey string
	cmd := &cobra.Command{
		Use:   "verify SIGNED",
		Short: "Check a signed pool policy against the pool's public key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := policy.ParsePublicKey(pubKey)
			if err != nil {
				return fmt.Errorf("--pool-key: %w", err)
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			v, err := policy.Verify(pub, b)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid pool policy, seq %d\n", args[0], v.Seq)
			return nil
		},
	}
	cmd.Flags().StringVar(&pubKey, "pool-key", "", "the pool's public key (gpunode-pool-pub:…)")
	return cmd
}

func newPoolPushCmd() *cobra.Command {
	socket := api.DefaultSocket
	cmd := &cobra.Command{
		Use:   "push SIGNED",
		Short: "Hand a signed pool policy to the local daemon (it checks signature and seq)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			st, err := api.NewClient(socket).PushPoolPolicy(cmd.Context(), b)
			if err != nil {
				return fmt.Errorf("pool push: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pool policy seq %d in force\n", st.PoolSeq)
			return nil
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	return cmd
}

func newPoolMembersCmd() *cobra.Command {
	socket := api.DefaultSocket
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the pool's members and their inventory (on the pool's coordinator)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := api.NewClient(socket).PoolMembers(cmd.Context())
			if err != nil {
				return fmt.Errorf("pool members: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			return printPoolMembers(cmd.OutOrStdout(), m)
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

// printPoolMembers prints one line per member; a member whose heartbeats stopped is
// marked gone.
func printPoolMembers(w io.Writer, m api.PoolMembers) error {
	fmt.Fprintf(w, "Coordinator %s (members name it as pool.coordinator_peer); gone after %s without a heartbeat\n",
		m.Coordinator, time.Duration(m.HeartbeatBoundSecs*float64(time.Second)))
	if len(m.Members) == 0 {
		_, err := fmt.Fprintln(w, "No member has reported yet.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSTATE\tACCOUNT\tGPUS\tFREE\tMODEL\tSCORE\tADMISSION\tLAST SEEN")
	for _, p := range m.Members {
		state := "alive"
		if !p.Alive {
			state = "GONE"
		}
		model := p.GPUModel
		if model == "" {
			model = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%.2f\t%s\t%s\n", p.PeerID, state, p.Account, p.GPUs, p.FreeGPUs, model, p.Score, p.Admission, p.LastSeen.Format(time.RFC3339))
	}
	return tw.Flush()
}

func newPoolPayoutsCmd() *cobra.Command {
	socket := api.DefaultSocket
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "payouts",
		Short: "Each member's share of each job the pool was paid for (a member: its own)",
		Long: `On the pool's coordinator: every member's share of every paid job (GPU-seconds × score,
less the pool's fee), booked, published in a PoolPayouts epoch, or claimed. On a member:
its own shares and payouts, asked of its coordinator.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := api.NewClient(socket).PoolPayouts(cmd.Context())
			if err != nil {
				return fmt.Errorf("pool payouts: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			return printPoolPayouts(cmd.OutOrStdout(), p)
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

// printPoolPayouts prints the totals, then one line per share of a job.
func printPoolPayouts(w io.Writer, p api.PoolPayouts) error {
	who := "all members"
	if p.Role == "member" {
		who = "account " + p.Account
	}
	fmt.Fprintf(w, "Pool payouts (%s) of contract %s, %s: %s\n", p.Role, p.Contract, who, poolOwedLine(&p.Owed))
	if p.Role == "coordinator" && p.FeeWei != "" {
		fmt.Fprintf(w, "Pool fee %d bps: %s kept\n", p.FeeBPS, etherOf(p.FeeWei))
	}
	if !p.NextPublish.IsZero() {
		fmt.Fprintf(w, "Next publication: %s\n", p.NextPublish.Local().Format(time.RFC3339))
	}
	if len(p.Shares) == 0 {
		_, err := fmt.Fprintln(w, "No paid job has been booked yet.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tMEMBER\tSHARE\tGPU-SECONDS\tSCORE\tSTATE\tEPOCH\tBOOKED")
	for _, s := range p.Shares {
		epoch := "-"
		if s.Epoch != nil {
			epoch = strconv.FormatUint(*s.Epoch, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.2f\t%s\t%s\t%s\n", s.JobID, s.Member, etherOf(s.Wei), s.GPUSeconds, s.Score, s.State, epoch, s.BookedAt.Local().Format(time.RFC3339))
	}
	return tw.Flush()
}

func newPoolPublishCmd() *cobra.Command {
	socket := api.DefaultSocket
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish the booked shares now as a PoolPayouts epoch (on the pool's coordinator)",
		Long: `Publishes every booked, unpublished share as the next epoch of the pool's PoolPayouts
contract, funded with their sum (the coordinator withdraws its JobMarket credit first if
its account holds less). The daemon also does this every pool.payout_interval.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := api.NewClient(socket).PoolPublish(cmd.Context())
			if err != nil {
				return fmt.Errorf("pool publish: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "published epoch %d of %s: %s to %d members for %d jobs (root %s)\n", r.Epoch, r.Contract, etherOf(r.TotalWei), r.Members, r.Jobs, r.Root)
			if r.WithdrawnWei != "" {
				fmt.Fprintf(out, "withdrew %s of JobMarket credit to fund it\n", etherOf(r.WithdrawnWei))
			}
			if r.TxHash != "" {
				fmt.Fprintf(out, "tx %s, gas %d\n", r.TxHash, r.GasUsed)
			} else {
				fmt.Fprintln(out, "(found on chain: it was sent before the daemon restarted)")
			}
			return nil
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	return cmd
}

func newPoolClaimCmd() *cobra.Command {
	socket := api.DefaultSocket
	cmd := &cobra.Command{
		Use:   "claim",
		Short: "Claim every published, unclaimed payout the pool owes this member",
		Long: `Asks the coordinator for this member's payouts, checks each proof against the root on
chain, and claims every unclaimed one from the PoolPayouts contract with the node's
account (which pays the gas).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := api.NewClient(socket).PoolClaim(cmd.Context())
			out := cmd.OutOrStdout()
			for _, c := range r.Claims {
				fmt.Fprintf(out, "claimed epoch %d: %s (tx %s, gas %d)\n", c.Epoch, etherOf(c.Wei), c.TxHash, c.GasUsed)
			}
			if err != nil {
				return fmt.Errorf("pool claim: %w", err)
			}
			if len(r.Claims) == 0 {
				fmt.Fprintln(out, "nothing to claim")
				return nil
			}
			fmt.Fprintf(out, "claimed %s in all to %s\n", etherOf(r.TotalWei), r.Account)
			return nil
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	return cmd
}
