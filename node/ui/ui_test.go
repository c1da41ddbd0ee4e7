package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gpunode/gpunode/internal/testkit"
)

// backend stands for the control API: a few real routes of each kind, and a record of
// what reached it.
type backend struct {
	mu   sync.Mutex
	seen []string
	mux  *http.ServeMux
}

func newBackend(log string) *backend {
	b := &backend{mux: http.NewServeMux()}
	b.mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"state":"running"}`)
	})
	b.mux.HandleFunc("GET /v1/jobs/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, log)
	})
	b.mux.HandleFunc("POST /v1/jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "cancelled")
	})
	b.mux.HandleFunc("GET /v1/ipfs/pins", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pins")
	})
	return b
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.seen = append(b.seen, r.Method+" "+r.URL.String())
	b.mu.Unlock()
	b.mux.ServeHTTP(w, r)
}

func do(t *testing.T, h http.Handler, method, target, host, auth string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	if host != "" {
		r.Host = host
	}
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestReadOnlyAllowlist(t *testing.T) {
	b := newBackend("line\n")
	h := Handler(b, "", true)
	for _, c := range []struct {
		method, target string
		code           int
		body           string
	}{
		{"GET", "/api/v1/status", 200, `{"state":"running"}`},
		{"GET", "/", 200, "<title>gpunode</title>"},
		{"GET", "/app.js", 200, "/api"},
		{"POST", "/api/v1/status", 405, "read-only"},
		{"POST", "/api/v1/jobs/7/cancel", 405, "read-only"},
		{"GET", "/api/v1/jobs/7/cancel", 404, ""},
		{"GET", "/api/v1/ipfs/pins", 404, ""},
		{"GET", "/v1/ipfs/pins", 404, ""},
		{"DELETE", "/api/v1/status", 405, ""},
	} {
		w := do(t, h, c.method, c.target, "127.0.0.1:9836", "")
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.body) {
			t.Errorf("%s %s: %d %q, want %d with %q", c.method, c.target, w.Code, w.Body.String(), c.code, c.body)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s %s: CSP %q", c.method, c.target, csp)
		}
	}
	for _, s := range b.seen {
		if !strings.HasPrefix(s, "GET /v1/status") {
			t.Errorf("reached the control API: %s", s)
		}
	}
}

func TestToken(t *testing.T) {
	const token = "0123456789abcdef0123"
	h := Handler(newBackend(""), token, false)
	for _, c := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer wrong", 401}, {"Basic " + token, 401}, {"Bearer " + token, 200}} {
		if w := do(t, h, "GET", "/api/v1/status", "rig.example:9836", c.auth); w.Code != c.code {
			t.Errorf("auth %q: %d, want %d", c.auth, w.Code, c.code)
		}
	}
	// The page itself holds no data and loads without the token.
	if w := do(t, h, "GET", "/", "rig.example:9836", ""); w.Code != 200 {
		t.Errorf("index without token: %d", w.Code)
	}
}

// TestDNSRebinding: a page on another site that points its own name at 127.0.0.1 cannot
// read a loopback dashboard: its requests carry its name as Host.
func TestDNSRebinding(t *testing.T) {
	h := Handler(newBackend(""), "", true)
	for host, code := range map[string]int{"127.0.0.1:9836": 200, "localhost:9836": 200, "[::1]:9836": 200, "evil.example:9836": 421, "evil.example": 421} {
		if w := do(t, h, "GET", "/api/v1/status", host, ""); w.Code != code {
			t.Errorf("Host %s: %d, want %d", host, w.Code, code)
		}
	}
}

func TestLogTailAndNoQuery(t *testing.T) {
	var log strings.Builder
	for i := 0; log.Len() < 3*LogTail; i++ {
		log.WriteString(strings.Repeat("x", 100) + " line\n")
	}
	log.WriteString("the last line\n")
	b := newBackend(log.String())
	h := Handler(b, "", true)
	w := do(t, h, "GET", "/api/v1/jobs/7/logs?follow=1", "127.0.0.1", "")
	body := w.Body.String()
	if w.Code != 200 || len(body) > LogTail || !strings.HasSuffix(body, "the last line\n") || !strings.HasPrefix(body, "x") {
		t.Errorf("log tail: %d, %d bytes, ends %q", w.Code, len(body), body[max(0, len(body)-20):])
	}
	if len(b.seen) != 1 || b.seen[0] != "GET /v1/jobs/7/logs" {
		t.Errorf("the control API saw %v, want the log route with no query (never followed)", b.seen)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		errs int
	}{
		{Default(), 0},
		{Config{}, 0},
		{Config{Listen: "localhost:1"}, 0},
		{Config{Listen: "[::1]:1"}, 0},
		{Config{Listen: "0.0.0.0:9836"}, 1},
		{Config{Listen: ":9836"}, 1},
		{Config{Listen: "0.0.0.0:9836", TokenFile: "/etc/gpunode/ui-token"}, 0},
		{Config{Listen: "nonsense"}, 1},
	} {
		if errs := c.cfg.Validate(); len(errs) != c.errs {
			t.Errorf("%+v: %v, want %d problems", c.cfg, errs, c.errs)
		}
	}
}

func TestServeRefusesShortToken(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	os.WriteFile(f, []byte("short\n"), 0o600)
	err := Serve(t.Context(), Config{Listen: "127.0.0.1:0", TokenFile: f}, newBackend(""), testkit.Discard())
	if err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("Serve with a short token: %v", err)
	}
}
