package p2p

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func decodeConfig(t *testing.T, path string) Config {
	t.Helper()
	cfg := Default()
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("%s: unknown keys %v", path, u)
	}
	return cfg
}

func TestDefaultIsValid(t *testing.T) {
	if errs := Default().Validate(); len(errs) > 0 {
		t.Fatalf("Default() is invalid: %v", errors.Join(errs...))
	}
	if errs := loopbackConfig().Validate(); len(errs) > 0 {
		t.Fatalf("loopback test config is invalid: %v", errors.Join(errs...))
	}
}

func TestConfigFiles(t *testing.T) {
	good := decodeConfig(t, "testdata/good.toml")
	if errs := good.Validate(); len(errs) > 0 {
		t.Fatalf("good.toml: %v", errors.Join(errs...))
	}
	if time.Duration(good.RepublishInterval) != time.Minute || good.DHTMode != "client" || good.ConnHigh != 64 {
		t.Fatalf("good.toml decoded as %+v", good)
	}

	bad := decodeConfig(t, "testdata/bad.toml")
	errs := bad.Validate()
	all := errors.Join(errs...).Error()
	for _, want := range []string{"listen_addrs", "bootstrap_peers", "dht_mode", "hole_punching",
		"conn_low", "max_memory_mib", "max_fds", "snapshot_interval", "record_ttl", "offer_timeout"} {
		if !strings.Contains(all, want) {
			t.Errorf("bad.toml: no error about %s in:\n%s", want, all)
		}
	}
}
