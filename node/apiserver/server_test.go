package apiserver

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
	"github.com/gpunode/gpunode/node/api"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type failRequest struct{ N int }

// start serves routes on socket until the test ends.
func start(t *testing.T, s *Server) {
	t.Helper()
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func serve(t *testing.T, socket string) *Server {
	t.Helper()
	s, err := New(api.Config{Socket: socket}, quiet, []Route{
		{Pattern: "GET /v1/echo", Handler: Get(func(_ context.Context, p Params) (map[string]string, error) {
			return map[string]string{"q": p.Query("q")}, nil
		})},
		{Pattern: "POST /v1/fail", Handler: Handle(func(context.Context, Params, failRequest) (struct{}, error) {
			return struct{}{}, api.WithClass(api.ErrConflict, errors.New("job 7 is already running"))
		})},
		{Pattern: "GET /v1/missing/{id}", Handler: Get(func(_ context.Context, p Params) (struct{}, error) {
			return struct{}{}, api.WithClass(api.ErrNotFound, errors.New("job "+p.Path("id")+" not found"))
		})},
		{Pattern: "GET /v1/broken", Handler: Get(func(context.Context, Params) (struct{}, error) {
			return struct{}{}, errors.New("disk on fire")
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	return s
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
	c := api.NewClient(socket)
	ctx := t.Context()
	var out map[string]string
	if err := c.Get(ctx, "/v1/echo?q=hi", &out); err != nil || out["q"] != "hi" {
		t.Fatalf("echo: %v %v", out, err)
	}
	err = c.Post(ctx, "/v1/fail", map[string]int{"N": 1}, nil)
	var ae *api.Error
	if err == nil || err.Error() != "job 7 is already running" || !errors.Is(err, api.ErrConflict) || errors.Is(err, api.ErrNotFound) ||
		!errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("error answer: %v (%#v), want the message, class conflict and status 409", err, ae)
	}
	err = c.Post(ctx, "/v1/fail", map[string]int{"Bogus": 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown field") || !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("unknown field: %v, want an invalid_argument error", err)
	}
	if err := c.Get(ctx, "/v1/missing/7", nil); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "job 7 not found") {
		t.Errorf("missing: %v, want not_found with the daemon's message", err)
	}
	if err := c.Get(ctx, "/v1/broken", nil); !errors.Is(err, api.ErrInternal) || !errors.As(err, &ae) || ae.Status != http.StatusInternalServerError {
		t.Errorf("broken: %v, want internal with status 500", err)
	}
	// A route the mux does not know answers in plain text: the status alone gives the class.
	if err := c.Get(ctx, "/v1/nope", nil); !errors.Is(err, api.ErrNotFound) || !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("unknown route: %v, want not_found with status 404", err)
	}
}

func TestNewRefusesBadTables(t *testing.T) {
	h := Get(func(context.Context, Params) (struct{}, error) { return struct{}{}, nil })
	for name, routes := range map[string][]Route{
		"twice":          {{Pattern: "GET /v1/x", Handler: h}, {Pattern: "GET /v1/x", Handler: h}},
		"no handler":     {{Pattern: "GET /v1/x"}},
		"upload, no cap": {{Pattern: "POST /v1/x", Kind: Upload, Handler: h}},
	} {
		if _, err := New(api.Config{Socket: "unused"}, quiet, routes); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestListenRefusesLiveSocketAndReplacesStaleOne(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "api.sock")
	serve(t, socket)
	s, _ := New(api.Config{Socket: socket}, quiet, nil)
	if _, err := s.Listen(); err == nil || !strings.Contains(err.Error(), "another gpunode daemon") {
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
	s2, _ := New(api.Config{Socket: stale}, quiet, nil)
	ln2, err := s2.Listen()
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln2.Close()
}

func TestClientWithoutDaemon(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := api.NewClient(filepath.Join(t.TempDir(), "none.sock")).Status(ctx)
	if !errors.Is(err, api.ErrNotRunning) {
		t.Errorf("err = %v, want ErrNotRunning", err)
	}
}

// TestServerLimits plays a local client that sends a body too large, or sends part of
// one and stalls: the first is refused, the second cut off at the read deadline, and
// the server keeps answering others.
func TestServerLimits(t *testing.T) {
	testenv.Attack(t, "api", "body over the cap, stalled body")
	socket := filepath.Join(t.TempDir(), "api.sock")
	read := make(chan error, 4)
	sink := func(_ context.Context, _ Params, body io.Reader) (int64, error) {
		n, err := io.Copy(io.Discard, body)
		return n, err
	}
	s, err := New(api.Config{Socket: socket}, quiet, []Route{
		{Pattern: "POST /v1/sink", Handler: Uploaded(func(ctx context.Context, p Params, body io.Reader) (int64, error) {
			n, err := sink(ctx, p, body)
			read <- err
			return n, err
		})},
		{Pattern: "POST /v1/upload", Kind: Upload, MaxBody: 3 << 20, Handler: Uploaded(sink)},
		{Pattern: "POST /v1/json", MaxBody: 16, Handler: Handle(func(context.Context, Params, map[string]string) (struct{}, error) {
			return struct{}{}, nil
		})},
		{Pattern: "GET /v1/echo", Handler: Get(func(context.Context, Params) (map[string]string, error) {
			return map[string]string{"ok": "1"}, nil
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.readTimeout = 500 * time.Millisecond
	start(t, s)
	c := api.NewClient(socket)
	ctx := t.Context()

	big := strings.Repeat("x", MaxBody+1)
	if err := c.Upload(ctx, "/v1/sink", "application/octet-stream", strings.NewReader(big), nil); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("a body over MaxBody: %v, want too_large", err)
	}
	if err := <-read; err == nil {
		t.Error("the handler read a body over MaxBody without error")
	}
	var n int64
	if err := c.Upload(ctx, "/v1/upload", "application/octet-stream", strings.NewReader(big+big), &n); err != nil || n != int64(2*len(big)) {
		t.Errorf("upload under its own cap: %d, %v", n, err)
	}
	if err := c.Post(ctx, "/v1/json", map[string]string{"k": strings.Repeat("v", 64)}, nil); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("JSON body over the route's cap: %v, want too_large", err)
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
	if err := c.Get(ctx, "/v1/echo", &out); err != nil || out["ok"] != "1" {
		t.Errorf("server after the attacks: %v %v", out, err)
	}
}
