package ipfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// pinningClient speaks the IPFS Pinning Service API
// (https://ipfs.github.io/pinning-services-api-spec/).
type pinningClient struct {
	base    string
	token   string
	timeout time.Duration
	http    *http.Client
}

func newPinningClient(base, token string, timeout time.Duration) *pinningClient {
	return &pinningClient{
		base:    strings.TrimRight(base, "/"),
		token:   strings.TrimSpace(token),
		timeout: timeout,
		http:    &http.Client{},
	}
}

// PinStatus is the service's view of one pin request.
type PinStatus struct {
	RequestID string    `json:"requestid"`
	Status    string    `json:"status"`
	Created   time.Time `json:"created"`
	Pin       struct {
		CID     string   `json:"cid"`
		Name    string   `json:"name,omitempty"`
		Origins []string `json:"origins,omitempty"`
	} `json:"pin"`
	Delegates []string `json:"delegates"`
}

var pinStatuses = map[string]bool{"queued": true, "pinning": true, "pinned": true, "failed": true}

// decodePinStatus parses and checks a PinStatus from the service (untrusted).
func decodePinStatus(r io.Reader) (PinStatus, error) {
	var st PinStatus
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("pin status: %w", err)
	}
	if st.RequestID == "" || len(st.RequestID) > 256 {
		return st, errors.New("pin status: bad requestid")
	}
	if !pinStatuses[st.Status] {
		return st, fmt.Errorf("pin status: unknown status %q", st.Status)
	}
	if _, err := cid.Decode(st.Pin.CID); err != nil {
		return st, fmt.Errorf("pin status: cid: %w", err)
	}
	return st, nil
}

func (p *pinningClient) do(ctx context.Context, method, path string, in any) (PinStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return PinStatus{}, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, body)
	if err != nil {
		return PinStatus{}, err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return PinStatus{}, fmt.Errorf("pinning service: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Reason, Details string } `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && e.Error.Reason != "" {
			return PinStatus{}, fmt.Errorf("pinning service %s %s: %s: %s", method, path, e.Error.Reason, e.Error.Details)
		}
		return PinStatus{}, fmt.Errorf("pinning service %s %s: %s", method, path, resp.Status)
	}
	if method == http.MethodDelete {
		return PinStatus{}, nil
	}
	return decodePinStatus(resp.Body)
}

// add asks the service to pin c, fetching it from origins (our addresses).
func (p *pinningClient) add(ctx context.Context, c cid.Cid, name string, origins []string) (PinStatus, error) {
	in := map[string]any{"cid": c.String(), "name": name, "origins": origins}
	return p.do(ctx, http.MethodPost, "/pins", in)
}

func (p *pinningClient) status(ctx context.Context, requestID string) (PinStatus, error) {
	return p.do(ctx, http.MethodGet, "/pins/"+url.PathEscape(requestID), nil)
}

func (p *pinningClient) remove(ctx context.Context, requestID string) error {
	_, err := p.do(ctx, http.MethodDelete, "/pins/"+url.PathEscape(requestID), nil)
	return err
}

// pinRemote asks the remote pinning service, if any, to pin c; a failure is logged
// and reported in res, not returned: the content is pinned locally either way.
func (n *Node) pinRemote(ctx context.Context, c cid.Cid, name string, res *AddResult) {
	if n.remote == nil {
		return
	}
	origins := n.origins(ctx)
	st, err := n.remote.add(ctx, c, name, origins)
	if err != nil {
		n.log.Warn("remote pin failed", "cid", c.String(), "err", err)
		n.stats.remotePinFails.Add(1)
		res.Remote = "error: " + err.Error()
		return
	}
	res.Remote = st.Status
	if n.kubo != nil {
		return
	}
	_ = n.pins.update(c.String(), func(p *Pin) { p.Remote = &RemotePin{RequestID: st.RequestID, Status: st.Status} })
}

// origins lists full multiaddrs (with /p2p/) the service can fetch from.
func (n *Node) origins(ctx context.Context) []string {
	if n.kubo != nil {
		addrs, err := n.kubo.addrs(ctx)
		if err != nil {
			n.log.Warn("kubo addresses", "err", err)
		}
		return addrs
	}
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String()+"/p2p/"+n.host.ID().String())
	}
	return out
}
