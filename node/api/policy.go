package api

import (
	"context"
	"encoding/json"
	"math/big"
	"time"
)

// The policy and admission routes are served by node/policy (Holder.Routes); these are
// their wire types.

// AdmissionStatus is whether the node takes new jobs.
type AdmissionStatus struct {
	State       string    `json:"state"` // active, cordoned, draining, drained
	Reason      string    `json:"reason,omitempty"`
	Since       time.Time `json:"since"`
	RunningJobs int       `json:"running_jobs"`
}

// PolicyStatus describes the policy in force.
type PolicyStatus struct {
	File            string          `json:"file,omitempty"`
	PoolKey         string          `json:"pool_key,omitempty"`
	PoolPolicyFile  string          `json:"pool_policy_file,omitempty"`
	PoolSeq         uint64          `json:"pool_seq,omitempty"`
	HasPool         bool            `json:"has_pool"`
	HasLocal        bool            `json:"has_local"`
	LastReload      time.Time       `json:"last_reload"`
	LastReloadError string          `json:"last_reload_error,omitempty"`
	Admission       AdmissionStatus `json:"admission"`
	Overridden      []string        `json:"overridden,omitempty"`
	Paused          []string        `json:"paused,omitempty"`
}

// PolicyCheck is one rule's verdict in a policy decision.
type PolicyCheck struct {
	Layer  string `json:"layer"`
	Rule   string `json:"rule"`
	Kind   string `json:"kind"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

// PolicyRejection is a recent offer the node turned down.
type PolicyRejection struct {
	Time    time.Time     `json:"time"`
	Image   string        `json:"image"`
	Sponsor string        `json:"sponsor"`
	Failed  []PolicyCheck `json:"failed"`
}

// AdmissionRequest is the body of the drain and cordon routes.
type AdmissionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// PolicyRejections is the answer of GET /v1/policy/rejections.
type PolicyRejections struct {
	Recent []PolicyRejection `json:"recent"`
}

// PoolPolicyRequest is the body of POST /v1/policy/pool: a signed envelope.
type PoolPolicyRequest struct {
	Signed []byte `json:"signed"`
}

// Drain stops the node taking new jobs and lets running ones finish.
func (c *Client) Drain(ctx context.Context, reason string) (AdmissionStatus, error) {
	var out AdmissionStatus
	err := c.Post(ctx, "/v1/admission/drain", AdmissionRequest{Reason: reason}, &out)
	return out, err
}

// Cordon stops the node taking new jobs.
func (c *Client) Cordon(ctx context.Context, reason string) (AdmissionStatus, error) {
	var out AdmissionStatus
	err := c.Post(ctx, "/v1/admission/cordon", AdmissionRequest{Reason: reason}, &out)
	return out, err
}

// Uncordon lets the node take jobs again.
func (c *Client) Uncordon(ctx context.Context) (AdmissionStatus, error) {
	var out AdmissionStatus
	err := c.Post(ctx, "/v1/admission/uncordon", AdmissionRequest{}, &out)
	return out, err
}

// Admission returns the node's admission state.
func (c *Client) Admission(ctx context.Context) (AdmissionStatus, error) {
	var out AdmissionStatus
	err := c.Get(ctx, "/v1/admission", &out)
	return out, err
}

// Policy returns the status of the policy in force.
func (c *Client) Policy(ctx context.Context) (PolicyStatus, error) {
	var out PolicyStatus
	err := c.Get(ctx, "/v1/policy", &out)
	return out, err
}

// ReloadPolicy makes the daemon re-read its policy files; on error the old policy stays.
func (c *Client) ReloadPolicy(ctx context.Context) (PolicyStatus, error) {
	var out PolicyStatus
	err := c.Post(ctx, "/v1/policy/reload", nil, &out)
	return out, err
}

// PolicyRejections lists the offers the node recently turned down.
func (c *Client) PolicyRejections(ctx context.Context) ([]PolicyRejection, error) {
	var out PolicyRejections
	err := c.Get(ctx, "/v1/policy/rejections", &out)
	return out.Recent, err
}

// PushPoolPolicy hands the daemon a signed pool policy.
func (c *Client) PushPoolPolicy(ctx context.Context, signed []byte) (PolicyStatus, error) {
	var out PolicyStatus
	err := c.Post(ctx, "/v1/policy/pool", PoolPolicyRequest{Signed: signed}, &out)
	return out, err
}

// PolicyDecision is the daemon's verdict on a job, rule by rule.
type PolicyDecision struct {
	Allow  bool          `json:"allow"`
	Checks []PolicyCheck `json:"checks"`
}

// PolicyCheckRequest is the body of POST /v1/policy/check.
type PolicyCheckRequest struct {
	// Manifest is the job manifest document (the JSON of a job.Manifest): the manifest
	// is a document of its own, the API carries it as it is.
	Manifest json.RawMessage `json:"manifest"`
	// Sponsor is the Ethereum address that would post the job.
	Sponsor string `json:"sponsor"`
	// PriceWei is the offered price in wei per GPU-hour.
	PriceWei *big.Int `json:"price_wei"`
}

// CheckPolicy asks the daemon whether its policy in force, with the node's current state,
// would take the job; nothing is counted.
func (c *Client) CheckPolicy(ctx context.Context, req PolicyCheckRequest) (PolicyDecision, error) {
	var out PolicyDecision
	err := c.Post(ctx, "/v1/policy/check", req, &out)
	return out, err
}
