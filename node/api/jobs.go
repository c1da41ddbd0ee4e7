package api

import (
	"context"
	"net/url"
)

// The jobs a node takes are node/jobs' own records (jobs.Job, and jobs.Detail with its
// history), which carry the job manifest and the container's result: their types live
// with the state machine, and these methods decode into the value the caller gives.

// Jobs lists the node's jobs into out, a *[]jobs.Job.
func (c *Client) Jobs(ctx context.Context, out any) error {
	return c.Get(ctx, "/v1/jobs", out)
}

// Job reads job id with its history into out, a *jobs.Detail. A job the node does not
// know is ErrNotFound.
func (c *Client) Job(ctx context.Context, id string, out any) error {
	return c.Get(ctx, "/v1/jobs/"+url.PathEscape(id), out)
}
