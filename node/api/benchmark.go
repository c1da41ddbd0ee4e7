package api

import (
	"context"
	"encoding/json"
	"time"
)

// BenchmarkSummary is the last benchmark report in a few fields, for the node's status
// (and, with the report's CID, its capacity record).
type BenchmarkSummary struct {
	// RigScore is the rig's DL hashrate: the sum of its devices' scores, TFLOPS.
	RigScore float64           `json:"rig_score_tflops"`
	Devices  []BenchmarkDevice `json:"devices"`
	// AllReduceBusBW is the geometric mean all-reduce bus bandwidth, GB/s.
	AllReduceBusBW float64   `json:"allreduce_busbw_gbs,omitempty"`
	Profile        string    `json:"profile"`
	Backend        string    `json:"backend"`
	Harness        string    `json:"harness"`
	Fingerprint    string    `json:"fingerprint"`
	CreatedAt      time.Time `json:"created_at"`
	// SHA256 is the hash of the signed report as kept (indented JSON, last-report.json).
	SHA256 string `json:"sha256"`
}

// BenchmarkDevice is one device's benchmark score, TFLOPS.
type BenchmarkDevice struct {
	Device string  `json:"device"`
	Score  float64 `json:"score_tflops"`
}

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
