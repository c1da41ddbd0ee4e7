// Package apiserver serves the control API (node/api) on its unix socket: the socket
// itself (mode 0660, stale sockets replaced), the limits every route has, and the
// adapters that turn a route's plain Go function into a handler — decode the request,
// call, encode the answer, or the error with the status of its class.
//
// It holds no route: the daemon's route table (node/routes.go) lists every /v1/…
// pattern and hands it to New. Subsystems expose Go methods, never handlers.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

// Limits every route has unless its Kind says otherwise.
const (
	// MaxBody caps a request body unless the route sets its own cap.
	MaxBody = 1 << 20
	// ReadTimeout bounds reading a request, body included.
	ReadTimeout = time.Minute
	// WriteTimeout bounds answering a request; it is long because a few answers wait
	// for the chain (posting a job waits for its confirmations).
	WriteTimeout = 15 * time.Minute
	// UploadReadTimeout bounds reading an upload's body.
	UploadReadTimeout = time.Hour
)

// Kind is how a route's request is bounded.
type Kind int

const (
	// Call: the body is capped at MaxBody (or the route's cap), read within
	// ReadTimeout and answered within WriteTimeout.
	Call Kind = iota
	// Stream: as Call, but no write deadline: the answer lasts as long as its subject
	// (a followed log, a pull's progress, a download, a fetch, a benchmark run). A
	// client that stops reading stalls only its own answer.
	Stream
	// Upload: the body, up to the route's cap, is read within UploadReadTimeout.
	Upload
)

// Route is one entry of the route table.
type Route struct {
	// Pattern is the method and path, as http.ServeMux reads them: "GET /v1/jobs/{id}".
	Pattern string
	// Client is the name of the api.Client method that calls the route.
	Client string
	// Errors are the error classes the route answers with besides
	// api.ErrInvalidArgument (a malformed request) and api.ErrInternal.
	Errors []api.Class
	Kind   Kind
	// MaxBody caps the request body; 0 means MaxBody. An Upload route must set it.
	MaxBody int64
	Handler http.Handler
}

// Server serves the control API.
type Server struct {
	cfg api.Config
	log *slog.Logger
	mux *http.ServeMux

	// readTimeout and uploadReadTimeout are ReadTimeout and UploadReadTimeout; tests
	// shorten them.
	readTimeout, uploadReadTimeout time.Duration
}

// New returns a server for routes. A pattern listed twice, or an upload without a
// cap, is an error.
func New(cfg api.Config, log *slog.Logger, routes []Route) (*Server, error) {
	s := &Server{cfg: cfg, log: log.With("component", "api"), mux: http.NewServeMux(),
		readTimeout: ReadTimeout, uploadReadTimeout: UploadReadTimeout}
	seen := map[string]bool{}
	for _, r := range routes {
		if seen[r.Pattern] {
			return nil, fmt.Errorf("route %s: listed twice", r.Pattern)
		}
		seen[r.Pattern] = true
		if r.Handler == nil {
			return nil, fmt.Errorf("route %s: no handler", r.Pattern)
		}
		maxBody := r.MaxBody
		if maxBody == 0 {
			if r.Kind == Upload {
				return nil, fmt.Errorf("route %s: an upload needs its own cap", r.Pattern)
			}
			maxBody = MaxBody
		}
		h := r.Handler
		switch r.Kind {
		case Stream:
			h = s.limited(h, maxBody, &s.readTimeout, 0)
		case Upload:
			h = s.limited(h, maxBody, &s.uploadReadTimeout, WriteTimeout)
		default:
			h = s.limited(h, maxBody, &s.readTimeout, WriteTimeout)
		}
		s.mux.Handle(r.Pattern, h)
	}
	return s, nil
}

// Handler is the server's routes, for a read-only view served elsewhere (the dashboard).
func (s *Server) Handler() http.Handler { return s.mux }

// limited caps a handler's request body and sets its connection's deadlines. The
// response writer is passed on unwrapped, so streaming handlers keep http.Flusher.
func (s *Server) limited(h http.Handler, maxBody int64, read *time.Duration, write time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		_ = rc.SetReadDeadline(now.Add(*read))
		if write > 0 {
			_ = rc.SetWriteDeadline(now.Add(write))
		} else {
			_ = rc.SetWriteDeadline(time.Time{})
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h.ServeHTTP(w, r)
	})
}

// Listen opens the socket with mode 0660. A stale socket left by a killed daemon is
// removed; a socket that still answers belongs to a running daemon and is an error.
func (s *Server) Listen() (net.Listener, error) {
	path := s.cfg.Socket
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: another gpunode daemon is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api socket %s: remove stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return ln, nil
}

// Serve answers requests on ln until ctx is cancelled, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("control API listening", "socket", s.cfg.Socket)
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	os.Remove(s.cfg.Socket)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	return nil
}
