// Package deploy is the deployment file: which chain (id, RPC endpoint), which JobMarket
// contracts and which token, from which block, as `gpunode devchain` writes it and the node
// and the CLI read it. It is apart from the dev chain so that the daemon reads the file
// without linking the simulated backend and the mock contracts.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum/common"
)

// Account is a funded account and its key: a dev chain's, whose keys are public
// knowledge (never send real value to them).
type Account struct {
	Address    common.Address `json:"address"`
	PrivateKey string         `json:"private_key"`
}

// Deployment says where the JobMarket lives on which chain.
type Deployment struct {
	Version   int            `json:"version"`
	ChainID   uint64         `json:"chain_id"`
	RPCURL    string         `json:"rpc_url"`
	JobMarket common.Address `json:"job_market"`
	// JobMarketV2 is the v2 market (staked validators, commit-reveal, sealed checkpoints);
	// absent in files written before it existed.
	JobMarketV2 common.Address `json:"job_market_v2,omitempty"`
	Token       common.Address `json:"token"`
	DeployBlock uint64         `json:"deploy_block"`
	Accounts    []Account      `json:"accounts"`
}

// Write writes d to path atomically (0600: it holds the dev keys).
func Write(path string, d Deployment) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("deployment %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("deployment %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("deployment %s: %w", path, err)
	}
	return nil
}

// maxBytes bounds a deployment file.
const maxBytes = 1 << 20

// Read reads and checks a deployment file; unknown fields are an error.
func Read(path string) (Deployment, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", path, err)
	}
	d, err := Parse(b)
	if err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", path, err)
	}
	return d, nil
}

// Parse decodes and checks a deployment document.
func Parse(b []byte) (Deployment, error) {
	if len(b) > maxBytes {
		return Deployment{}, fmt.Errorf("larger than %d bytes", maxBytes)
	}
	var d Deployment
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Deployment{}, err
	}
	if d.Version != 1 {
		return Deployment{}, fmt.Errorf("version %d: want 1", d.Version)
	}
	if d.ChainID == 0 {
		return Deployment{}, errors.New("chain_id: missing")
	}
	if d.JobMarket == (common.Address{}) {
		return Deployment{}, errors.New("job_market: missing")
	}
	if d.RPCURL == "" {
		return Deployment{}, errors.New("rpc_url: missing")
	}
	return d, nil
}
