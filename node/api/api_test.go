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

	"github.com/gpunode/gpunode/internal/testenv"
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
	var ae *Error
	if err == nil || err.Error() != "job 7 is already running" || !errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) ||
		!errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("error answer: %v (%#v), want the message, class conflict and status 409", err, ae)
	}
	err = c.Post(context.Background(), "/v1/fail", map[string]int{"Bogus": 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown field") || !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("unknown field: %v, want an invalid_argument error", err)
	}
	// A route the mux does not know answers in plain text: the status alone gives the class.
	if err := c.Get(context.Background(), "/v1/nope", nil); !errors.Is(err, ErrNotFound) || !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("unknown route: %v, want not_found with status 404", err)
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

// TestServerLimits plays a local client that sends a body too large, or sends part of
// one and stalls: the first is refused, the second cut off at the read deadline, and
// the server keeps answering others.
func TestServerLimits(t *testing.T) {
	testenv.Attack(t, "api", "body over the cap, stalled body")
	socket := filepath.Join(t.TempDir(), "api.sock")
	s := NewServer(Config{Socket: socket}, quiet)
	s.readTimeout = 500 * time.Millisecond
	read := make(chan error, 4)
	s.HandleFunc("POST /v1/sink", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		read <- err
		if err != nil {
			WriteError(w, http.StatusRequestEntityTooLarge, err)
			return
		}
		WriteJSON(w, http.StatusOK, n)
	})
	s.HandleUpload("POST /v1/upload", 3<<20, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			WriteError(w, http.StatusRequestEntityTooLarge, err)
			return
		}
		WriteJSON(w, http.StatusOK, n)
	})
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	c := NewClient(socket)

	big := strings.Repeat("x", MaxBody+1)
	if err := c.Upload(context.Background(), "/v1/sink", "application/octet-stream", strings.NewReader(big), nil); err == nil {
		t.Error("a body over MaxBody was read whole")
	}
	if err := <-read; err == nil {
		t.Error("the handler read a body over MaxBody without error")
	}
	var n int64
	if err := c.Upload(context.Background(), "/v1/upload", "application/octet-stream", strings.NewReader(big+big), &n); err != nil || n != int64(2*len(big)) {
		t.Errorf("upload under its own cap: %d, %v", n, err)
	}

	// A stalled body: headers and a few bytes, then nothing.
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v1/sink HTTP/1.1\r\nHost: gpunode\r\nContent-Length: 1000\r\n\r\nabc")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-read:
		if err == nil {
			t.Error("the stalled body was read without error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled body held its handler past the read deadline")
	}
	var out map[string]string
	s.HandleFunc("GET /v1/echo", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"ok": "1"})
	})
	if err := c.Get(context.Background(), "/v1/echo", &out); err != nil || out["ok"] != "1" {
		t.Errorf("server after the attacks: %v %v", out, err)
	}
}
