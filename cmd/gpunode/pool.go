package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/policy"
)

func newPoolCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Pool operators: keys and signed pool policies",
	}
	cmd.AddCommand(newPoolKeygenCmd(), newPoolSignCmd(), newPoolVerifyCmd(), newPoolPushCmd())
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
