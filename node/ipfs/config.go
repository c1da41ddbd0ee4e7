package ipfs

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Modes say where content lives.
const (
	// ModeEmbedded keeps blocks in the node's own blockstore and serves them with
	// bitswap on the node's libp2p host. No external daemon is needed.
	ModeEmbedded = "embedded"
	// ModeKubo sends adds, fetches and pins to a kubo daemon through its RPC API.
	ModeKubo = "kubo"
)

// Config configures the node's IPFS component.
type Config struct {
	// Mode is "embedded" (default: blockstore + bitswap in this process) or "kubo"
	// (a kubo daemon reached through KuboAPI does the IPFS work).
	Mode string `toml:"mode"`
	// Dir holds the blockstore, the pin set and the input cache. Relative paths are
	// relative to the node's data directory.
	Dir string `toml:"dir"`
	// MaxStorageBytes caps the blockstore. When an add or a fetch would pass it,
	// unpinned blocks are garbage-collected first; if that is not enough it fails.
	MaxStorageBytes int64 `toml:"max_storage_bytes"`
	// MaxFetchBytes caps the size of one fetched input: the bytes of its blocks as
	// fetched, and the bytes of its files as written out, every repeated link counted.
	MaxFetchBytes int64 `toml:"max_fetch_bytes"`
	// MaxFetchEntries caps the files, directories and symlinks of one fetched input,
	// every repeated link counted.
	MaxFetchEntries int64 `toml:"max_fetch_entries"`
	// MaxFetchDepth caps the depth of one fetched input's DAG (directories and the
	// levels of its files' block trees).
	MaxFetchDepth int `toml:"max_fetch_depth"`
	// FetchTimeout bounds one fetch, from the first block request to the last file
	// written to the input cache.
	FetchTimeout Duration `toml:"fetch_timeout"`
	// ReprovideInterval is how often pinned roots are announced again on the DHT.
	// Zero disables reproviding (roots are still provided once when added).
	ReprovideInterval Duration `toml:"reprovide_interval"`
	// SyncWrites makes every stored block durable (fdatasync, and the folder it
	// is renamed into) before an add records its pin or a fetch batch completes.
	// Off by default, like kubo's flatfs ("sync": false): a block torn by a crash
	// fails its hash check on read and is fetched or added again.
	SyncWrites bool `toml:"sync_writes"`
	// KuboAPI is the kubo RPC endpoint used in kubo mode, e.g. "http://127.0.0.1:5001".
	KuboAPI string `toml:"kubo_api"`
	// HostPaths are the folders in which POST /v1/ipfs/add may read and POST
	// /v1/ipfs/get may write host paths for a caller of the control socket; the node's
	// own state is refused even inside them. Default none: the CLI streams content
	// through the socket instead.
	HostPaths []string `toml:"host_paths"`
	// PublicDHT also announces the node's content (published checkpoints, added inputs)
	// on the public IPFS DHT, as kubo does, so that a researcher's plain kubo or a
	// gateway finds it without a pinning service: "on", "off", or "auto" (on for a node
	// on a real chain, off on the dev chain or without a chain).
	PublicDHT string `toml:"public_dht"`
	// PublicBootstrapPeers seed the public DHT (default: libp2p's public bootstrap peers).
	PublicBootstrapPeers []string `toml:"public_bootstrap_peers"`
	// RemotePinning, when its Endpoint is set, asks an IPFS Pinning Service to pin
	// every published checkpoint so it outlives the rig.
	RemotePinning RemotePinningConfig `toml:"remote_pinning"`
}

// RemotePinningConfig names an IPFS Pinning Service API endpoint.
type RemotePinningConfig struct {
	// Endpoint is the service's base URL (the one that /pins is appended to).
	Endpoint string `toml:"endpoint"`
	// TokenFile holds the service's bearer token, so it stays out of the config.
	TokenFile string `toml:"token_file"`
	// Timeout bounds each request to the service.
	Timeout Duration `toml:"timeout"`
}

// Duration is a time.Duration written as "90s" or "24h" in TOML.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Default returns the embedded configuration.
func Default() Config {
	return Config{
		Mode:                 ModeEmbedded,
		Dir:                  "ipfs",
		MaxStorageBytes:      200 << 30,
		MaxFetchBytes:        100 << 30,
		MaxFetchEntries:      1_000_000,
		MaxFetchDepth:        128,
		FetchTimeout:         Duration(6 * time.Hour),
		ReprovideInterval:    Duration(22 * time.Hour),
		KuboAPI:              "http://127.0.0.1:5001",
		PublicDHT:            PublicDHTAuto,
		PublicBootstrapPeers: DefaultPublicBootstrapPeers(),
		RemotePinning:        RemotePinningConfig{Timeout: Duration(time.Minute)},
	}
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() []error {
	var errs []error
	switch c.Mode {
	case ModeEmbedded:
	case ModeKubo:
		if err := checkURL(c.KuboAPI); err != nil {
			errs = append(errs, fmt.Errorf("kubo_api: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not %q or %q", c.Mode, ModeEmbedded, ModeKubo))
	}
	switch c.PublicDHT {
	case PublicDHTAuto, PublicDHTOn, PublicDHTOff:
	default:
		errs = append(errs, fmt.Errorf("public_dht: %q is not %q, %q or %q", c.PublicDHT, PublicDHTAuto, PublicDHTOn, PublicDHTOff))
	}
	for _, s := range c.PublicBootstrapPeers {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			errs = append(errs, fmt.Errorf("public_bootstrap_peers: %q: %w", s, err))
		}
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("dir: must not be empty"))
	}
	if c.MaxStorageBytes <= 0 {
		errs = append(errs, errors.New("max_storage_bytes: must be positive"))
	}
	if c.MaxFetchBytes <= 0 {
		errs = append(errs, errors.New("max_fetch_bytes: must be positive"))
	}
	if c.MaxFetchEntries <= 0 {
		errs = append(errs, errors.New("max_fetch_entries: must be positive"))
	}
	if c.MaxFetchDepth <= 0 {
		errs = append(errs, errors.New("max_fetch_depth: must be positive"))
	}
	if c.FetchTimeout <= 0 {
		errs = append(errs, errors.New("fetch_timeout: must be positive"))
	}
	for i, p := range c.HostPaths {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("host_paths[%d] %q: must be absolute", i, p))
		}
	}
	if c.ReprovideInterval < 0 {
		errs = append(errs, errors.New("reprovide_interval: must not be negative"))
	}
	if rp := c.RemotePinning; rp.Endpoint != "" {
		if err := checkURL(rp.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("remote_pinning.endpoint: %w", err))
		}
		if rp.TokenFile == "" {
			errs = append(errs, errors.New("remote_pinning.token_file: required with an endpoint"))
		}
		if rp.Timeout <= 0 {
			errs = append(errs, errors.New("remote_pinning.timeout: must be positive"))
		}
	}
	return errs
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}
