package benchmark

import (
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// decodeStrict is how the node loads config: defaults, then the file; an unknown key is
// an error.
func decodeStrict(t *testing.T, path string) (Config, error) {
	t.Helper()
	cfg := Default()
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		return cfg, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		return cfg, &unknownKeyError{path, u[0].String()}
	}
	return cfg, nil
}

type unknownKeyError struct{ file, key string }

func (e *unknownKeyError) Error() string { return e.file + ": unknown key " + e.key }

func TestConfigFiles(t *testing.T) {
	if errs := Default().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
	cfg, err := decodeStrict(t, "testdata/config-good.toml")
	if err != nil {
		t.Fatal(err)
	}
	if errs := cfg.Validate(); len(errs) != 0 || cfg.Profile != Full || cfg.Backend != "cuda" || cfg.OnStart || cfg.Timeout != 30*time.Minute {
		t.Fatalf("good config: %+v %v", cfg, errs)
	}
	cfg, err = decodeStrict(t, "testdata/config-bad.toml")
	if err != nil {
		t.Fatal(err)
	}
	if errs := cfg.Validate(); len(errs) != 4 {
		t.Errorf("bad config: want every problem (4) at once, have %v", errs)
	}
	if _, err := decodeStrict(t, "testdata/config-unknown.toml"); err == nil || err.Error() != "testdata/config-unknown.toml: unknown key repeats" {
		t.Errorf("unknown key: %v", err)
	}
}
