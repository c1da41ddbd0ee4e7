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
}

// NewServer returns a server with no routes yet.
func NewServer(cfg Config, log *slog.Logger) *Server {
	return &Server{cfg: cfg, log: log.With("component", "api"), mux: http.NewServeMux()}
}

// Handle registers a handler for a pattern such as "GET /v1/status".
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleFunc registers a handler function for a pattern.
func (s *Server) HandleFunc(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

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
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
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

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes err as an Error response.
func WriteError(w http.ResponseWriter, status int, err error) {
	WriteJSON(w, status, Error{Error: err.Error()})
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
