package market

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestChainUnreachable: with the RPC endpoint down the watcher keeps running, retries,
// and the metrics and status say the chain is down.
func TestChainUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close() // nothing listens there now

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	c, err := Dial(ClientConfig{URL: url, CallTimeout: 200 * time.Millisecond, Retries: 2, Backoff: time.Millisecond}, discard(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := NewWatcher(WatcherConfig{PollInterval: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}, c, &memCursor{}, func(context.Context, Event) error { return nil }, discard(), m)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for i := 0; testutil.ToFloat64(m.rpcErrors) < 6; i++ {
		if i > 1000 {
			t.Fatalf("only %v rpc errors counted", testutil.ToFloat64(m.rpcErrors))
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("watcher stopped on RPC errors: %v", err)
	default:
	}
	st := w.Status()
	if st.Connected || !strings.Contains(st.LastError, "connection refused") {
		t.Errorf("status %+v: want disconnected with the cause", st)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP gpunode_chain_up 1 if the last chain RPC round succeeded.
# TYPE gpunode_chain_up gauge
gpunode_chain_up 0
`), "gpunode_chain_up"); err != nil {
		t.Error(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run ended with %v on cancel", err)
	}
}

// TestChainSlow: an endpoint that does not answer makes calls time out instead of hanging.
func TestChainSlow(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	m := NewMetrics(nil)
	c, err := Dial(ClientConfig{URL: srv.URL, CallTimeout: 50 * time.Millisecond, Retries: 1, Backoff: time.Millisecond}, discard(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.BlockNumber(t.Context())
	if err == nil || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Fatalf("got %v, want a timeout after 2 attempts", err)
	}
	if n := testutil.ToFloat64(m.rpcErrors); n != 2 {
		t.Errorf("%v errors counted, want 2", n)
	}
}
