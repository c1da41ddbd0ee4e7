package ipfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"

	"github.com/gpunode/gpunode/internal/treetar"
	"github.com/gpunode/gpunode/node/api"
)

// The control API's IPFS routes call these methods; their errors carry the class the
// API answers with.

// AddHostPath adds the file or directory at req.Path, which the daemon reads: it must
// be absolute, in a folder the operator lists in ipfs.host_paths (see Node.hostPath),
// else the error is api.ErrForbidden.
func (n *Node) AddHostPath(ctx context.Context, req api.IPFSAddRequest) (AddResult, error) {
	path, err := n.hostPath(req.Path)
	if err != nil {
		return AddResult{}, api.WithClass(api.ErrForbidden, err)
	}
	res, err := n.Add(ctx, path, req.Name)
	return res, classed(err)
}

// GetHostPath fetches req.CID into req.Dir, which the daemon writes: it must be in a
// folder of ipfs.host_paths, else the error is api.ErrForbidden.
func (n *Node) GetHostPath(ctx context.Context, req api.IPFSGetRequest) (Progress, error) {
	c, err := parseCID(req.CID)
	if err != nil {
		return Progress{}, err
	}
	dir, err := n.hostPath(req.Dir)
	if err != nil {
		return Progress{}, api.WithClass(api.ErrForbidden, err)
	}
	if err := n.Get(ctx, c, dir); err != nil {
		return Progress{}, classed(err)
	}
	p, ok := n.FetchProgress(c)
	if !ok { // served from the input cache, fetched before this process started
		p = Progress{CID: c.String(), State: "done", Path: filepath.Join(n.inputsDir(), c.String())}
	}
	return p, nil
}

// UploadLimit caps an upload's body: the blockstore's size, plus room for the archive's
// headers and padding (treetar.Extract caps the file content itself).
func (n *Node) UploadLimit() int64 {
	return n.cfg.MaxStorageBytes + n.cfg.MaxStorageBytes/8 + (1 << 20)
}

// Upload adds content sent as a tar archive (internal/treetar) — a directory (dir) or
// one file — so the CLI can add what the daemon cannot read itself.
func (n *Node) Upload(ctx context.Context, archive io.Reader, name string, dir bool) (AddResult, error) {
	up := filepath.Join(n.dir, "uploads")
	if err := os.MkdirAll(up, 0o700); err != nil {
		return AddResult{}, err
	}
	tmp, err := os.MkdirTemp(up, "up-")
	if err != nil {
		return AddResult{}, err
	}
	defer os.RemoveAll(tmp)
	tops, err := treetar.Extract(archive, tmp, n.cfg.MaxStorageBytes)
	if err != nil {
		class := api.ErrInvalidArgument
		if errors.Is(err, treetar.ErrTooLarge) {
			class = api.ErrStorageFull
		}
		return AddResult{}, api.WithClass(class, fmt.Errorf("upload: %w", err))
	}
	root := tmp
	if !dir {
		if len(tops) != 1 {
			return AddResult{}, api.WithClass(api.ErrInvalidArgument, fmt.Errorf("upload: want one file, the archive holds %d entries", len(tops)))
		}
		root = filepath.Join(tmp, tops[0])
		if name == "" {
			name = tops[0]
		}
	} else if name == "" {
		name = "upload"
	}
	res, err := n.Add(ctx, root, name)
	return res, classed(err)
}

// Tar fetches a CID and returns the writer of its tar archive: a directory as its
// entries, a file as one entry named by the CID (as GetHostPath lays them out).
func (n *Node) Tar(ctx context.Context, s string) (func(io.Writer) error, error) {
	c, err := parseCID(s)
	if err != nil {
		return nil, err
	}
	src, err := n.Fetch(ctx, c)
	if err != nil {
		return nil, classed(err)
	}
	return func(w io.Writer) error { return treetar.Write(w, src) }, nil
}

// FetchOf returns the progress of the fetch of a CID; api.ErrNotFound if there is none.
func (n *Node) FetchOf(s string) (Progress, error) {
	c, err := parseCID(s)
	if err != nil {
		return Progress{}, err
	}
	p, ok := n.FetchProgress(c)
	if !ok {
		return Progress{}, api.WithClass(api.ErrNotFound, fmt.Errorf("no fetch of %s", c))
	}
	return p, nil
}

// PinRoot pins req.CID under req.Name, fetching it.
func (n *Node) PinRoot(ctx context.Context, req api.IPFSPinRequest) (api.IPFSPinRequest, error) {
	c, err := parseCID(req.CID)
	if err != nil {
		return req, err
	}
	return req, classed(n.PinCID(ctx, c, req.Name))
}

// UnpinRoot removes a CID from the pin set; api.ErrNotFound if it is not pinned.
func (n *Node) UnpinRoot(ctx context.Context, s string) error {
	c, err := parseCID(s)
	if err != nil {
		return err
	}
	return classed(n.Unpin(ctx, c))
}

// classed gives the node's errors their API class.
func classed(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotPinned):
		return api.WithClass(api.ErrNotFound, err)
	case errors.Is(err, ErrStorageFull), errors.Is(err, ErrTooLarge):
		return api.WithClass(api.ErrStorageFull, err)
	default:
		return err
	}
}

// parseCID reads a CID given to the control API.
func parseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, api.WithClass(api.ErrInvalidArgument, fmt.Errorf("cid %q: %w", s, err))
	}
	return c, nil
}
