package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/params"
	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/contracts/deploy"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
)

// walletFlags are shared by the wallet subcommands.
type walletFlags struct {
	keystore     string
	passwordFile string
	passwordEnv  string
	light        bool
	deployment   string
	rpcURL       string
	jobMarket    string
	token        string
	chainID      uint64
	account      string
	confirm      uint64
}

func (f *walletFlags) wallet() *market.Wallet { return market.NewWallet(f.keystore, f.light) }

// password reads the password from --password-file, the environment, or a prompt when
// stdin is a terminal.
func (f *walletFlags) password(cmd *cobra.Command, prompt string) (string, error) {
	src := market.PasswordSource{File: f.passwordFile, Env: f.passwordEnv}
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		src.Prompt, src.In, src.Out = prompt, cmd.InOrStdin(), cmd.ErrOrStderr()
	}
	return src.Read()
}

// chain resolves the RPC URL, chain id and contract from --deployment or the flags.
func (f *walletFlags) chain() (url string, chainID uint64, contract, token common.Address, err error) {
	url, chainID = f.rpcURL, f.chainID
	if f.jobMarket != "" {
		contract = common.HexToAddress(f.jobMarket)
	}
	if f.token != "" {
		token = common.HexToAddress(f.token)
	}
	if f.deployment != "" {
		d, err := deploy.Read(f.deployment)
		if err != nil {
			return "", 0, contract, token, err
		}
		url, chainID, contract = d.RPCURL, d.ChainID, d.JobMarket
		if f.token == "" {
			token = d.Token
		}
	}
	if url == "" || contract == (common.Address{}) {
		return "", 0, contract, token, errors.New("no chain: give --deployment (a devchain file) or --rpc-url and --job-market")
	}
	return url, chainID, contract, token, nil
}

