package api

import (
	"context"
	"encoding/json"
)

// BenchmarkRequest asks the daemon to run a benchmark; empty fields take the daemon's
// configured profile and backend.
type BenchmarkRequest struct {
	Profile string `json:"profile,omitempty"`
	Backend string `json:"backend,omitempty"`
}

// LastBenchmark returns the daemon's last signed benchmark report as JSON (decode it with
// benchmark.DecodeReport).
func (c *Client) LastBenchmark(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.Get(ctx, "/v1/benchmark", &out)
	return out, err
}

// RunBenchmark runs a benchmark on the daemon and returns its signed report as JSON.
func (c *Client) RunBenchmark(ctx context.Context, req BenchmarkRequest) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.Post(ctx, "/v1/benchmark", req, &out)
	return out, err
}
