package ipfs

import (
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

func TestConfig(t *testing.T) {
	if errs := Default().Validate(); len(errs) > 0 {
		t.Errorf("Default() is invalid: %v", errs)
	}
	good := decodeConfig(t, "testdata/config-good.toml")
	if errs := good.Validate(); len(errs) > 0 {
		t.Errorf("config-good.toml: %v", errs)
	}
	if time.Duration(good.FetchTimeout) != 2*time.Hour || good.RemotePinning.Endpoint == "" {
		t.Errorf("config-good.toml decoded as %+v", good)
	}
	bad := decodeConfig(t, "testdata/config-bad.toml")
	errs := bad.Validate()
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, key := range []string{"mode:", "dir:", "max_storage_bytes:", "max_fetch_bytes:", "fetch_timeout:",
		"reprovide_interval:", "remote_pinning.endpoint:", "remote_pinning.token_file:", "remote_pinning.timeout:"} {
		if !strings.Contains(all, key) {
			t.Errorf("config-bad.toml: no error for %s; got:\n%s", key, all)
		}
	}
	kubo := Default()
	kubo.Mode, kubo.KuboAPI = ModeKubo, "127.0.0.1:5001"
	if errs := kubo.Validate(); len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "kubo_api:") {
		t.Errorf("kubo mode with a bad URL: %v", errs)
	}
}
