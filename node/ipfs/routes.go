package ipfs

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"

	"github.com/gpunode/gpunode/internal/treetar"
	"github.com/gpunode/gpunode/node/api"
)

// AddRequest is the body of POST /v1/ipfs/add. Path is read by the daemon, so it
// must be absolute, readable by the daemon's user, and in a folder the operator lists
// in ipfs.host_paths (see Node.hostPath).
type AddRequest struct {
	Path string `json:"path"`
	Name string `json:"name,omitempty"`
}

// GetRequest is the body of POST /v1/ipfs/get. Dir is written by the daemon, so it
// must be in a folder of ipfs.host_paths.
type GetRequest struct {
	CID string `json:"cid"`
	Dir string `json:"dir"`
}

// PinRequest is the body of POST /v1/ipfs/pins.
type PinRequest struct {
	CID  string `json:"cid"`
	Name string `json:"name,omitempty"`
}

// Routes registers the IPFS control-API routes.
func (n *Node) Routes(s *api.Server) {
	s.HandleFunc("POST /v1/ipfs/add", n.handleAdd)
	s.HandleStream("POST /v1/ipfs/get", n.handleGet) // waits for the fetch
	// An upload is capped at the blockstore's size; treetar.Extract caps the file
	// content itself, this caps the archive's headers and padding too.
	s.HandleUpload("POST /v1/ipfs/upload", n.cfg.MaxStorageBytes+n.cfg.MaxStorageBytes/8+(1<<20), n.handleUpload)
	s.HandleStream("GET /v1/ipfs/tar/{cid}", n.handleTar)
	s.HandleFunc("GET /v1/ipfs/fetches", func(w http.ResponseWriter, _ *http.Request) {
		api.WriteJSON(w, http.StatusOK, n.Fetches())
	})
	s.HandleFunc("GET /v1/ipfs/fetches/{cid}", n.handleFetch)
	s.HandleFunc("GET /v1/ipfs/pins", func(w http.ResponseWriter, r *http.Request) {
		pins, err := n.Pins(r.Context())
		if err != nil {
			api.WriteError(w, http.StatusBadGateway, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, pins)
	})
	s.HandleFunc("POST /v1/ipfs/pins", n.handlePin)
	s.HandleFunc("DELETE /v1/ipfs/pins/{cid}", n.handleUnpin)
	s.HandleFunc("POST /v1/ipfs/gc", func(w http.ResponseWriter, r *http.Request) {
		res, err := n.GC(r.Context())
		if err != nil {
			api.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, res)
	})
}

func (n *Node) handleAdd(w http.ResponseWriter, r *http.Request) {
	var req AddRequest
	if err := api.DecodeJSON(r, 64<<10, &req); err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	path, err := n.hostPath(req.Path)
	if err != nil {
		api.WriteError(w, http.StatusForbidden, err)
		return
	}
	res, err := n.Add(r.Context(), path, req.Name)
	if err != nil {
		api.WriteError(w, statusOf(err), err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	var req GetRequest
	if err := api.DecodeJSON(r, 64<<10, &req); err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	c, ok := parseCID(w, req.CID)
	if !ok {
		return
	}
	dir, err := n.hostPath(req.Dir)
	if err != nil {
		api.WriteError(w, http.StatusForbidden, err)
		return
	}
	if err := n.Get(r.Context(), c, dir); err != nil {
		api.WriteError(w, statusOf(err), err)
		return
	}
	p, ok := n.FetchProgress(c)
	if !ok { // served from the input cache, fetched before this process started
		p = Progress{CID: c.String(), State: "done", Path: filepath.Join(n.inputsDir(), c.String())}
	}
	api.WriteJSON(w, http.StatusOK, p)
}

// handleUpload adds content sent as a tar archive (internal/treetar) — a directory
// (?dir=1) or one file — so the CLI can add what the daemon cannot read itself.
func (n *Node) handleUpload(w http.ResponseWriter, r *http.Request) {
	up := filepath.Join(n.dir, "uploads")
	if err := os.MkdirAll(up, 0o700); err != nil {
		api.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	tmp, err := os.MkdirTemp(up, "up-")
	if err != nil {
		api.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	defer os.RemoveAll(tmp)
	tops, err := treetar.Extract(r.Body, tmp, n.cfg.MaxStorageBytes)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, treetar.ErrTooLarge) {
			status = http.StatusInsufficientStorage
		}
		api.WriteError(w, status, fmt.Errorf("upload: %w", err))
		return
	}
	name := r.URL.Query().Get("name")
	root := tmp
	if r.URL.Query().Get("dir") != "1" {
		if len(tops) != 1 {
			api.WriteError(w, http.StatusBadRequest, fmt.Errorf("upload: want one file, the archive holds %d entries", len(tops)))
			return
		}
		root = filepath.Join(tmp, tops[0])
		if name == "" {
			name = tops[0]
		}
	} else if name == "" {
		name = "upload"
	}
	res, err := n.Add(r.Context(), root, name)
	if err != nil {
		api.WriteError(w, statusOf(err), err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

// handleTar fetches a CID and sends it as a tar archive: a directory as its entries, a
// file as one entry named by the CID (as POST /v1/ipfs/get lays them out).
func (n *Node) handleTar(w http.ResponseWriter, r *http.Request) {
	c, ok := parseCID(w, r.PathValue("cid"))
	if !ok {
		return
	}
	src, err := n.Fetch(r.Context(), c)
	if err != nil {
		api.WriteError(w, statusOf(err), err)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	if err := treetar.Write(w, src); err != nil {
		n.log.Warn("send tar", "cid", c.String(), "err", err)
	}
}

func (n *Node) handleFetch(w http.ResponseWriter, r *http.Request) {
	c, ok := parseCID(w, r.PathValue("cid"))
	if !ok {
		return
	}
	p, ok := n.FetchProgress(c)
	if !ok {
		api.WriteError(w, http.StatusNotFound, fmt.Errorf("no fetch of %s", c))
		return
	}
	api.WriteJSON(w, http.StatusOK, p)
}

func (n *Node) handlePin(w http.ResponseWriter, r *http.Request) {
	var req PinRequest
	if err := api.DecodeJSON(r, 64<<10, &req); err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	c, ok := parseCID(w, req.CID)
	if !ok {
		return
	}
	if err := n.PinCID(r.Context(), c, req.Name); err != nil {
		api.WriteError(w, statusOf(err), err)
		return
	}
	api.WriteJSON(w, http.StatusOK, req)
}

func (n *Node) handleUnpin(w http.ResponseWriter, r *http.Request) {
	c, ok := parseCID(w, r.PathValue("cid"))
	if !ok {
		return
	}
	if err := n.Unpin(r.Context(), c); err != nil {
		api.WriteError(w, statusOf(err), err)
		return
	}
	api.WriteJSON(w, http.StatusOK, struct{}{})
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotPinned):
		return http.StatusNotFound
	case errors.Is(err, ErrStorageFull), errors.Is(err, ErrTooLarge):
		return http.StatusInsufficientStorage
	default:
		return http.StatusInternalServerError
	}
}

// parseCID reads a CID from a request, answering 400 when it is not one.
func parseCID(w http.ResponseWriter, s string) (cid.Cid, bool) {
	c, err := cid.Decode(s)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, fmt.Errorf("cid %q: %w", s, err))
		return cid.Undef, false
	}
	return c, true
}
