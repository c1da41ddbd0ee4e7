package node

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/ethereum/go-ethereum/crypto"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/gpunode/gpunode/node/ipfs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/p2p/capacity"
	"github.com/gpunode/gpunode/node/policy"
	"github.com/gpunode/gpunode/node/policy/pooltopic"
	"github.com/gpunode/gpunode/version"
)

// Network is what the node needs of its libp2p presence.
type Network interface {
	Run(ctx context.Context) error
	Close() error
	// ID is the node's peer ID, registered on chain with the provider.
	ID() peer.ID
	// Host and Routing carry the embedded IPFS node (bitswap, the DHT).
	Host() host.Host
	Routing() routing.Routing
	// PubSub carries the pool's policy topic.
	PubSub() *pubsub.PubSub
	// The control API serves the peers, the capacity records and offers.
	P2PBackend
}

// openNetwork starts the p2p host with the node's registry and routes. The capacity it
// advertises comes from the GPU inventory; the record binds the peer ID to the node's
// market account when its key is unlocked, to a key of the node's own otherwise.
// Offers go to offers (nil: the network's own checks only).
func (n *Node) openNetwork(ctx context.Context, mk *market.Market, offers p2p.OfferHandler) error {
	var key *ecdsa.PrivateKey
	if mk != nil {
		key = mk.Key()
	}
	if key == nil {
		var err error
		if key, err = loadBindingKey(n.cfg.Layout().BindingKey()); err != nil {
			return err
		}
	}
	nw, err := p2p.New(ctx, n.cfg.P2P, p2p.Deps{
		DataDir:    n.cfg.DataDir,
		EthKey:     key,
		Snapshot:   n.capacity,
		Log:        n.log,
		Registerer: n.reg,
		Offers:     offers,
	})
	if err != nil {
		return err
	}
	n.deps.Network = nw
	if err := n.openPool(nw); err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	if n.cfg.Policy.PoolKey != "" {
		pool, err := policy.ParsePublicKey(n.cfg.Policy.PoolKey)
		if err != nil {
			return fmt.Errorf("policy.pool_key: %w", err)
		}
		// Signed pool policies travel on the pool's topic; the holder applies what
		// verifies and is newer, and the topic republishes what the node holds.
		n.poolTopic = func(ctx context.Context) error {
			return pooltopic.Run(ctx, pooltopic.Default(), nw.PubSub(), nw.ID(), pool, n.policy, n.log)
		}
	}
	return nil
}

// capacity is the snapshot the network advertises: the rig's GPUs by model, how many
// are free (none while the node is drained, cordoned or paused by its policy), its
// benchmark score, the policy's price floor and the datasets it offers.
func (n *Node) capacity(context.Context) (capacity.Capacity, error) {
	c := capacity.Capacity{PricePerGPUHour: "0", SoftwareVersion: version.Get()}
	if b := n.deps.Benchmark; b != nil {
		if sum := b.Summary(); sum != nil {
			c.Score.Overall = sum.RigScore
		}
	}
	model := ""
	if n.deps.GPUs != nil {
		byModel := map[string]*capacity.GPU{}
		for _, d := range n.deps.GPUs.Devices() {
			g, ok := byModel[d.Name]
			if !ok {
				g = &capacity.GPU{Model: d.Name, MemoryMiB: int(d.MemoryBytes >> 20)}
				byModel[d.Name] = g
			}
			g.Count++
			c.FreeGPUs++
			model = d.Name
		}
		for _, g := range byModel {
			c.GPUs = append(c.GPUs, *g)
		}
		sort.Slice(c.GPUs, func(i, j int) bool { return c.GPUs[i].Model < c.GPUs[j].Model })
	}
	if n.work != nil {
		c.FreeGPUs = n.work.machine.FreeGPUs()
		c.Score.ReportCID = n.work.registrar.Published()
	}
	c.Attestations = n.attestations()
	ad := n.policy.Advert(model)
	if !ad.TakingJobs {
		c.FreeGPUs = 0
	}
	if ad.PriceFloorWei != nil {
		c.PricePerGPUHour = ad.PriceFloorWei.String()
	}
	for _, tag := range ad.Datasets {
		if _, ok := n.cfg.Datasets[tag]; ok {
			c.DatasetTags = append(c.DatasetTags, tag)
		}
	}
	return c, nil
}

// loadBindingKey reads the secp256k1 key whose address the capacity record binds to the
// peer ID, creating it (mode 0600) on first start. Until the node has a wallet this is
// the node's own key; the market engineer's keystore replaces it.
func loadBindingKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := crypto.LoadECDSA(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ethereum key %s: %w", path, err)
	}
	if key, err = crypto.GenerateKey(); err != nil {
		return nil, fmt.Errorf("ethereum key %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ethereum key %s: %w", path, err)
	}
	if err := crypto.SaveECDSA(path, key); err != nil {
		return nil, fmt.Errorf("ethereum key %s: %w", path, err)
	}
	return key, nil
}

// openContent starts the embedded IPFS node on the network's libp2p host.
func (n *Node) openContent() error {
	nw := n.deps.Network
	if nw == nil {
		return errors.New("no IPFS: it runs on the p2p network's host, which is off or failed to start")
	}
	cfg := n.cfg.IPFS
	var chainID uint64
	if n.deps.Market != nil {
		chainID = n.deps.Market.Status().ChainID
	}
	cfg.PublicDHT = ipfs.ResolvePublicDHT(cfg.PublicDHT, chainID, n.deps.Market != nil)
	x, err := ipfs.New(cfg, n.cfg.DataDir, nw.Host(), nw.Routing(), n.log)
	if err != nil {
		return fmt.Errorf("ipfs: %w", err)
	}
	// The control socket's host-path routes never read or write the node's own state.
	x.Protect(n.cfg.DataDir, n.cfg.Market.Keystore, n.cfg.Market.PasswordFile, n.cfg.IPFS.RemotePinning.TokenFile, n.cfg.Runtime.StateDir, n.cfg.Runtime.LogDir)
	n.reg.MustRegister(x.Collector())
	n.ipfs = x
	return nil
}
