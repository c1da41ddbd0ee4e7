package api

import (
	"context"
	"encoding/json"
	"time"
)

// ChallengeRequest is the body of POST /v1/p2p/challenge: challenge a rig's claimed
// capacity (benchmark/challenge). Zero fields take the node's defaults.
type ChallengeRequest struct {
	PeerID     string `json:"peer_id"`
	N          int    `json:"n,omitempty"`
	Precision  string `json:"precision,omitempty"`
	Count      int    `json:"count,omitempty"`
	DeadlineMS int64  `json:"deadline_ms,omitempty"`
}

// ChallengeResult is the outcome of a challenge, as the challenger saw it.
type ChallengeResult struct {
	PeerID    string `json:"peer_id"`
	Device    string `json:"device,omitempty"`
	Precision string `json:"precision"`
	N         int    `json:"n"`
	Count     int    `json:"count"`
	// ClaimedTFLOPS is the rig's own score from its capacity record (0: no record seen).
	ClaimedTFLOPS float64 `json:"claimed_tflops"`
	// VerifiedTFLOPS is 2n³·count / (time to commitment − round trip); 0 unless passed.
	VerifiedTFLOPS float64 `json:"verified_tflops"`
	Passed         bool    `json:"passed"`
	// Verdict is "passed", "failed" or "refused".
	Verdict string `json:"verdict"`
	// Failed names the check that failed (shape, late, proof, consistency, freivalds, row).
	Failed string `json:"failed,omitempty"`
	Reason string `json:"reason,omitempty"`
	// ElapsedMS is from challenge to commitment; RTTMS the measured round trip.
	ElapsedMS float64 `json:"elapsed_ms"`
	RTTMS     float64 `json:"rtt_ms"`
	// VerifierMS is the challenger's verification time; StampHashes its proof of work.
	VerifierMS  float64   `json:"verifier_ms"`
	StampHashes uint64    `json:"stamp_hashes"`
	At          time.Time `json:"at"`
	// Attestation is the challenger's signed attestation (benchmark/challenge.Attestation).
	Attestation json.RawMessage `json:"attestation,omitempty"`
}

// P2PVerified is what challenges showed of a rig's capacity: this node's own last verdict,
// else the best attestation the rig carries.
type P2PVerified struct {
	TFLOPS    float64   `json:"tflops"`
	Passed    bool      `json:"passed"`
	Failed    string    `json:"failed,omitempty"`
	Precision string    `json:"precision"`
	N         int       `json:"n"`
	By        string    `json:"by"`
	At        time.Time `json:"at"`
}

// Challenge challenges a rig through the daemon and returns the verdict.
func (c *Client) Challenge(ctx context.Context, req ChallengeRequest) (ChallengeResult, error) {
	var out ChallengeResult
	err := c.Post(ctx, "/v1/p2p/challenge", req, &out)
	return out, err
}
