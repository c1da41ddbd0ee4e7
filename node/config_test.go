package node

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/gpunode/gpunode/internal/configfile"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		file string
		want []string // each problem the error must name; nil means the file is valid
	}{
		{"good.toml", nil},
		{"bad-unknown-key.toml", []string{`testdata/bad-unknown-key.toml: unknown key "metrics.listen_port"`}},
		{"bad-type.toml", []string{`testdata/bad-type.toml: key "metrics.listen": wrong type: want a string, got an integer`}},
		{"bad-value.toml", []string{`testdata/bad-value.toml: log.level: "verbose" is not one of debug, info, warn, error`}},
		{"bad-syntax.toml", []string{`testdata/bad-syntax.toml: line 2:`}},
		{"bad-many.toml", []string{
			`testdata/bad-many.toml: unknown key "colour"`,
			`testdata/bad-many.toml: key "log.level": wrong type: want a string, got an integer`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := LoadConfig(filepath.Join("testdata", tt.file))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				want := Default()
				want.DataDir = "/srv/gpunode"
				want.Log = LogConfig{Format: "json", Level: "debug"}
				want.Metrics.Listen, want.Metrics.Hostname = "0.0.0.0:9835", "rig-07"
				want.GPU.Simulate = "dgxa100"
				if !reflect.DeepEqual(cfg, want) {
					t.Errorf("got %+v\nwant %+v", cfg, want)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestCheckReportsEveryValueProblem: once the file decodes, every invalid value is named.
func TestCheckReportsEveryValueProblem(t *testing.T) {
	cfg := Default()
	cfg.DataDir = "relative/dir"
	cfg.Log.Format = "yaml"
	cfg.Metrics.Listen = "nope"
	cfg.GPU.Simulate = "h100x4"
	cfg.API.Socket = ""
	cfg.Idle.Image = "miner:latest"
	cfg.Pool.FeeBPS = 20000
	err := cfg.Check("f.toml")
	for _, w := range []string{
		`f.toml: data_dir: "relative/dir" must be an absolute path`,
		`f.toml: log.format: "yaml" is not one of text, json`,
		`f.toml: metrics.listen: "nope" is not host:port`,
		`f.toml: gpu.simulate: "h100x4" is not a known simulation`,
		`f.toml: api.socket: must not be empty`,
		`f.toml: idle.image: "miner:latest" has no digest`,
		`f.toml: idle.command: must not be empty`,
		`f.toml: pool.fee_bps: 20000 is above 10000`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

// TestDefaultTOML: the printed default file decodes to exactly Default(), so the two
// cannot drift apart, and every key it shows is real.
func TestDefaultTOML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "default.toml")
	if err := os.WriteFile(path, DefaultTOML(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	// %+v prints a nil and an empty map or slice alike, as the file can only say "empty".
	if fmt.Sprintf("%+v", cfg) != fmt.Sprintf("%+v", Default()) {
		t.Errorf("default.toml decodes to %+v\nDefault() is %+v", cfg, Default())
	}
	if !bytes.Contains(DefaultTOML(), []byte("# ")) {
		t.Error("default config has no comments")
	}
	var raw map[string]any
	md, err := toml.Decode(string(DefaultTOML()), &raw)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	for _, k := range md.Keys() {
		shown[k.String()] = true
	}
	for _, k := range configfile.Keys(Config{}) {
		if !shown[k] {
			t.Errorf("default.toml does not show %s", k)
		}
	}
}

func TestExampleConfig(t *testing.T) {
	if _, err := LoadConfig(filepath.Join("..", "configs", "gpunode.example.toml")); err != nil {
		t.Fatal(err)
	}
}
