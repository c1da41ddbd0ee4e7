package docker

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func decodeFile(t *testing.T, path string) (Config, error) {
	t.Helper()
	cfg := Default()
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		return cfg, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return cfg, &unknownKeys{path: path, keys: und}
	}
	return cfg, nil
}

type unknownKeys struct {
	path string
	keys []toml.Key
}

func (u *unknownKeys) Error() string { return u.path + ": unknown key " + u.keys[0].String() }

func TestConfigDefaultIsValid(t *testing.T) {
	if errs := Default().Validate(); len(errs) > 0 {
		t.Fatalf("Default().Validate() = %v", errs)
	}
}

func TestConfigFiles(t *testing.T) {
	cfg, err := decodeFile(t, "testdata/config-good.toml")
	if err != nil {
		t.Fatal(err)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("good config: %v", errs)
	}
	if cfg.StopGrace != 30*time.Second || cfg.RunTimeout != 48*time.Hour || cfg.Registries["registry.example.org"].CredHelper != "pass" {
		t.Errorf("decoded %+v", cfg)
	}

	cfg, err = decodeFile(t, "testdata/config-bad.toml")
	if err != nil {
		t.Fatal(err)
	}
	errs := cfg.Validate()
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"instance", "state_dir", "log_dir", "log_max_bytes", "dataset_allowlist", "stop_grace", "prepare_timeout", "run_timeout", "must not be negative", "6 MiB", "identity_token"} {
		if !strings.Contains(joined, want) {
			t.Errorf("bad config: no error mentions %q; got:\n%s", want, joined)
		}
	}

	if _, err := decodeFile(t, "testdata/config-unknown.toml"); err == nil || !strings.Contains(err.Error(), "state_dirr") {
		t.Errorf("unknown key: %v, want an error naming it", err)
	}
}
