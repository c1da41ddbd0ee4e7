package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// ErrNotRunning means no daemon answers on the socket.
var ErrNotRunning = errors.New("no gpunode daemon is running")

// Client talks to a daemon's control API.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Get fetches path and decodes the JSON answer into out (which may be nil).
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// Post sends in as JSON to path and decodes the answer into out (which may be nil).
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.Do(ctx, http.MethodPost, path, in, out)
}

// Stream opens path and returns the raw response body, for logs and progress.
func (c *Client) Stream(ctx context.Context, path string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(path, resp)
	}
	return resp.Body, nil
}

// Upload posts body (of contentType) to path and decodes the JSON answer into out
// (which may be nil).
func (c *Client) Upload(ctx context.Context, path, contentType string, body io.Reader, out any) error {
	resp, err := c.request(ctx, http.MethodPost, path, contentType, body)
	if err != nil {
		return err
	}
	return answer(path, resp, out)
}

// Do performs one request with an optional JSON body and JSON answer.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	return answer(path, resp, out)
}

// answer decodes a JSON answer into out (which may be nil), or the error it carries.
func answer(path string, resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeError(path, resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api %s: decode answer: %w", path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	if in == nil {
		return c.request(ctx, method, path, "", nil)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("api %s: encode request: %w", path, err)
	}
	return c.request(ctx, method, path, "application/json", bytes.NewReader(b))
}

func (c *Client) request(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://gpunode"+path, body)
	if err != nil {
		return nil, fmt.Errorf("api %s: %w", path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (socket %s); start it with `gpunode daemon` or point --api-socket at its socket", ErrNotRunning, c.socket)
		}
		return nil, fmt.Errorf("api %s: %w", path, err)
	}
	return resp, nil
}

// decodeError restores an error answer: its class, its status and the daemon's message.
func decodeError(path string, resp *http.Response) error {
	e := &Error{Status: resp.StatusCode, Class: ClassOfStatus(resp.StatusCode), Message: fmt.Sprintf("api %s: %s", path, resp.Status)}
	var body ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message = body.Error
		if body.Class != "" {
			e.Class = body.Class
		}
	}
	return e
}
