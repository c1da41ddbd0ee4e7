// Package p2p is the node's libp2p side: a host with a persistent identity, TCP and
// QUIC, NAT traversal, a Kademlia DHT under the gpunode protocol prefix, mDNS, the
// capacity records every rig publishes on gossipsub, the market view built from them,
// and the direct offer protocol.
//
// New builds a Network from a Config and Deps, Run publishes and maintains it until
// the context ends, and Routes exposes it on the control API. Other subsystems that
// need the host (embedded IPFS, report signing) use Host, Routing and PrivateKey.
package p2p

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gpunode/gpunode/internal/configfile"
)

// Config configures the network.
type Config struct {
	// Enabled puts the node on the network. Off, it neither advertises its capacity
	// nor receives offers; the network code is not run at all.
	Enabled bool `toml:"enabled"`
	// ListenAddrs are the multiaddrs to listen on (TCP and QUIC).
	ListenAddrs []string `toml:"listen_addrs"`
	// AnnounceAddrs, if set, replace the addresses the host advertises (a public
	// address behind port forwarding, say).
	AnnounceAddrs []string `toml:"announce_addrs"`
	// BootstrapPeers are full multiaddrs (with /p2p/<id>) dialled at start and
	// used to seed the DHT.
	BootstrapPeers []string `toml:"bootstrap_peers"`
	// DHTMode is "auto" (server once publicly reachable), "server" or "client".
	DHTMode string `toml:"dht_mode"`
	// MDNS finds rigs on the same LAN by multicast. Off by default: it announces the
	// rig to everyone on the LAN.
	MDNS bool `toml:"mdns"`
	// AutoNAT serves reachability checks to other peers.
	AutoNAT bool `toml:"autonat"`
	// Relay lets the host use circuit relay v2 to be reachable behind NAT.
	Relay bool `toml:"relay"`
	// StaticRelays are relay multiaddrs used by AutoRelay when Relay is on.
	StaticRelays []string `toml:"static_relays"`
	// RelayService makes this host a relay for others (public rigs only).
	RelayService bool `toml:"relay_service"`
	// HolePunching upgrades relayed connections to direct ones (needs Relay).
	HolePunching bool `toml:"hole_punching"`
	// NATPortMap asks the router for a port mapping (UPnP / NAT-PMP). Off by default:
	// it opens a port on the operator's router.
	NATPortMap bool `toml:"nat_port_map"`
	// ConnLow and ConnHigh are the connection manager watermarks: above ConnHigh,
	// connections are trimmed down to ConnLow.
	ConnLow  int `toml:"conn_low"`
	ConnHigh int `toml:"conn_high"`
	// ConnGrace protects new connections from trimming for this long.
	ConnGrace configfile.Duration `toml:"conn_grace"`
	// MaxMemoryMiB bounds the memory the resource manager lets libp2p use.
	MaxMemoryMiB int64 `toml:"max_memory_mib"`
	// MaxFDs bounds the file descriptors libp2p may use.
	MaxFDs int `toml:"max_fds"`
	// RepublishInterval is how often the capacity record is republished even when
	// it has not changed.
	RepublishInterval configfile.Duration `toml:"republish_interval"`
	// SnapshotInterval is how often capacity is checked for changes.
	SnapshotInterval configfile.Duration `toml:"snapshot_interval"`
	// RecordTTL is how long a record stays in the market view after its timestamp,
	// and the maximum age of a record accepted from the network.
	RecordTTL configfile.Duration `toml:"record_ttl"`
	// OfferTimeout bounds one offer exchange, both directions.
	OfferTimeout configfile.Duration `toml:"offer_timeout"`
	// OfferRate and OfferBurst are the token bucket of offers one peer may have
	// evaluated: OfferRate per second on average, OfferBurst at once. Offers past it are
	// refused unread by the node (each one costs a chain lookup and a manifest fetch).
	OfferRate  float64 `toml:"offer_rate"`
	OfferBurst int     `toml:"offer_burst"`
	// OfferRateTotal and OfferBurstTotal are the same bucket for all peers together.
	OfferRateTotal  float64 `toml:"offer_rate_total"`
	OfferBurstTotal int     `toml:"offer_burst_total"`
	// GraylistStrikes refused or invalid requests from one peer within a minute get it
	// disconnected and graylisted for GraylistFor: its connections are refused.
	GraylistStrikes int                 `toml:"graylist_strikes"`
	GraylistFor     configfile.Duration `toml:"graylist_for"`
	// MaxRecords caps the market view; records of new peers past it are dropped.
	MaxRecords int `toml:"max_records"`
	// MaxSyncRecords caps the records of one market-sync answer, sent or read.
	MaxSyncRecords int `toml:"max_sync_records"`
}

