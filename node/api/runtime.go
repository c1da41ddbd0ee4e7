package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"time"
)

// PullRequest is the body of POST /v1/images/pull.
type PullRequest struct {
	Ref string `json:"ref"`
	// AllowTag lets Ref be a tag-only reference.
	AllowTag bool `json:"allow_tag,omitempty"`
}

// PullProgress is one progress report of a pull.
type PullProgress struct {
	Image      string `json:"image"`
	Status     string `json:"status,omitempty"`
	Layers     int    `json:"layers"`
	LayersDone int    `json:"layers_done"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
}

// Image is an image in the node's cache.
type Image struct {
	ID          string    `json:"id"`
	Refs        []string  `json:"refs"`
	RepoDigests []string  `json:"repo_digests,omitempty"`
	SizeBytes   int64     `json:"size_bytes"`
	PulledAt    time.Time `json:"pulled_at"`
	LastUsed    time.Time `json:"last_used"`
}

// PruneReport says what pruning the image cache removed: the answer of
// POST /v1/images/prune.
type PruneReport struct {
	Removed    []Image `json:"removed"`
	FreedBytes int64   `json:"freed_bytes"`
	TotalBytes int64   `json:"total_bytes"`
	CapBytes   int64   `json:"cap_bytes"`
}

// PullEvent is one line of the newline-delimited JSON answer of POST /v1/images/pull:
// progress lines, then one line with the image or the error.
type PullEvent struct {
	Progress *PullProgress `json:"progress,omitempty"`
	Image    *Image        `json:"image,omitempty"`
	Error    string        `json:"error,omitempty"`
	// Class is the error's class.
	Class Class `json:"class,omitempty"`
}

// PruneRequest is the body of POST /v1/images/prune.
type PruneRequest struct {
	// CapBytes prunes down to this size instead of the configured cap.
	CapBytes *int64 `json:"cap_bytes,omitempty"`
}

// PullImage asks the daemon to pull ref, calling progress for each update.
func (c *Client) PullImage(ctx context.Context, req PullRequest, progress func(PullProgress)) (Image, error) {
	const path = "/v1/images/pull"
	resp, err := c.send(ctx, "POST", path, req)
	if err != nil {
		return Image{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return Image{}, decodeError(path, resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev PullEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return Image{}, fmt.Errorf("api %s: %w", path, err)
		}
		switch {
		case ev.Error != "":
			class := ev.Class
			if class == "" {
				class = ErrInternal
			}
			return Image{}, &Error{Class: class, Status: resp.StatusCode, Message: ev.Error}
		case ev.Image != nil:
			return *ev.Image, nil
		case ev.Progress != nil && progress != nil:
			progress(*ev.Progress)
		}
	}
	if err := sc.Err(); err != nil {
		return Image{}, fmt.Errorf("api %s: %w", path, err)
	}
	return Image{}, fmt.Errorf("api %s: answer ended without a result", path)
}

// Images lists the node's image cache.
func (c *Client) Images(ctx context.Context) ([]Image, error) {
	var out []Image
	return out, c.Get(ctx, "/v1/images", &out)
}

// PruneImages prunes the node's image cache.
func (c *Client) PruneImages(ctx context.Context, req PruneRequest) (PruneReport, error) {
	var out PruneReport
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
