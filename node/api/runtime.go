package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"

	"github.com/gpunode/gpunode/runtime"
)

// PullRequest is the body of POST /v1/images/pull.
type PullRequest struct {
	Ref string `json:"ref"`
	// AllowTag lets Ref be a tag-only reference.
	AllowTag bool `json:"allow_tag,omitempty"`
}

// PullEvent is one line of the newline-delimited JSON answer of POST /v1/images/pull:
// progress lines, then one line with the image or the error.
type PullEvent struct {
	Progress *runtime.PullProgress `json:"progress,omitempty"`
	Image    *runtime.Image        `json:"image,omitempty"`
	Error    string                `json:"error,omitempty"`
}

// PruneRequest is the body of POST /v1/images/prune.
type PruneRequest struct {
	// CapBytes prunes down to this size instead of the configured cap.
	CapBytes *int64 `json:"cap_bytes,omitempty"`
}

// PullImage asks the daemon to pull ref, calling progress for each update.
func (c *Client) PullImage(ctx context.Context, req PullRequest, progress func(runtime.PullProgress)) (runtime.Image, error) {
	resp, err := c.send(ctx, "POST", "/v1/images/pull", req)
	if err != nil {
		return runtime.Image{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return runtime.Image{}, decodeError("/v1/images/pull", resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev PullEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return runtime.Image{}, fmt.Errorf("api /v1/images/pull: %w", err)
		}
		switch {
		case ev.Error != "":
			return runtime.Image{}, fmt.Errorf("%s", ev.Error)
		case ev.Image != nil:
			return *ev.Image, nil
		case ev.Progress != nil && progress != nil:
			progress(*ev.Progress)
		}
	}
	if err := sc.Err(); err != nil {
		return runtime.Image{}, fmt.Errorf("api /v1/images/pull: %w", err)
	}
	return runtime.Image{}, fmt.Errorf("api /v1/images/pull: answer ended without a result")
}

// Images lists the node's image cache.
func (c *Client) Images(ctx context.Context) ([]runtime.Image, error) {
	var out []runtime.Image
	return out, c.Get(ctx, "/v1/images", &out)
}

// PruneImages prunes the node's image cache.
func (c *Client) PruneImages(ctx context.Context, req PruneRequest) (runtime.PruneReport, error) {
	var out runtime.PruneReport
	return out, c.Post(ctx, "/v1/images/prune", req, &out)
}

// JobLogs streams a job's log; with follow, until the job ends.
func (c *Client) JobLogs(ctx context.Context, jobID string, follow bool) (io.ReadCloser, error) {
	q := ""
	if follow {
		q = "?follow=1"
	}
	return c.Stream(ctx, "/v1/jobs/"+url.PathEscape(jobID)+"/logs"+q)
}
