//go:build integration

package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/node"
)

// loopbackConfig is the configuration of a test daemon: the node's defaults with its
// network kept on one loopback address, no discovery beyond bootstrap, and no NAT
// traversal. Tests change the value and write it with writeConfig.
func loopbackConfig(ip string, bootstrap []string) node.Config {
	cfg := node.Default()
	cfg.P2P.ListenAddrs = []string{"/ip4/" + ip + "/tcp/0"}
	cfg.P2P.BootstrapPeers = bootstrap
	cfg.P2P.DHTMode = "server"
	cfg.P2P.MDNS, cfg.P2P.AutoNAT, cfg.P2P.Relay, cfg.P2P.HolePunching, cfg.P2P.NATPortMap = false, false, false, false, false
	return cfg
}

// writeConfig writes cfg as a config file, encoded with the TOML library the node
// decodes it with, and checks that the node reads back the same value.
func writeConfig(t *testing.T, cfg node.Config) string {
	t.Helper()
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(cfg); err != nil {
		t.Fatalf("encode config: %v", err)
	}
	path := filepath.Join(t.TempDir(), "gpunode.toml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := node.LoadConfig(path)
	if err != nil {
		t.Fatalf("the node refuses the test's config: %v\n%s", err, b.Bytes())
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Fatalf("the node reads the test's config as %+v, want %+v", back, cfg)
	}
	return path
}

// p2pConfig is a config file that keeps a daemon's network on one loopback address.
func p2pConfig(t *testing.T, ip string, bootstrap []string) string {
	t.Helper()
	return writeConfig(t, loopbackConfig(ip, bootstrap))
}

// TestConfigRoundTrip: what writeConfig writes, durations and maps included, the node
// reads as the same value.
func TestConfigRoundTrip(t *testing.T) {
	cfg := loopbackConfig("127.0.0.2", nil)
	cfg.Datasets = map[string]string{"digits": t.TempDir()}
	cfg.Jobs.OutcomePoll = configfile.Duration(500 * time.Millisecond)
	cfg.Market.PollInterval = 250 * time.Millisecond
	got, err := node.LoadConfig(writeConfig(t, cfg))
	if err != nil || got.P2P.ListenAddrs[0] != "/ip4/127.0.0.2/tcp/0" || got.Datasets["digits"] != cfg.Datasets["digits"] ||
		got.Jobs.OutcomePoll != cfg.Jobs.OutcomePoll || got.Market.PollInterval != 250*time.Millisecond {
		t.Fatalf("read back %+v, %v", got, err)
	}
}
