package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/contracts/deploy"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
)

// v2Flags reach JobMarketV2 without the daemon: the wallet's flags and the v2 contract.
type v2Flags struct {
	walletFlags
	jobMarketV2 string
	startBlock  uint64
}

func (f *v2Flags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.keystore, "keystore", market.DefaultKeystore, "keystore folder")
	pf.StringVar(&f.passwordFile, "password-file", "", "file whose first line is the keystore password")
	pf.StringVar(&f.passwordEnv, "password-env", market.Default().PasswordEnv, "environment variable holding the password")
	pf.BoolVar(&f.light, "light-kdf", false, "weak scrypt parameters (tests and dev chains only)")
	pf.StringVar(&f.deployment, "deployment", "", "devchain deployment file (sets RPC URL, chain id and the JobMarketV2)")
	pf.StringVar(&f.rpcURL, "rpc-url", "", "Ethereum JSON-RPC endpoint")
	pf.StringVar(&f.jobMarketV2, "job-market-v2", "", "JobMarketV2 contract address")
	pf.Uint64Var(&f.startBlock, "start-block", 0, "block where the JobMarketV2 was deployed (speeds up event searches)")
	pf.Uint64Var(&f.chainID, "chain-id", 0, "chain id (default: asked from the endpoint)")
	pf.StringVar(&f.account, "account", "", "account address (default: the only key in the keystore)")
	pf.Uint64Var(&f.confirm, "confirmations", 1, "confirmations to wait for after a transaction")
}

