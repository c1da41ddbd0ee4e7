// Package devchain runs an in-process go-ethereum chain for development and tests: it
// serves JSON-RPC on loopback, mines on its own, deploys the JobMarket, the JobMarketV2
// (with DevRegistry's terms) and a test token, funds dev accounts and writes a Deployment
// file that the node and the CLI read. RegisterValidator stakes a dev account as a v2
// validator.
// Dev account keys are derived from public strings: never send real value to them.
package devchain

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings/mocks"
	"github.com/gpunode/gpunode/contracts/deploy"
)

// ChainID is the simulated backend's chain id.
const ChainID = 1337

// Config configures the dev chain.
type Config struct {
	// Listen is the loopback host:port of the JSON-RPC server.
	Listen string `toml:"listen"`
	// BlockPeriod is how often a block is mined (pending transactions wait at most this).
	BlockPeriod time.Duration `toml:"block_period"`
	// Accounts is how many dev accounts are funded.
	Accounts int `toml:"accounts"`
	// Out is where the Deployment JSON is written.
	Out string `toml:"out"`
}

// Default returns the dev chain's defaults.
func Default() Config {
	return Config{Listen: "127.0.0.1:8545", BlockPeriod: time.Second, Accounts: 5, Out: "devchain.json"}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	} else {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			errs = append(errs, fmt.Errorf("listen %q: the dev chain serves loopback only", c.Listen))
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("listen %q: port must be 1-65535", c.Listen))
		}
	}
	if c.BlockPeriod < 10*time.Millisecond || c.BlockPeriod > time.Minute {
		errs = append(errs, fmt.Errorf("block_period %s: must be between 10ms and 1m", c.BlockPeriod))
	}
	if c.Accounts < 1 || c.Accounts > 100 {
		errs = append(errs, fmt.Errorf("accounts %d: must be 1-100", c.Accounts))
	}
	if c.Out == "" {
		errs = append(errs, errors.New("out: must not be empty"))
	}
	return errs
}

// Account is a funded dev account. Its key is public knowledge.
type Account = deploy.Account

// Deployment is what the dev chain writes for the node and the CLI.
type Deployment = deploy.Deployment

// DevRegistry is the dev chain's JobMarketV2 registry: a 1 ETH minimum stake, half of it
// slashed for a missed reveal, and a 7-day unbonding period (so jobs may last 3.5 days).
func DevRegistry() contracts.RegistryParams {
	return contracts.RegistryParams{
		MinStake:        big.NewInt(params.Ether),
		SlashAmount:     big.NewInt(params.Ether / 2),
		UnbondingPeriod: 7 * 24 * time.Hour,
	}
}

// DevKey is dev account i's key: keccak256("gpunode devchain account <i>").
func DevKey(i int) *ecdsa.PrivateKey {
	k, err := crypto.ToECDSA(crypto.Keccak256([]byte("gpunode devchain account " + strconv.Itoa(i))))
	if err != nil {
		panic(err)
	}
	return k
}

// Chain is a running dev chain.
type Chain struct {
	cfg Config
	log *slog.Logger
	sim *simulated.Backend
	dep Deployment
}

// Start launches the chain, deploys the contracts, funds the accounts and writes cfg.Out.
func Start(cfg Config, log *slog.Logger) (*Chain, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("devchain config: %w", errors.Join(errs...))
	}
	host, portStr, _ := net.SplitHostPort(cfg.Listen)
	port, _ := strconv.Atoi(portStr)
	balance := new(big.Int).Mul(big.NewInt(1_000_000), big.NewInt(params.Ether))
	alloc := types.GenesisAlloc{}
	var accounts []Account
	for i := range cfg.Accounts {
		k := DevKey(i)
		a := crypto.PubkeyToAddress(k.PublicKey)
		alloc[a] = types.Account{Balance: balance}
		accounts = append(accounts, Account{Address: a, PrivateKey: hexutil.Encode(crypto.FromECDSA(k))})
	}
	sim := simulated.NewBackend(alloc, WithMainnetRules(), func(nc *node.Config, _ *ethconfig.Config) {
		nc.HTTPHost = host
		nc.HTTPPort = port
		nc.HTTPModules = []string{"eth", "net", "web3"}
		nc.HTTPVirtualHosts = []string{"localhost"}
		nc.AuthPort = 0
	})
	c := &Chain{cfg: cfg, log: log.With("component", "devchain"), sim: sim}
	dep, err := c.deploy(accounts)
	if err != nil {
		sim.Close()
		return nil, err
	}
	dep.RPCURL = "http://" + cfg.Listen
	c.dep = dep
	if err := WriteDeployment(cfg.Out, dep); err != nil {
		sim.Close()
		return nil, err
	}
	c.log.Info("dev chain ready", "rpc_url", dep.RPCURL, "job_market", dep.JobMarket, "token", dep.Token, "file", cfg.Out)
	return c, nil
}

