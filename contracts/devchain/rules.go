package devchain

import (
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/params"
)

// ChainConfig is go-ethereum's dev chain configuration up to Osaka, the fork mainnet and
// the L2s run today. go-ethereum's own dev config also enables the experimental
// Amsterdam/Bogota rules (EIP-8037 state-gas metering), which price storage several times
// higher than any chain gpunode would pay on; gas figures and estimates use today's rules.
func ChainConfig() *params.ChainConfig {
	c := *params.AllDevChainProtocolChanges
	c.BogotaTime = nil
	c.AmsterdamTime = nil
	return &c
}

// WithMainnetRules is a simulated.NewBackend option that runs the chain on ChainConfig.
func WithMainnetRules() func(*node.Config, *ethconfig.Config) {
	return func(_ *node.Config, ec *ethconfig.Config) {
		ec.Genesis.Config = ChainConfig()
	}
}
