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
		Short: "Pool operators: keys, signed pool policies, members",
	}
	cmd.AddCommand(newPoolKeygenCmd(), newPoolSignCmd(), newPoolVerifyCmd(), newPoolPushCmd(), newPoolMembersCmd())
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
