package api

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/gpunode/gpunode/internal/treetar"
)

// IPFSAddRequest is the body of POST /v1/ipfs/add. Path is read by the daemon, so it
// must be absolute, readable by the daemon's user, and in a folder the operator lists
// in ipfs.host_paths.
type IPFSAddRequest struct {
	Path string `json:"path"`
	Name string `json:"name,omitempty"`
}

// IPFSGetRequest is the body of POST /v1/ipfs/get. Dir is written by the daemon, so it
// must be in a folder of ipfs.host_paths.
type IPFSGetRequest struct {
	CID string `json:"cid"`
	Dir string `json:"dir"`
}

// IPFSPinRequest is the body of POST /v1/ipfs/pins, and its answer.
type IPFSPinRequest struct {
	CID  string `json:"cid"`
	Name string `json:"name,omitempty"`
}

// IPFSAddResult is what the daemon stored for an add or an upload.
type IPFSAddResult struct {
	CID   string `json:"cid"`
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"` // file bytes read
	// Remote is the remote pin status, if a pinning service is configured.
	Remote string `json:"remote"`
}

// IPFSProgress is the state of one fetch.
type IPFSProgress struct {
	CID string `json:"cid"`
	// State is fetching, done or failed.
	State string `json:"state"`
	// Blocks counts the blocks seen so far: Local were in the blockstore, FromNetwork
	// came from peers.
	Blocks      int   `json:"blocks"`
	Local       int   `json:"local"`
	FromNetwork int   `json:"from_network"`
	Bytes       int64 `json:"bytes"`
	// Path is the read-only cache directory, once done.
	Path    string    `json:"path,omitempty"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// IPFSPin is one pinned root.
type IPFSPin struct {
	CID     string    `json:"cid"`
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
	// Remote is the root's state on the remote pinning service, if one is configured.
	Remote *IPFSRemotePin `json:"remote,omitempty"`
}

// IPFSRemotePin is a root's state on a remote pinning service.
type IPFSRemotePin struct {
	RequestID string `json:"requestid"`
	// Status is queued, pinning, pinned or failed.
	Status string `json:"status"`
}

// IPFSAdd asks the daemon to add the file or directory at path (absolute, readable
// by the daemon), pin it and publish it.
func (c *Client) IPFSAdd(ctx context.Context, path, name string) (IPFSAddResult, error) {
	var out IPFSAddResult
	err := c.Post(ctx, "/v1/ipfs/add", IPFSAddRequest{Path: path, Name: name}, &out)
	return out, err
}

// IPFSUpload sends the file or directory at path to the daemon, which adds it, pins it
// and publishes it: unlike IPFSAdd, the daemon need not be able to read path.
func (c *Client) IPFSUpload(ctx context.Context, path, name string) (IPFSAddResult, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return IPFSAddResult{}, err
	}
	q := url.Values{"name": {name}}
	if fi.IsDir() {
		q.Set("dir", "1")
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(treetar.Write(pw, path)) }()
	defer pr.Close()
	var out IPFSAddResult
	err = c.Upload(ctx, "/v1/ipfs/upload?"+q.Encode(), "application/x-tar", pr, &out)
	return out, err
}

// IPFSDownload fetches cid through the daemon and writes it into dir (created if
// missing), which only this process needs to be able to write: a directory CID's entries
// go into dir, a file CID becomes dir/<cid>.
func (c *Client) IPFSDownload(ctx context.Context, cid, dir string) error {
	body, err := c.Stream(ctx, "/v1/ipfs/tar/"+url.PathEscape(cid))
	if err != nil {
		return err
	}
	defer body.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := treetar.Extract(body, dir, 0); err != nil {
		return fmt.Errorf("fetch %s: %w", cid, err)
	}
	return nil
}

// IPFSGet asks the daemon to fetch cid and write it into dir (absolute).
func (c *Client) IPFSGet(ctx context.Context, cid, dir string) (IPFSProgress, error) {
	var out IPFSProgress
	err := c.Post(ctx, "/v1/ipfs/get", IPFSGetRequest{CID: cid, Dir: dir}, &out)
	return out, err
}

// IPFSFetch returns the progress of the daemon's fetch of cid.
func (c *Client) IPFSFetch(ctx context.Context, cid string) (IPFSProgress, error) {
	var out IPFSProgress
	err := c.Get(ctx, "/v1/ipfs/fetches/"+url.PathEscape(cid), &out)
	return out, err
}

// IPFSPins lists the daemon's pins.
func (c *Client) IPFSPins(ctx context.Context) ([]IPFSPin, error) {
	var out []IPFSPin
	err := c.Get(ctx, "/v1/ipfs/pins", &out)
	return out, err
}

// IPFSGCResult says what a garbage collection removed.
type IPFSGCResult struct {
	Blocks int   `json:"blocks"`
	Bytes  int64 `json:"bytes"`
}

// IPFSUnpin removes cid from the daemon's pin set.
func (c *Client) IPFSUnpin(ctx context.Context, cid string) error {
	return c.Do(ctx, "DELETE", "/v1/ipfs/pins/"+url.PathEscape(cid), nil, nil)
}

// IPFSGC asks the daemon to delete every unpinned block.
func (c *Client) IPFSGC(ctx context.Context) (IPFSGCResult, error) {
	var out IPFSGCResult
	err := c.Post(ctx, "/v1/ipfs/gc", struct{}{}, &out)
	return out, err
}

// IPFSFetches lists the daemon's fetches.
func (c *Client) IPFSFetches(ctx context.Context) ([]IPFSProgress, error) {
	var out []IPFSProgress
	err := c.Get(ctx, "/v1/ipfs/fetches", &out)
	return out, err
}

// IPFSPin pins cid (fetching it) under name.
func (c *Client) IPFSPin(ctx context.Context, cid, name string) (IPFSPinRequest, error) {
	var out IPFSPinRequest
	err := c.Post(ctx, "/v1/ipfs/pins", IPFSPinRequest{CID: cid, Name: name}, &out)
	return out, err
}
