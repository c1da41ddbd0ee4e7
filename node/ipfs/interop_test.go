//go:build integration

package ipfs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKuboInterop checks acceptance 2: kubo fetches over bitswap what gpunode added,
// gpunode fetches what kubo added, on loopback, and both sides' bytes match.
func TestKuboInterop(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	k := newKubo(t)
	k.start()
	h := newHost(t)
	n := newNode(t, "", h, nil)
	connect(t, h, k.addr)

	t.Run("kubo-from-gpunode", func(t *testing.T) {
		src := t.TempDir()
		writeRandom(t, filepath.Join(src, "weights.bin"), 5<<20+123, 21)
		os.Mkdir(filepath.Join(src, "cfg"), 0o755)
		writeRandom(t, filepath.Join(src, "cfg", "params.json"), 300, 22)
		res, err := n.Add(ctx, src, "ckpt")
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "got")
		k.run("get", "-o", out, res.CID) // the daemon fetches over bitswap from us
		sameFile(t, filepath.Join(src, "weights.bin"), filepath.Join(out, "weights.bin"))
		sameFile(t, filepath.Join(src, "cfg", "params.json"), filepath.Join(out, "cfg", "params.json"))
		// kubo really got the blocks (not just the root) and holds them locally.
		k.run("pin", "add", "--progress=false", res.CID)
		k.run("refs", "--offline", "-r", res.CID)
	})

	t.Run("gpunode-from-kubo", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "dataset.bin")
		writeRandom(t, src, 7<<20+5, 23)
		c := k.run("add", "-Q", "--cid-version", "1", "--raw-leaves", src)
		dir, err := n.Fetch(ctx, mustCID(t, c))
		if err != nil {
			t.Fatal(err)
		}
		sameFile(t, src, filepath.Join(dir, c))
	})
}

// TestKuboMode runs the component against a kubo daemon through its RPC API: the
// CID is the one the embedded importer computes, and fetch and pins go through kubo.
func TestKuboMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	k := newKubo(t)
	k.start()
	dir := t.TempDir()
	cfg := Default()
	cfg.Mode, cfg.KuboAPI, cfg.Dir = ModeKubo, k.api, dir
	n, err := New(cfg, dir, nil, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "a.bin"), 1<<20+7, 31)
	os.MkdirAll(filepath.Join(src, "x", "y"), 0o755)
	writeRandom(t, filepath.Join(src, "x", "y", "b.bin"), 999, 32)
	writeRandom(t, filepath.Join(src, ".hidden"), 10, 33)
	want, err := Hash(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Add(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.CID != want.String() {
		t.Fatalf("kubo mode add = %s, embedded hash = %s", res.CID, want)
	}
	got, err := n.Fetch(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(src, "x", "y", "b.bin"), filepath.Join(got, "x", "y", "b.bin"))
	sameFile(t, filepath.Join(src, ".hidden"), filepath.Join(got, ".hidden"))
	pins, err := n.Pins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pins {
		found = found || p.CID == res.CID
	}
	if !found {
		t.Errorf("pins %+v lack %s", pins, res.CID)
	}
}

// TestRemotePinning publishes a checkpoint with a Pinning Service configured. The
// service here is a small Pinning Service API server whose storage is a real kubo
// daemon: it pins from the origins the node gives. After the node is gone, kubo
// still has every block: the checkpoint outlived the rig.
func TestRemotePinning(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	k := newKubo(t)
	k.start()
	svc := newPinService(t, k, "s3cret")
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	h := newHost(t)
	n := newNode(t, dir, h, func(c *Config) {
		c.RemotePinning = RemotePinningConfig{Endpoint: svc.URL, TokenFile: tok, Timeout: Duration(10 * time.Second)}
	})
	src := filepath.Join(t.TempDir(), "ckpt.bin")
	writeRandom(t, src, 3<<20, 41)
	res, err := n.Add(ctx, src, "ckpt-1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Remote == "" || strings.HasPrefix(res.Remote, "error") {
		t.Fatalf("remote pin: %q", res.Remote)
	}
	for {
		pins, err := n.Pins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(pins) == 1 && pins[0].Remote != nil && pins[0].Remote.Status == "pinned" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("remote pin never reached pinned: %+v", pins)
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.Close()
	h.Close()
	out := filepath.Join(t.TempDir(), "out")
	defer func() {
		// Unpinning locally withdraws the remote pin too.
		n3 := newNode(t, dir, newHost(t), func(c *Config) {
			c.RemotePinning = RemotePinningConfig{Endpoint: svc.URL, TokenFile: tok, Timeout: Duration(10 * time.Second)}
		})
		os.WriteFile(tok, []byte("s3cret"), 0o600)
		n3.remote.token = "s3cret"
		if err := n3.Unpin(ctx, mustCID(t, res.CID)); err != nil {
			t.Fatal(err)
		}
		svc.mu.Lock()
		defer svc.mu.Unlock()
		if len(svc.pins) != 0 {
			t.Errorf("remote pins after unpin: %v", svc.pins)
		}
	}()
	k.run("get", "--offline", "-o", out, res.CID)
	sameFile(t, src, out)

	// A wrong token is refused and reported, while the local pin stands.
	os.WriteFile(tok, []byte("wrong"), 0o600)
	n2 := newNode(t, "", newHost(t), func(c *Config) {
		c.RemotePinning = RemotePinningConfig{Endpoint: svc.URL, TokenFile: tok, Timeout: Duration(10 * time.Second)}
	})
	res2, err := n2.Add(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res2.Remote, "error") {
		t.Errorf("remote pin with a wrong token: %q, want an error", res2.Remote)
	}
}

type pinService struct {
	*httptest.Server
	mu   sync.Mutex
	pins map[string]*PinStatus
}

// newPinService serves the Pinning Service API (POST /pins, GET /pins/{id}) on
// loopback, pinning into kubo k.
func newPinService(t *testing.T, k *kubo, token string) *pinService {
	s := &pinService{pins: make(map[string]*PinStatus)}
	mux := http.NewServeMux()
	auth := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"reason": "UNAUTHORIZED", "details": "bad token"}})
			return false
		}
		return true
	}
	mux.HandleFunc("POST /pins", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var req struct {
			CID     string   `json:"cid"`
			Name    string   `json:"name"`
			Origins []string `json:"origins"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		st := &PinStatus{RequestID: fmt.Sprintf("req-%d", len(s.pins)+1), Status: "queued", Created: time.Now()}
		st.Pin.CID, st.Pin.Name, st.Pin.Origins = req.CID, req.Name, req.Origins
		s.pins[st.RequestID] = st
		out := *st
		s.mu.Unlock()
		go func() {
			status := "pinned"
			for _, o := range req.Origins {
				k.rpc("swarm/connect", nil, "arg", o)
			}
			if err := k.rpc("pin/add", nil, "arg", req.CID); err != nil {
				status = "failed"
			}
			s.mu.Lock()
			st.Status = status
			s.mu.Unlock()
		}()
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("DELETE /pins/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		s.mu.Lock()
		_, ok := s.pins[r.PathValue("id")]
		delete(s.pins, r.PathValue("id"))
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /pins/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		s.mu.Lock()
		st, ok := s.pins[r.PathValue("id")]
		var out PinStatus
		if ok {
			out = *st
		}
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(out)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}
