package idle_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/runtime/idle"
)

func TestConfigValidate(t *testing.T) {
	good := idle.Default()
	good.Image = "registry.example/miner@sha256:" + strings.Repeat("a", 64)
	good.Command = []string{"/miner", "--pool", "stratum+tcp://pool.example:3333"}
	for _, tc := range []struct {
		name string
		edit func(*idle.Config)
		want string // substring of the error; "" = valid
	}{
		{"default has no idle workload", func(c *idle.Config) { *c = idle.Default() }, ""},
		{"digest image with command", func(c *idle.Config) {}, ""},
		{"local image id", func(c *idle.Config) { c.Image = "sha256:" + strings.Repeat("b", 64) }, ""},
		{"tag only", func(c *idle.Config) { c.Image = "miner:latest" }, "has no digest"},
		{"no command", func(c *idle.Config) { c.Command = nil }, "command: must not be empty"},
		{"stop timeout too short", func(c *idle.Config) { c.StopTimeout = configfile.Duration(time.Second) }, "stop_timeout"},
		{"restart delay zero", func(c *idle.Config) { c.RestartDelay = 0 }, "restart_delay"},
		{"unknown network", func(c *idle.Config) { c.Network = "host" }, `network: "host"`},
		{"loader env", func(c *idle.Config) { c.Env = []string{"LD_PRELOAD=/x.so"} }, "LD_"},
		{"env without value", func(c *idle.Config) { c.Env = []string{"WALLET"} }, "want KEY=VALUE"},
		{"negative memory", func(c *idle.Config) { c.MemoryBytes = -1 }, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			errs := c.Validate()
			if tc.want == "" {
				if len(errs) != 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			for _, e := range errs {
				if strings.Contains(e.Error(), tc.want) {
					return
				}
			}
			t.Fatalf("want an error containing %q, got %v", tc.want, errs)
		})
	}
}

// Without an image the workload is inert: Hold returns at once, Run waits for the end.
func TestDisabledIsInert(t *testing.T) {
	w, err := idle.New(idle.Default(), idle.Deps{}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := w.Hold(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if st := w.Status(); st.Enabled || st.Running || len(st.HeldBy) != 0 {
		t.Fatalf("status = %+v, want disabled and idle", st)
	}
	rctx, rcancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(rctx) }()
	rcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	c := idle.Default()
	c.Image = "miner:latest"
	if _, err := idle.New(c, idle.Deps{}, testLogger()); err == nil || !strings.Contains(err.Error(), "idle config") {
		t.Fatalf("New with a tag-only image: %v, want an idle config error", err)
	}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return testkit.Discard()
}
