package market

import (
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/node/datadir"
)

// Config configures the chain side of the node.
type Config struct {
	// Deployment is a deployment file written by `gpunode devchain`; when set it supplies
	// rpc_url, chain_id, job_market and start_block.
	Deployment string `toml:"deployment"`
	// RPCURL is the Ethereum JSON-RPC endpoint.
	RPCURL string `toml:"rpc_url"`
	// ChainID is the chain's id; the node refuses an endpoint that reports another.
	ChainID uint64 `toml:"chain_id"`
	// JobMarket is the JobMarket contract address.
	JobMarket string `toml:"job_market"`
	// JobMarketV2 is the JobMarketV2 contract address (staked validators, commit-reveal,
	// sealed checkpoints); empty when the chain has none. A deployment file supplies it.
	JobMarketV2 string `toml:"job_market_v2"`
	// StartBlock is where event watching begins on first start (the deployment block).
	StartBlock uint64 `toml:"start_block"`
	// Keystore is the folder of encrypted keys (go-ethereum's format).
	Keystore string `toml:"keystore"`
	// Account is the address to use; empty means the only key in the keystore.
	Account string `toml:"account"`
	// PasswordFile holds the keystore password; PasswordEnv names an environment
	// variable holding it. Without either the node runs watch-only.
	PasswordFile string `toml:"password_file"`
	PasswordEnv  string `toml:"password_env"`
	// CursorFile keeps the event watcher's position across restarts.
	CursorFile string `toml:"cursor_file"`
	// Confirmations is the depth after which events are handled and transactions final.
	Confirmations uint64 `toml:"confirmations"`
	// PollInterval is the time between watcher rounds.
	PollInterval time.Duration `toml:"poll_interval"`
	// CallTimeout bounds one RPC call; Retries is how often a failed one is retried.
	CallTimeout time.Duration `toml:"call_timeout"`
	Retries     int           `toml:"retries"`
	// BumpAfter is how long a transaction may stay unmined before its fee is raised by
	// BumpPercent; MaxFeeGwei caps the fee.
	BumpAfter   time.Duration `toml:"bump_after"`
	BumpPercent uint64        `toml:"bump_percent"`
	MaxFeeGwei  uint64        `toml:"max_fee_gwei"`
	// AutoWithdrawWei makes the node withdraw its credit (rewards, validator fees) as
	// soon as it reaches this many wei; empty or "0" leaves withdrawing to the operator.
	AutoWithdrawWei string `toml:"auto_withdraw_wei"`
}

// AutoWithdraw is the parsed auto_withdraw_wei: nil when off.
func (c Config) AutoWithdraw() *big.Int {
	v, ok := new(big.Int).SetString(c.AutoWithdrawWei, 10)
	if !ok || v.Sign() <= 0 {
		return nil
	}
	return v
}

// DefaultKeystore is the keystore folder of a node with the default data directory.
const DefaultKeystore = "/var/lib/gpunode/keystore"

// Default returns the defaults. The paths are left empty: Resolved derives them from the
// node's data directory.
func Default() Config {
	return Config{
		PasswordEnv: "GPUNODE_WALLET_PASSWORD", Confirmations: 3,
		PollInterval: 2 * time.Second, CallTimeout: 10 * time.Second, Retries: 3,
		BumpAfter: 45 * time.Second, BumpPercent: 20, MaxFeeGwei: 500,
	}
}

// Resolved fills the paths left empty with places under dataDir: the keystore, the
// watcher's cursor, and, when no chain is configured at all, the deployment file that
// `gpunode devchain` writes there (which `make run` does).
func (c Config) Resolved(dataDir string) Config {
	l := datadir.New(dataDir)
	if c.Keystore == "" {
		c.Keystore = l.Keystore()
	}
	if c.CursorFile == "" {
		c.CursorFile = l.ChainCursor()
	}
	if c.Deployment == "" && c.RPCURL == "" {
		c.Deployment = l.Devchain()
	}
	return c
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.Deployment == "" {
		if u, err := url.Parse(c.RPCURL); c.RPCURL == "" || err != nil || (u.Scheme == "" && u.Path == "") {
			errs = append(errs, fmt.Errorf("rpc_url %q: must be an http(s)/ws(s) URL or an IPC path (or set deployment)", c.RPCURL))
		}
		if c.ChainID == 0 {
			errs = append(errs, errors.New("chain_id: must be set (or set deployment)"))
		}
		if c.JobMarketV2 != "" && !common.IsHexAddress(c.JobMarketV2) {
			errs = append(errs, fmt.Errorf("job_market_v2 %q: must be a 0x address", c.JobMarketV2))
		}
		if !common.IsHexAddress(c.JobMarket) {
			errs = append(errs, fmt.Errorf("job_market %q: must be a 0x address (or set deployment)", c.JobMarket))
		}
	}
	if c.Account != "" && !common.IsHexAddress(c.Account) {
		errs = append(errs, fmt.Errorf("account %q: must be a 0x address", c.Account))
	}
	if c.Keystore == "" {
		errs = append(errs, errors.New("keystore: must not be empty"))
	}
	if c.CursorFile == "" {
		errs = append(errs, errors.New("cursor_file: must not be empty"))
	}
	if c.Confirmations == 0 || c.Confirmations > 1000 {
		errs = append(errs, fmt.Errorf("confirmations %d: must be 1-1000", c.Confirmations))
	}
	if c.PollInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("poll_interval %s: must be at least 10ms", c.PollInterval))
	}
	if c.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("call_timeout %s: must be positive", c.CallTimeout))
	}
	if c.Retries < 0 || c.Retries > 100 {
		errs = append(errs, fmt.Errorf("retries %d: must be 0-100", c.Retries))
	}
	if c.BumpPercent < 10 {
		errs = append(errs, fmt.Errorf("bump_percent %d: nodes replace a transaction only for at least 10%%", c.BumpPercent))
	}
	if c.MaxFeeGwei == 0 {
		errs = append(errs, errors.New("max_fee_gwei: must be positive"))
	}
	if c.AutoWithdrawWei != "" {
		if v, ok := new(big.Int).SetString(c.AutoWithdrawWei, 10); !ok || v.Sign() < 0 {
			errs = append(errs, fmt.Errorf("auto_withdraw_wei %q: must be a whole number of wei (\"\" or \"0\": off)", c.AutoWithdrawWei))
		}
	}
	return errs
}

// txConfig derives the transaction manager's settings.
func (c Config) txConfig() TxConfig {
	t := DefaultTxConfig()
	t.ChainID = c.ChainID
	t.Confirmations = c.Confirmations
	t.BumpAfter = c.BumpAfter
	t.BumpPercent = c.BumpPercent
	t.MaxFeePerGas = new(big.Int).Mul(new(big.Int).SetUint64(c.MaxFeeGwei), big.NewInt(params.GWei))
	t.PollInterval = min(c.PollInterval, time.Second)
	return t
}
