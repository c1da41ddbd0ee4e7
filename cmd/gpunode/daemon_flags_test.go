package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
)

// TestPoolCoordinatorFlag: --pool-coordinator makes the node its pool's coordinator over
// a config file that does not; without the flag the file's setting stands.
func TestPoolCoordinatorFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"--pool-coordinator"}, true},
		{nil, false},
	} {
		var f configFlags
		cmd := &cobra.Command{Use: "daemon"}
		f.register(cmd)
		dir := t.TempDir()
		file := filepath.Join(dir, "gpunode.toml") // not the machine's own config file
		if err := os.WriteFile(file, []byte("[pool]\ncoordinator = false\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--config", file, "--data-dir", dir, "--api-socket", filepath.Join(dir, "api.sock")}, c.args...)
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.load(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Pool.Coordinator != c.want {
			t.Errorf("flags %v: pool.coordinator %v, want %v", c.args, cfg.Pool.Coordinator, c.want)
		}
	}
}