func newWalletCmd() *cobra.Command {
	f := &walletFlags{}
	cmd := &cobra.Command{
		Use:   "wallet",
		Short: "Manage the node's Ethereum keys (go-ethereum keystore format) and its JobMarket earnings",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.keystore, "keystore", market.DefaultKeystore, "keystore folder")
	pf.StringVar(&f.passwordFile, "password-file", "", "file whose first line is the keystore password")
	pf.StringVar(&f.passwordEnv, "password-env", market.Default().PasswordEnv, "environment variable holding the password")
	pf.BoolVar(&f.light, "light-kdf", false, "weak scrypt parameters (tests and dev chains only)")
	pf.StringVar(&f.deployment, "deployment", "", "devchain deployment file (sets RPC URL, chain id, contract and token)")
	pf.StringVar(&f.rpcURL, "rpc-url", "", "Ethereum JSON-RPC endpoint")
	pf.StringVar(&f.jobMarket, "job-market", "", "JobMarket contract address")
	pf.StringVar(&f.token, "token", "", "ERC-20 address for balance and withdraw (default: ETH, or the devchain token for balance)")
	pf.Uint64Var(&f.chainID, "chain-id", 0, "chain id (default: asked from the endpoint)")
	pf.StringVar(&f.account, "account", "", "account address (default: the only key in the keystore)")
	pf.Uint64Var(&f.confirm, "confirmations", 1, "confirmations to wait for after withdraw")

	cmd.AddCommand(&cobra.Command{
		Use:   "new",
		Short: "Create a key and print its address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := f.password(cmd, "password for the new key: ")
			if err != nil {
				return err
			}
			if pw == "" {
				return errors.New("refusing an empty password")
			}
			addr, err := f.wallet().New(pw)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), addr.Hex())
			return err
		},
	})

	var sourcePwFile, sourcePwEnv string
	var hexKey bool
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a keystore file (from geth or any v3 keystore) or, with --hex, a file holding a raw hex key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readSmall(args[0])
			if err != nil {
				return err
			}
			pw, err := f.password(cmd, "password for the imported key: ")
			if err != nil {
				return err
			}
			var addr common.Address
			if hexKey {
				addr, err = f.wallet().ImportHex(string(b), pw)
			} else {
				src := market.PasswordSource{File: sourcePwFile, Env: sourcePwEnv}
				if fi, e := os.Stdin.Stat(); e == nil && fi.Mode()&os.ModeCharDevice != 0 {
					src.Prompt, src.In, src.Out = "password of "+args[0]+": ", cmd.InOrStdin(), cmd.ErrOrStderr()
				}
				var old string
				if old, err = src.Read(); err != nil {
					return err
				}
				addr, err = f.wallet().ImportKeyJSON(b, old, pw)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), addr.Hex())
			return err
		},
	}
	imp.Flags().StringVar(&sourcePwFile, "source-password-file", "", "file holding the imported file's password")
	imp.Flags().StringVar(&sourcePwEnv, "source-password-env", "GPUNODE_IMPORT_PASSWORD", "environment variable holding the imported file's password")
	imp.Flags().BoolVar(&hexKey, "hex", false, "FILE holds a raw hex private key")
	cmd.AddCommand(imp)

	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the keystore's addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := f.wallet().List()
			if err != nil {
				return err
			}
			for _, a := range list {
				fmt.Fprintln(cmd.OutOrStdout(), a.Hex())
			}
			return nil
		},
	})

	cmd.AddCommand(&cobra.Command{
		Use:   "balance [ADDRESS]",
		Short: "Show ETH balance and withdrawable JobMarket credit",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url, _, contract, token, err := f.chain()
			if err != nil {
				return err
			}
			var addrs []common.Address
			switch {
			case len(args) == 1:
				if !common.IsHexAddress(args[0]) {
					return fmt.Errorf("%q is not an address", args[0])
				}
				addrs = []common.Address{common.HexToAddress(args[0])}
			default:
				if addrs, err = f.wallet().List(); err != nil {
					return err
				}
			}
			c, err := market.Dial(market.ClientConfig{URL: url, Retries: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			for _, a := range addrs {
				bal, err := c.BalanceAt(ctx, a)
				if err != nil {
					return err
				}
				credit, err := market.Credit(ctx, c, contract, common.Address{}, a)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s\tbalance %s ETH\tcredit %s ETH", a.Hex(), ether(bal), ether(credit))
				if token != (common.Address{}) {
					tc, err := market.Credit(ctx, c, contract, token, a)
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "\tcredit %s (token %s)", tc, token.Hex())
				}
				fmt.Fprintln(out)
			}
			return nil
		},
	})

	var viaDaemon string
	withdraw := &cobra.Command{
		Use:   "withdraw",
		Short: "Withdraw the account's JobMarket credit (ETH, or --token) and wait for confirmation",
		Long: `withdraw pays out the account's whole JobMarket credit: a provider's rewards, a
validator's fees, a sponsor's refunds. With --api-socket the running daemon, which holds
the key, sends the transaction (so it does not compete with the daemon's own for nonces);
otherwise it is signed here with a key from the keystore.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("api-socket") {
				r, err := api.NewClient(viaDaemon).Withdraw(cmd.Context(), api.WithdrawRequest{Token: f.token})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "withdrew %s wei in tx %s (block %d)\n", r.Amount, r.TxHash, r.Block)
				return err
			}
			url, chainID, contract, _, err := f.chain()
			if err != nil {
				return err
			}
			var token common.Address
			if f.token != "" {
				token = common.HexToAddress(f.token)
			}
			pw, err := f.password(cmd, "keystore password: ")
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			r, amount, err := market.WithdrawOffline(cmd.Context(), market.OfflineWithdrawal{
				RPCURL: url, ChainID: chainID, Contract: contract, Token: token,
				Wallet: f.wallet(), Account: f.account, Password: pw, Confirmations: f.confirm,
			}, log)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "withdrew %s wei in tx %s (block %d)\n", amount, r.TxHash.Hex(), r.BlockNumber)
			return err
		},
	}
	apiSocketVar(withdraw.Flags(), &viaDaemon)
	cmd.AddCommand(withdraw)
	return cmd
}

func readSmall(p string) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.Size() > 64<<10 {
		return nil, fmt.Errorf("%s: too large for a key file", p)
	}
	return os.ReadFile(p)
}

// ether formats wei as ETH with up to 18 decimals.
func ether(wei *big.Int) string {
	f := new(big.Float).Quo(new(big.Float).SetInt(wei), big.NewFloat(params.Ether))
	return f.Text('f', 6)
}
