package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func serve(t *testing.T, socket string) (*Server, context.CancelFunc) {
	t.Helper()
	s := NewServer(Config{Socket: socket}, quiet)
	s.HandleFunc("GET /v1/echo", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"q": r.URL.Query().Get("q")})
	})
	s.HandleFunc("POST /v1/fail", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ N int }
		if err := DecodeJSON(r, 1<<10, &in); err != nil {
			WriteError(w, http.StatusBadRequest, err)
			return
		}
		WriteError(w, http.StatusConflict, errors.New("job 7 is already running"))
	})
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, cancel
}

func TestClientServer(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "run", "api.sock")
	serve(t, socket)
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	c := NewClient(socket)
	var out map[string]string
	if err := c.Get(context.Background(), "/v1/echo?q=hi", &out); err != nil || out["q"] != "hi" {
		t.Fatalf("echo: %v %v", out, err)
	}
	err = c.Post(context.Background(), "/v1/fail", map[string]int{"N": 1}, nil)
	if err == nil || err.Error() != "job 7 is already running" {
		t.Errorf("error answer: %v", err)
	}
	err = c.Post(context.Background(), "/v1/fail", map[string]int{"Bogus": 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("unknown field: %v", err)
	}
	if err := c.Get(context.Background(), "/v1/nope", nil); err == nil {
		t.Error("unknown route answered")
	}
}

func TestListenRefusesLiveSocketAndReplacesStaleOne(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "api.sock")
	serve(t, socket)
	if _, err := NewServer(Config{Socket: socket}, quiet).Listen(); err == nil || !strings.Contains(err.Error(), "another gpunode daemon") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	// A socket file nobody listens on, as a killed daemon leaves it.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := NewServer(Config{Socket: stale}, quiet).Listen()
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln2.Close()
}

func TestClientWithoutDaemon(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := NewClient(filepath.Join(t.TempDir(), "none.sock")).Status(ctx)
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("err = %v, want ErrNotRunning", err)
	}
}
