package devchain

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// StartTest runs a dev chain on a free loopback port for the length of a test, mining
// every blockPeriod, and returns its deployment.
func StartTest(t testing.TB, blockPeriod time.Duration) Deployment {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := Default()
	cfg.Listen = "127.0.0.1:" + strconv.Itoa(port)
	cfg.BlockPeriod = blockPeriod
	cfg.Out = filepath.Join(t.TempDir(), "devchain.json")
	c, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c.Deployment()
}
