// Package api is the node's local control API: JSON over HTTP on a unix socket that only
// the node's owner and group may open, and the typed client the CLI uses.
//
// Subsystems add their routes with Server.Handle; handlers answer with WriteJSON and
// WriteError so that every response has the same shape.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Config configures the control API.
type Config struct {
	// Socket is the unix socket path. Its directory is created if missing.
	Socket string `toml:"socket"`
}

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/gpunode/api.sock"

// Default returns the default API configuration.
func Default() Config { return Config{Socket: DefaultSocket} }

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	if c.Socket == "" {
		return []error{errors.New("socket: must not be empty")}
	}
	return nil
}

// Server serves the control API.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	// readTimeout and uploadReadTimeout are ReadTimeout and UploadReadTimeout; tests
	// shorten them.
	readTimeout, uploadReadTimeout time.Duration
}

// Handler is the server's routes, for a read-only view served elsewhere (the dashboard).
func (s *Server) Handler() http.Handler { return s.mux }

// NewServer returns a server with no routes yet.
func NewServer(cfg Config, log *slog.Logger) *Server {
	return &Server{cfg: cfg, log: log.With("component", "api"), mux: http.NewServeMux(),
		readTimeout: ReadTimeout, uploadReadTimeout: UploadReadTimeout}
}

// Limits every route has unless it is registered for streaming or uploads.
const (
	// MaxBody caps a request body.
	MaxBody = 1 << 20
	// ReadTimeout bounds reading a request, body included.
	ReadTimeout = time.Minute
	// WriteTimeout bounds answering a request; it is long because a few answers wait
	// for the chain (posting a job waits for its confirmations).
	WriteTimeout = 15 * time.Minute
	// UploadReadTimeout bounds reading an upload's body.
	UploadReadTimeout = time.Hour
)

// Handle registers a handler for a pattern such as "GET /v1/status". Its request body
// is capped at MaxBody and the request must be read within ReadTimeout and answered
// within WriteTimeout.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.limited(h, MaxBody, &s.readTimeout, WriteTimeout))
}

// HandleFunc registers a handler function for a pattern, with Handle's limits.
func (s *Server) HandleFunc(pattern string, h http.HandlerFunc) { s.Handle(pattern, h) }

// HandleStream registers a handler whose answer lasts as long as its subject (a
// followed log, a pull's progress, a download, a fetch, a benchmark run): Handle's
// limits, but no write deadline. A client that stops reading stalls only its own
// answer.
func (s *Server) HandleStream(pattern string, h http.HandlerFunc) {
	s.mux.Handle(pattern, s.limited(h, MaxBody, &s.readTimeout, 0))
}

// HandleUpload registers a handler that reads a body of up to maxBytes within
// UploadReadTimeout.
func (s *Server) HandleUpload(pattern string, maxBytes int64, h http.HandlerFunc) {
	s.mux.Handle(pattern, s.limited(h, maxBytes, &s.uploadReadTimeout, WriteTimeout))
}

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

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes err as an error answer: its class is the one it carries, or the
// status's.
func WriteError(w http.ResponseWriter, status int, err error) {
	var e *Error
	class := ClassOfStatus(status)
	if errors.As(err, &e) && e.Class != "" {
		class = e.Class
	}
	WriteJSON(w, status, ErrorBody{Error: err.Error(), Class: class})
}

// DecodeJSON decodes a request body of at most maxBytes into v, rejecting unknown fields.
func DecodeJSON(r *http.Request, maxBytes int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}
