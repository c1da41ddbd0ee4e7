package api

import (
	"context"
	"encoding/json"
	"time"
)

// Status is the answer to GET /v1/status.
type Status struct {
	Version       string    `json:"version"`
	Hostname      string    `json:"hostname"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// State is the node's state: "starting", "running" or "stopping".
	State string `json:"state"`
	// GPUMode is "nvml" (real GPUs), "simulated" or "cpu-only".
	GPUMode string `json:"gpu_mode"`
	// GPUNote says why the node runs CPU-only, when it does.
	GPUNote string      `json:"gpu_note,omitempty"`
	Driver  string      `json:"driver,omitempty"`
	CUDA    string      `json:"cuda,omitempty"`
	GPUs    []GPUStatus `json:"gpus"`
	// Checks are the node's prerequisites (container engine, chain, …) and their state.
	Checks []Check `json:"checks"`

	// GPURuntime is the GPU path's components as the last GPU preflight found them.
	GPURuntime []Component `json:"gpu_runtime,omitempty"`

	// Benchmark is the summary of the rig's last benchmark report, if it has one.
	Benchmark *BenchmarkSummary `json:"benchmark,omitempty"`
	// Admission says whether the node takes new jobs: active, cordoned, draining, drained.
	Admission *AdmissionStatus `json:"admission,omitempty"`
	// Chain is the node's view of the market contract; nil without a chain.
	Chain *MarketStatus `json:"chain,omitempty"`
	// Jobs counts the node's jobs by state; nil on a node that takes no jobs.
	Jobs map[string]int `json:"jobs,omitempty"`
	// Validations counts the jobs naming this node as a validator, by state: "posted"
	// (waiting for a result), "submitted" (being evaluated), "done" (attested).
	Validations map[string]int `json:"validations,omitempty"`
	// Earnings is the node's money on the JobMarket; nil on a node that takes no jobs.
	Earnings *Earnings `json:"earnings,omitempty"`
	// PeerID is the node's libp2p identity; empty when the network is off.
	PeerID string `json:"peer_id,omitempty"`
	// PolicyPaused says why the policy takes no job right now (time window, heat).
	PolicyPaused []string `json:"policy_paused,omitempty"`
	// Idle is the operator's idle workload; nil when none is configured.
	Idle *IdleStatus `json:"idle,omitempty"`
	// PoolOwed is what the pool owes a member node; nil on a node in no pool.
	PoolOwed *PoolOwed `json:"pool_owed,omitempty"`
}

// IdleStatus is what the operator's idle workload is doing.
type IdleStatus struct {
	Image string `json:"image"`
	// Running: its container runs now.
	Running bool `json:"running"`
	// Run is the runtime job ID of the current or last run.
	Run       string    `json:"run,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// HeldBy lists the jobs it gives way to.
	HeldBy []string `json:"held_by,omitempty"`
	// Starts counts its runs since the node started.
	Starts int `json:"starts"`
	// LastStopSeconds is how long the last hand-over to a job took.
	LastStopSeconds float64 `json:"last_stop_seconds,omitempty"`
	LastError       string  `json:"last_error,omitempty"`
}

// Check is one prerequisite of the node.
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Message says what is wrong and how to fix it, when it is not OK.
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
}

// Component is one part of the GPU path (the NVIDIA Container Toolkit, runc) as the GPU
// preflight found it, against the first release patched for known container escapes.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Minimum is the patched release (one per release branch, comma-separated).
	Minimum string `json:"minimum"`
	OK      bool   `json:"ok"`
	// Problem says what is wrong and how to fix it, when it is not OK.
	Problem string `json:"problem,omitempty"`
}

// GPUStatus is one GPU and its latest reading.
type GPUStatus struct {
	GPU
	// Sample is nil when the reading failed; Error says why.
	Sample *GPUSample `json:"sample,omitempty"`
	Error  string     `json:"error,omitempty"`
}

// GPU is one GPU of the rig, as the node's inventory found it.
type GPU struct {
	Index             int    `json:"index"`
	UUID              string `json:"uuid"`
	Name              string `json:"name"`
	PCIBusID          string `json:"pci_bus_id"`
	MemoryBytes       uint64 `json:"memory_bytes"`
	ComputeCapability string `json:"compute_capability"`
	// MIG is true when the GPU is in Multi-Instance GPU mode; its instances, not the
	// GPU, are handed to jobs.
	MIG       bool          `json:"mig"`
	Instances []MIGInstance `json:"mig_instances,omitempty"`
	// ECC is true when ECC memory is enabled.
	ECC bool `json:"ecc"`
	// Healthy is false once the GPU was lost or reported a fatal XID error; Problem
	// says why.
	Healthy bool   `json:"healthy"`
	Problem string `json:"problem,omitempty"`
}

// MIGInstance is one MIG instance of a GPU.
type MIGInstance struct {
	UUID            string `json:"uuid"`
	Name            string `json:"name,omitempty"`
	MemoryBytes     uint64 `json:"memory_bytes,omitempty"`
	GPUInstance     int    `json:"gpu_instance"`
	ComputeInstance int    `json:"compute_instance"`
}

// GPUSample is one reading of a GPU's telemetry: a field the GPU does not report is
// nil and named in Unsupported, a field whose reading failed is nil and named in Failed.
type GPUSample struct {
	GPUUtilPercent     *uint32  `json:"gpu_util_percent,omitempty"`
	MemCopyUtilPercent *uint32  `json:"mem_copy_util_percent,omitempty"`
	MemoryUsedBytes    *uint64  `json:"memory_used_bytes,omitempty"`
	MemoryFreeBytes    *uint64  `json:"memory_free_bytes,omitempty"`
	PowerWatts         *float64 `json:"power_watts,omitempty"`
	TemperatureC       *uint32  `json:"temperature_c,omitempty"`
	SMClockMHz         *uint32  `json:"sm_clock_mhz,omitempty"`
	MemClockMHz        *uint32  `json:"mem_clock_mhz,omitempty"`
	ECCUncorrected     *uint64  `json:"ecc_uncorrected,omitempty"`
	LastXID            uint64   `json:"last_xid"`
	XIDErrors          uint64   `json:"xid_errors"`
	Unsupported        []string `json:"unsupported,omitempty"`
	Failed             []string `json:"failed,omitempty"`
}

// Status fetches the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.Get(ctx, "/v1/status", &s)
	return s, err
}

// Doctor fetches the last report of `gpunode doctor` on this rig, as it wrote it (the
// JSON of a doctor.Report): a document of its own, passed through as it is.
func (c *Client) Doctor(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.Get(ctx, "/v1/doctor", &out)
	return out, err
}
