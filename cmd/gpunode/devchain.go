package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/contracts/devchain"
)

func newDevchainCmd() *cobra.Command {
	cfg := devchain.Default()
	cmd := &cobra.Command{
		Use:   "devchain",
		Short: "Run an in-process Ethereum dev chain with the JobMarket deployed (development only)",
		Long: `devchain starts a go-ethereum chain in this process, serving JSON-RPC on loopback.
It mines a block every --block-period, deploys the JobMarket and JobMarketV2 contracts
(v2: 1 ETH minimum validator stake, 0.5 ETH slash, 7 days unbonding) and a test token,
funds dev accounts, and writes the chain id, RPC URL, contract addresses and the dev
account keys (public knowledge: never send real value to them) to --out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			c, err := devchain.Start(cfg, log)
			if err != nil {
				return err
			}
			return c.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "loopback host:port for JSON-RPC")
	f.DurationVar(&cfg.BlockPeriod, "block-period", cfg.BlockPeriod, "time between blocks")
	f.IntVar(&cfg.Accounts, "accounts", cfg.Accounts, "number of funded dev accounts")
	f.StringVar(&cfg.Out, "out", cfg.Out, "file to write the deployment (chain id, RPC URL, addresses, dev keys) to")
	return cmd
}