// Default returns a configuration for a rig on the public internet or behind NAT.
func Default() Config {
	return Config{
		Enabled: true,
		ListenAddrs: []string{
			"/ip4/0.0.0.0/tcp/4011", "/ip4/0.0.0.0/udp/4011/quic-v1",
			"/ip6/::/tcp/4011", "/ip6/::/udp/4011/quic-v1",
		},
		DHTMode:           "auto",
		MDNS:              false,
		AutoNAT:           true,
		Relay:             true,
		HolePunching:      true,
		NATPortMap:        false,
		ConnLow:           64,
		ConnHigh:          128,
		ConnGrace:         configfile.Duration(time.Minute),
		MaxMemoryMiB:      256,
		MaxFDs:            512,
		RepublishInterval: configfile.Duration(2 * time.Minute),
		SnapshotInterval:  configfile.Duration(10 * time.Second),
		RecordTTL:         configfile.Duration(10 * time.Minute),
		OfferTimeout:      configfile.Duration(10 * time.Second),
		OfferRate:         1,
		OfferBurst:        5,
		OfferRateTotal:    10,
		OfferBurstTotal:   20,
		GraylistStrikes:   20,
		GraylistFor:       configfile.Duration(time.Hour),
		MaxRecords:        4096,
		MaxSyncRecords:    1024,
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.ListenAddrs) == 0 {
		add("listen_addrs: at least one address is needed")
	}
	for _, list := range []struct {
		name  string
		addrs []string
	}{{"listen_addrs", c.ListenAddrs}, {"announce_addrs", c.AnnounceAddrs}} {
		for _, s := range list.addrs {
			if _, err := ma.NewMultiaddr(s); err != nil {
				add("%s: %q: %v", list.name, s, err)
			}
		}
	}
	for _, list := range []struct {
		name  string
		addrs []string
	}{{"bootstrap_peers", c.BootstrapPeers}, {"static_relays", c.StaticRelays}} {
		for _, s := range list.addrs {
			if _, err := peer.AddrInfoFromString(s); err != nil {
				add("%s: %q: want a multiaddr ending in /p2p/<peer id>: %v", list.name, s, err)
			}
		}
	}
	switch c.DHTMode {
	case "auto", "server", "client":
	default:
		add("dht_mode: %q: want auto, server or client", c.DHTMode)
	}
	if c.HolePunching && !c.Relay {
		add("hole_punching: needs relay = true (hole punching starts from a relayed connection)")
	}
	if len(c.StaticRelays) > 0 && !c.Relay {
		add("static_relays: set but relay = false")
	}
	if c.ConnLow < 1 || c.ConnHigh < c.ConnLow {
		add("conn_low/conn_high: want 1 <= conn_low <= conn_high, have %d and %d", c.ConnLow, c.ConnHigh)
	}
	if c.ConnGrace < 0 {
		add("conn_grace: must not be negative")
	}
	if c.MaxMemoryMiB < 32 {
		add("max_memory_mib: %d, at least 32", c.MaxMemoryMiB)
	}
	if c.MaxFDs < 16 {
		add("max_fds: %d, at least 16", c.MaxFDs)
	}
	if time.Duration(c.RepublishInterval) < time.Second {
		add("republish_interval: %s, at least 1s", c.RepublishInterval)
	}
	if time.Duration(c.SnapshotInterval) < 100*time.Millisecond {
		add("snapshot_interval: %s, at least 100ms", c.SnapshotInterval)
	}
	if c.RecordTTL < 2*c.RepublishInterval {
		add("record_ttl: %s, at least twice republish_interval (%s) so live records do not expire between publications", c.RecordTTL, c.RepublishInterval)
	}
	if time.Duration(c.OfferTimeout) < 100*time.Millisecond {
		add("offer_timeout: %s, at least 100ms", c.OfferTimeout)
	}
	if !(c.OfferRate > 0 && c.OfferRate <= 1000) || c.OfferBurst < 1 || c.OfferBurst > 10000 {
		add("offer_rate/offer_burst: want 0 < offer_rate <= 1000 and 1 <= offer_burst <= 10000, have %v and %d", c.OfferRate, c.OfferBurst)
	}
	if !(c.OfferRateTotal >= c.OfferRate && c.OfferRateTotal <= 100000) || c.OfferBurstTotal < c.OfferBurst || c.OfferBurstTotal > 100000 {
		add("offer_rate_total/offer_burst_total: want at least offer_rate/offer_burst (%v, %d), have %v and %d", c.OfferRate, c.OfferBurst, c.OfferRateTotal, c.OfferBurstTotal)
	}
	if c.GraylistStrikes < 1 || c.GraylistStrikes > 100000 {
		add("graylist_strikes: %d out of range 1..100000", c.GraylistStrikes)
	}
	if c.GraylistFor < 0 {
		add("graylist_for: must not be negative")
	}
	if c.MaxRecords < 1 || c.MaxRecords > 1_000_000 {
		add("max_records: %d out of range 1..1000000", c.MaxRecords)
	}
	if c.MaxSyncRecords < 1 || c.MaxSyncRecords > c.MaxRecords {
		add("max_sync_records: %d, want 1..max_records (%d)", c.MaxSyncRecords, c.MaxRecords)
	}
	return errs
}

// errConfig joins Validate's errors.
func (c Config) check() error {
	if errs := c.Validate(); len(errs) > 0 {
		return fmt.Errorf("p2p config: %w", errors.Join(errs...))
	}
	return nil
}