// dial connects to JobMarketV2, unlocking the account when signer is set.
func (f *v2Flags) dial(cmd *cobra.Command, signer bool) (*market.V2, error) {
	d := market.V2Dial{URL: f.rpcURL, ChainID: f.chainID, StartBlock: f.startBlock, Confirmations: f.confirm}
	if f.jobMarketV2 != "" {
		if !common.IsHexAddress(f.jobMarketV2) {
			return nil, fmt.Errorf("--job-market-v2 %q: not an address", f.jobMarketV2)
		}
		d.Contract = common.HexToAddress(f.jobMarketV2)
	}
	if f.deployment != "" {
		dep, err := deploy.Read(f.deployment)
		if err != nil {
			return nil, err
		}
		d.URL, d.ChainID, d.StartBlock = dep.RPCURL, dep.ChainID, dep.DeployBlock
		if f.jobMarketV2 == "" {
			d.Contract = dep.JobMarketV2
		}
	}
	if d.URL == "" || d.Contract == (common.Address{}) {
		return nil, errors.New("no JobMarketV2: give --deployment (a devchain file) or --rpc-url and --job-market-v2")
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if !signer {
		return market.DialV2(cmd.Context(), d, nil, log)
	}
	pw, err := f.password(cmd, "keystore password: ")
	if err != nil {
		return nil, err
	}
	w := f.wallet()
	addr := common.HexToAddress(f.account)
	if f.account == "" {
		list, err := w.List()
		if err != nil {
			return nil, err
		}
		if len(list) != 1 {
			return nil, fmt.Errorf("keystore %s holds %d keys: pick one with --account", f.keystore, len(list))
		}
		addr = list[0]
	}
	key, err := w.Unlock(addr, pw)
	if err != nil {
		return nil, err
	}
	return market.DialV2(cmd.Context(), d, key, log)
}

// parseWei reads an amount: wei, or a decimal number of ether with an "eth" suffix.
func parseWei(s string) (*big.Int, error) {
	if n, ok := new(big.Int).SetString(s, 10); ok && n.Sign() > 0 {
		return n, nil
	}
	if len(s) > 3 && s[len(s)-3:] == "eth" {
		r, ok := new(big.Rat).SetString(s[:len(s)-3])
		if ok && r.Sign() > 0 {
			r.Mul(r, new(big.Rat).SetInt(big.NewInt(1e18)))
			if r.IsInt() {
				return r.Num(), nil
			}
		}
	}
	return nil, fmt.Errorf("amount %q: want a positive number of wei, or of ether with an eth suffix (1.5eth)", s)
}

func newValidatorCmd() *cobra.Command {
	f := &v2Flags{}
	cmd := &cobra.Command{
		Use:   "validator",
		Short: "The node's stake in the JobMarketV2 validator registry: register, stake, unstake, status",
		Long: `Validators of JobMarketV2 stake ETH in a registry and are drawn at random when a
provider accepts a job; a drawn validator that does not reveal its score loses part of
its stake to the provider. Register once with the node's libp2p peer ID (providers
deliver sealed checkpoints' keys to it), add stake, and unstake to stop being drawn:
the stake can be withdrawn (withdraw-stake, then gpunode wallet withdraw) after the
unbonding period.`,
	}
	f.register(cmd)
	ctxOf := func(cmd *cobra.Command) (context.Context, context.CancelFunc) {
		return context.WithTimeout(cmd.Context(), 10*time.Minute)
	}
	tx := func(cmd *cobra.Command, what string, send func(ctx context.Context, v *market.V2) (common.Hash, uint64, error)) error {
		v, err := f.dial(cmd, true)
		if err != nil {
			return err
		}
		defer v.Close()
		ctx, cancel := ctxOf(cmd)
		defer cancel()
		h, block, err := send(ctx, v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: tx %s (block %d)\n", what, h.Hex(), block)
		return err
	}

	var peerID, stake string
	var socket string
	reg := &cobra.Command{
		Use:   "register",
		Short: "Register the account as a validator with the node's peer ID, staking --stake (default: the minimum)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if peerID == "" {
				p, err := api.NewClient(socket).P2PPeers(cmd.Context())
				if err != nil {
					return fmt.Errorf("no --peer-id, and the daemon did not say its own: %w", err)
				}
				peerID = p.ID
			}
			return tx(cmd, "registered", func(ctx context.Context, v *market.V2) (common.Hash, uint64, error) {
				amount, err := v.MinStake(ctx)
				if err != nil {
					return common.Hash{}, 0, err
				}
				if stake != "" {
					if amount, err = parseWei(stake); err != nil {
						return common.Hash{}, 0, err
					}
				}
				r, err := v.RegisterValidator(ctx, peerID, amount)
				if err != nil {
					return common.Hash{}, 0, err
				}
				return r.TxHash, r.BlockNumber.Uint64(), nil
			})
		},
	}
	reg.Flags().StringVar(&peerID, "peer-id", "", "libp2p peer ID to register (default: the daemon's)")
	reg.Flags().StringVar(&stake, "stake", "", "stake to add, in wei or with an eth suffix (default: the registry's minimum)")
	apiSocketVar(reg.Flags(), &socket)

	var amount string
	stk := &cobra.Command{
		Use:   "stake",
		Short: "Add --amount to the account's stake (bonds it again if it was unbonding)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			wei, err := parseWei(amount)
			if err != nil {
				return err
			}
			return tx(cmd, "staked "+wei.String()+" wei", func(ctx context.Context, v *market.V2) (common.Hash, uint64, error) {
				r, err := v.Stake(ctx, wei)
				if err != nil {
					return common.Hash{}, 0, err
				}
				return r.TxHash, r.BlockNumber.Uint64(), nil
			})
		},
	}
	stk.Flags().StringVar(&amount, "amount", "", "stake to add, in wei or with an eth suffix")
	stk.MarkFlagRequired("amount")

	unstake := &cobra.Command{
		Use:   "unstake",
		Short: "Stop being drawn and start the unbonding period",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return tx(cmd, "unbonding", func(ctx context.Context, v *market.V2) (common.Hash, uint64, error) {
				r, err := v.Unstake(ctx)
				if err != nil {
					return common.Hash{}, 0, err
				}
				return r.TxHash, r.BlockNumber.Uint64(), nil
			})
		},
	}
	withdraw := &cobra.Command{
		Use:   "withdraw-stake",
		Short: "Move an unbonded stake to the account's credit (then: gpunode wallet withdraw)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return tx(cmd, "stake moved to credit", func(ctx context.Context, v *market.V2) (common.Hash, uint64, error) {
				r, err := v.WithdrawStake(ctx)
				if err != nil {
					return common.Hash{}, 0, err
				}
				return r.TxHash, r.BlockNumber.Uint64(), nil
			})
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the account's stake, whether it can be drawn, and its unbonding time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := f.dial(cmd, false)
			if err != nil {
				return err
			}
			defer v.Close()
			if f.account == "" {
				list, err := f.wallet().List()
				if err != nil || len(list) != 1 {
					return errors.New("give --account (the keystore does not hold exactly one key)")
				}
				f.account = list[0].Hex()
			}
			return printValidator(cmd.Context(), cmd.OutOrStdout(), v, common.HexToAddress(f.account))
		},
	}
	cmd.AddCommand(reg, stk, unstake, withdraw, status)
	return cmd
}

func printValidator(ctx context.Context, w io.Writer, v *market.V2, a common.Address) error {
	rec, err := v.Validator(ctx, a)
	if err != nil {
		return err
	}
	min, err := v.MinStake(ctx)
	if err != nil {
		return err
	}
	state := "not registered"
	switch {
	case rec.UnbondAt != nil && rec.UnbondAt.Sign() > 0:
		state = "unbonding until " + time.Unix(rec.UnbondAt.Int64(), 0).UTC().Format(time.RFC3339)
	case rec.PoolIndex > 0:
		state = "drawable"
	case rec.Stake != nil && rec.Stake.Sign() > 0:
		state = "below the minimum stake: not drawn"
	}
	_, err = fmt.Fprintf(w, "validator %s\nstake:   %s wei (minimum %s)\nstate:   %s\nearned:  %s wei\n", a.Hex(), rec.Stake, min, state, rec.Earned)
	return err
}
