package configfile

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Listen  string   `toml:"listen"`
	Port    int      `toml:"port"`
	Enabled bool     `toml:"enabled"`
	Every   Duration `toml:"every"`
	Peers   []string `toml:"peers"`
}

type peer struct {
	Name string `toml:"name"`
}

type sample struct {
	List    []peer `toml:"list"`
	DataDir string `toml:"data_dir"`
	Net     inner  `toml:"net"`
	Other   inner  `toml:"other"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // every line must appear, and no other
	}{
		{"good", `data_dir = "/x"
[net]
listen = "a:1"
port = 3
enabled = true
every = "1m30s"
peers = ["p1", "p2"]
`, nil},
		{"unknown top-level key", `datadir = "/x"`, []string{`f.toml: unknown key "datadir"`}},
		{"unknown key in a section", "[net]\nlisten = \"a\"\nlisen = \"b\"\n", []string{`f.toml: unknown key "net.lisen"`}},
		{"unknown section", "[nett]\nlisten = \"a\"\n", []string{`f.toml: unknown key "nett"`}},
		{"wrong type", "[net]\nport = \"3\"\n", []string{`f.toml: key "net.port": wrong type: want an integer, got a string`}},
		{"wrong type for a section", "net = 3\n", []string{`f.toml: key "net": want a table ([net]), got an integer`}},
		{"bad duration", "[net]\nevery = \"soon\"\n", []string{`f.toml: key "net.every": invalid duration "soon"`}},
		{"array of wrong type", "[net]\npeers = [1, 2]\n", []string{`f.toml: key "net.peers": wrong type: want an array of strings`}},
		{"all problems at once", `bogus = 1
[net]
port = true
unknown = 2
[other]
enabled = "yes"
`, []string{`unknown key "bogus"`, `key "net.port": wrong type: want an integer, got a bool`, `unknown key "net.unknown"`, `key "other.enabled": wrong type: want a boolean, got a string`}},
		{"unknown key in an array of tables", "[[list]]\nname = \"a\"\n[[list]]\nnam = \"b\"\n", []string{`f.toml: unknown key "list[1].nam"`}},
		{"syntax error", "[net\nport = 1\n", []string{`f.toml: line 2:`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sample
			err := Decode("f.toml", []byte(tt.in), &s)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if s.Net.Every != Duration(90*time.Second) || s.Net.Port != 3 || len(s.Net.Peers) != 2 || s.DataDir != "/x" {
					t.Errorf("decoded %+v", s)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestDecodeKeepsDefaults(t *testing.T) {
	s := sample{DataDir: "/default", Net: inner{Port: 7}}
	if err := Decode("f.toml", []byte("[net]\nlisten = \"x\"\n"), &s); err != nil {
		t.Fatal(err)
	}
	if s.DataDir != "/default" || s.Net.Port != 7 || s.Net.Listen != "x" {
		t.Errorf("got %+v", s)
	}
}

func TestProblems(t *testing.T) {
	errs := Problems("f.toml", "net", []error{errors.New("listen: bad")})
	if len(errs) != 1 || errs[0].Error() != "f.toml: net.listen: bad" {
		t.Errorf("got %v", errs)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("data_dir = \"/x\"\n[net]\nport = 3\n")
	f.Add("[net]\nevery = \"5s\"\npeers = [\"a\"]\n")
	f.Add("[[net]]\nport = 1\n")
	f.Add("net.port = 1\nnet.deep.x = 2\n")
	f.Fuzz(func(t *testing.T, in string) {
		var s sample
		err := Decode("f.toml", []byte(in), &s)
		if err != nil && !strings.HasPrefix(err.Error(), "f.toml: ") {
			t.Errorf("error does not name the file: %v", err)
		}
	})
}
