package ipfs

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ipfs/boxo/files"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	unixfile "github.com/ipfs/boxo/ipld/unixfs/file"
	"github.com/ipfs/go-cid"
)

// Content adapts the component to what the job state machine asks of content
// (node/jobs.Content): CIDs as strings, a small-file Get, Fetch, Publish.
type Content struct{ n *Node }

// Content returns the job-facing view of the component.
func (n *Node) Content() Content { return Content{n} }

// GetTimeout bounds Content.Get: small files (manifests) come in seconds or not at all.
const GetTimeout = 2 * time.Minute

// Get returns the bytes of a small file such as a job manifest, fetching only what it
// reads: content larger than max bytes is an error, not a download.
func (c Content) Get(ctx context.Context, s string, max int64) ([]byte, error) {
	// A manifest that no peer sends must not hold its caller forever.
	ctx, cancel := context.WithTimeout(ctx, GetTimeout)
	defer cancel()
	id, err := cid.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("cid %q: %w", s, err)
	}
	var r io.Reader
	if c.n.kubo != nil {
		resp, err := c.n.kubo.call(ctx, "cat", url.Values{"arg": {id.String()}, "length": {strconv.FormatInt(max+1, 10)}}, nil, "")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		r = resp.Body
	} else {
		online := dag.NewDAGService(c.n.bserv)
		nd, err := online.Get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("ipfs get %s: %w", id, err)
		}
		f, err := unixfile.NewUnixfsFile(ctx, online, nd)
		if err != nil {
			return nil, fmt.Errorf("ipfs get %s: %w", id, err)
		}
		defer f.Close()
		file, ok := f.(files.File)
		if !ok {
			return nil, fmt.Errorf("ipfs get %s: not a file", id)
		}
		r = file
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("ipfs get %s: %w", id, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("ipfs get %s: %w (more than %d bytes)", id, ErrTooLarge, max)
	}
	return b, nil
}

// Fetch makes the content available read-only and returns its path: the directory for
// a directory CID, the file itself for a file CID.
func (c Content) Fetch(ctx context.Context, s string) (string, error) {
	id, err := cid.Decode(s)
	if err != nil {
		return "", fmt.Errorf("cid %q: %w", s, err)
	}
	dir, err := c.n.Fetch(ctx, id)
	if err != nil {
		return "", err
	}
	// A file CID is the one entry <dir>/<cid>, a regular file (a directory CID could
	// hold an entry named like its own CID only as a deliberate trick; then the
	// directory has other entries or the entry is not a regular file).
	entries, err := os.ReadDir(dir)
	if err == nil && len(entries) == 1 && entries[0].Name() == id.String() && entries[0].Type().IsRegular() {
		if isFile, err := c.n.rootIsFile(ctx, id); err == nil && isFile {
			return filepath.Join(dir, id.String()), nil
		}
	}
	return dir, nil
}

// Publish adds dir, pins and provides it (and asks the remote pinning service, if
// any), and returns its root CID.
func (c Content) Publish(ctx context.Context, dir string) (string, error) {
	res, err := c.n.Add(ctx, dir, "")
	if err != nil {
		return "", err
	}
	return res.CID, nil
}

// rootIsFile says whether the stored root of id is a file (not a directory).
func (n *Node) rootIsFile(ctx context.Context, id cid.Cid) (bool, error) {
	if id.Type() == cid.Raw {
		return true, nil
	}
	if n.kubo != nil {
		var out struct{ Type string }
		if err := n.kubo.callJSON(ctx, "files/stat", url.Values{"arg": {"/ipfs/" + id.String()}}, &out); err != nil {
			return false, err
		}
		return out.Type == "file", nil
	}
	nd, err := n.offline.Get(ctx, id)
	if err != nil {
		return false, err
	}
	f, err := unixfile.NewUnixfsFile(ctx, n.offline, nd)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, isFile := f.(files.File)
	return isFile, nil
}
