package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
)

// TestAPISocketFlag: every command that has --api-socket has the one declaration's
// default and help text.
func TestAPISocketFlag(t *testing.T) {
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(usage, def string) {
			n++
			if usage != api.SocketFlagUsage || def != api.DefaultSocket {
				t.Errorf("%s: --api-socket %q (default %q), want the shared declaration", c.CommandPath(), usage, def)
			}
		}
		if f := c.LocalNonPersistentFlags().Lookup("api-socket"); f != nil {
			check(f.Usage, f.DefValue)
		}
		if f := c.PersistentFlags().Lookup("api-socket"); f != nil {
			check(f.Usage, f.DefValue)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	if n < 10 {
		t.Errorf("found --api-socket on %d commands: the walk missed them", n)
	}
}

// TestNoRawAPIPaths: the CLI calls the daemon through the typed client only, which
// escapes the arguments; no command builds a /v1/ path itself.
func TestNoRawAPIPaths(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sources: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `"/v1/`) {
			t.Errorf("%s builds a control-API path: call an api.Client method", f)
		}
	}
}
