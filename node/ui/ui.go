// Package ui is the operator's web dashboard: a read-only page served by the daemon that
// shows the rig (GPUs and their live telemetry), its jobs with their history and log tail,
// earnings per job and per day with each payment's transaction, the benchmark, peers and
// the capacity market, the workload policy and admission, the node's checks and the
// verdicts of the last `gpunode doctor`.
//
// The page's data comes from the control API's own handlers, through a short allowlist of
// GET routes: the dashboard adds no second view of the node's state, and no route that
// changes anything is reachable from it. It listens on loopback by default; beyond
// loopback a bearer token is required. Its assets are embedded: no CDN, nothing fetched.
package ui

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"
)

// Config configures the dashboard.
type Config struct {
	// Listen is the dashboard's address, "" to turn it off. Beyond loopback TokenFile
	// must be set.
	Listen string `toml:"listen"`
	// TokenFile holds the bearer token a browser must present (open the page as
	// http://HOST:PORT/#token=TOKEN). Required when Listen is not a loopback address;
	// optional on loopback.
	TokenFile string `toml:"token_file"`
}

// DefaultListen is the dashboard's address unless told otherwise, next to the metrics'.
const DefaultListen = "127.0.0.1:9836"

// Default returns the default dashboard configuration: on, loopback only.
func Default() Config { return Config{Listen: DefaultListen} }

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	if c.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return []error{fmt.Errorf("listen: %q is not HOST:PORT: %w", c.Listen, err)}
	}
	if !isLoopback(host) && c.TokenFile == "" {
		return []error{fmt.Errorf("listen: %q is reachable beyond this machine: set token_file to a file holding a bearer token (or listen on 127.0.0.1)", c.Listen)}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

//go:embed static
var static embed.FS

// routes are the control-API routes the page reads. Only GET; nothing that writes.
var routes = []string{
	"/v1/status",
	"/v1/jobs",
	"/v1/jobs/{id}",
	"/v1/jobs/{id}/logs",
	"/v1/market/ledger",
	"/v1/p2p/peers",
	"/v1/p2p/market",
	"/v1/policy",
	"/v1/policy/rejections",
	"/v1/benchmark",
	"/v1/doctor",
}

// Routes are the control-API routes the page reads (the daemon's route table test
// checks each is one of its GET routes).
func Routes() []string { return append([]string(nil), routes...) }

// LogTail is how much of a job's log the page shows: the end of it.
const LogTail = 64 << 10

// Handler serves the dashboard over backend, the control API's handler. token, when not
// empty, is required on every data request as "Authorization: Bearer TOKEN". loopbackOnly
// makes it refuse requests whose Host is not a loopback name, so a web page elsewhere
// cannot reach a loopback dashboard through DNS rebinding.
func Handler(backend http.Handler, token string, loopbackOnly bool) http.Handler {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(static, "static")
	files := http.FileServerFS(assets)
	mux.Handle("GET /", files)
	for _, route := range routes {
		mux.HandleFunc("GET /api"+route, func(w http.ResponseWriter, r *http.Request) {
			if token != "" && !bearer(r, token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gpunode"`)
				http.Error(w, "a bearer token is required: open the dashboard as /#token=TOKEN", http.StatusUnauthorized)
				return
			}
			forward(w, r, backend, strings.TrimPrefix(r.URL.Path, "/api"))
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if loopbackOnly {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !isLoopback(host) {
				http.Error(w, "this dashboard answers only on loopback names (127.0.0.1, localhost)", http.StatusMisdirectedRequest)
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the dashboard is read-only", http.StatusMethodNotAllowed)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// forward answers r from the control API's handler at path, with no query but the job
// log's (never followed) and only the end of a log.
func forward(w http.ResponseWriter, r *http.Request, backend http.Handler, path string) {
	req := r.Clone(r.Context())
	req.URL.Path, req.URL.RawPath, req.URL.RawQuery, req.RequestURI = path, "", "", ""
	req.Body, req.ContentLength = http.NoBody, 0
	req.Header = http.Header{"Accept": r.Header["Accept"]}
	rec := httptest.NewRecorder()
	backend.ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	if strings.HasSuffix(path, "/logs") && len(body) > LogTail {
		body = body[len(body)-LogTail:]
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			body = body[i+1:]
		}
	}
	if ct := rec.Header().Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// Serve serves the dashboard on cfg.Listen until ctx ends; with no address it only waits.
func Serve(ctx context.Context, cfg Config, backend http.Handler, log *slog.Logger) error {
	if cfg.Listen == "" {
		<-ctx.Done()
		return nil
	}
	var token string
	if cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("ui: token file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); len(token) < 16 {
			return fmt.Errorf("ui: token file %s: the token must be at least 16 characters", cfg.TokenFile)
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("ui: listen %s: %w", cfg.Listen, err)
	}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	srv := &http.Server{
		Handler:           Handler(backend, token, isLoopback(host)),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("dashboard listening", "url", "http://"+ln.Addr().String()+"/", "token_required", token != "")
	select {
	case err := <-errc:
		return fmt.Errorf("ui: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ui: shutdown: %w", err)
	}
	return nil
}