// deploy creates the JobMarket and a mintable token, and gives every account tokens.
func (c *Chain) deploy(accounts []Account) (Deployment, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := c.sim.Client()
	opts := bind.NewKeyedTransactor(DevKey(0), big.NewInt(ChainID))
	opts.Context = ctx
	// Nonces are counted here: the pool's pending nonce lags right after a send.
	nonce := uint64(0)
	next := func() *bind.TransactOpts {
		o := *opts
		o.Nonce = new(big.Int).SetUint64(nonce)
		nonce++
		return &o
	}
	market, tx1, err := contracts.DeployJobMarket(next(), client)
	if err != nil {
		return Deployment{}, err
	}
	token, tx2, err := bind.DeployContract(next(), common.FromHex(mocks.MockTokenMetaData.Bin), client, nil)
	if err != nil {
		return Deployment{}, fmt.Errorf("deploy token: %w", err)
	}
	market2, tx3, err := contracts.DeployJobMarketV2(next(), client, DevRegistry())
	if err != nil {
		return Deployment{}, err
	}
	// The mints are estimated against the token's code: it must be mined first.
	if err := c.mine(ctx, tx1, tx2, tx3); err != nil {
		return Deployment{}, err
	}
	var txs []*types.Transaction
	tok := mocks.NewMockToken()
	amount := new(big.Int).Mul(big.NewInt(1_000_000), big.NewInt(params.Ether))
	for _, a := range accounts {
		tx, err := bind.Transact(tok.Instance(client, token), next(), tok.PackMint(a.Address, amount))
		if err != nil {
			return Deployment{}, fmt.Errorf("mint: %w", err)
		}
		txs = append(txs, tx)
	}
	if err := c.mine(ctx, txs...); err != nil {
		return Deployment{}, err
	}
	var block uint64
	for _, tx := range append([]*types.Transaction{tx1, tx2, tx3}, txs...) {
		r, err := client.TransactionReceipt(ctx, tx.Hash())
		if err != nil {
			return Deployment{}, fmt.Errorf("deploy receipt %s: %w", tx.Hash(), err)
		}
		if r.Status != types.ReceiptStatusSuccessful {
			return Deployment{}, fmt.Errorf("deploy transaction %s failed", tx.Hash())
		}
		if tx == tx1 {
			block = r.BlockNumber.Uint64()
		}
	}
	return Deployment{Version: 1, ChainID: ChainID, JobMarket: market, JobMarketV2: market2, Token: token, DeployBlock: block, Accounts: accounts}, nil
}

// mine commits blocks until every tx has a receipt: the pool can take a moment to offer
// a transaction just sent, so one Commit may leave it out.
func (c *Chain) mine(ctx context.Context, txs ...*types.Transaction) error {
	client := c.sim.Client()
	for range 200 {
		c.sim.Commit()
		missing := 0
		for _, tx := range txs {
			if _, err := client.TransactionReceipt(ctx, tx.Hash()); err != nil {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return errors.New("devchain: deployment transactions were not mined")
}

// Deployment is what Start wrote.
func (c *Chain) Deployment() Deployment { return c.dep }

// Run mines a block every BlockPeriod until ctx ends, then shuts the chain down.
func (c *Chain) Run(ctx context.Context) error {
	defer c.sim.Close()
	t := time.NewTicker(c.cfg.BlockPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.sim.Commit()
		}
	}
}

// Close stops a chain that is not running.
func (c *Chain) Close() error { return c.sim.Close() }

// WriteDeployment writes d to path (deploy.Write).
func WriteDeployment(path string, d Deployment) error { return deploy.Write(path, d) }

// ReadDeployment reads and checks a deployment file (deploy.Read).
func ReadDeployment(path string) (Deployment, error) { return deploy.Read(path) }

// ParseDeployment decodes and checks a deployment document (deploy.Parse).
func ParseDeployment(b []byte) (Deployment, error) { return deploy.Parse(b) }
