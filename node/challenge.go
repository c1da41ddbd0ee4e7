package node

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/benchmark/challenge"
	"github.com/gpunode/gpunode/benchmark/cpu"
	"github.com/gpunode/gpunode/benchmark/harness"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/capcheck"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// openChallenges starts the capacity challenges on the network's host: the rig answers
// with the harness on its GPUs (the CPU backend without them) while no job runs, and
// the node can challenge others.
func (n *Node) openChallenges(hb *harness.Backend) error {
	nw := n.deps.Network
	var prover challenge.Backend
	if hb != nil {
		prover = harness.Prover{Backend: hb}
	} else {
		cb, err := cpu.New(cpu.Default())
		if err != nil {
			return err
		}
		prover = challenge.CPU{Backend: cb}
	}
	svc, err := capcheck.New(n.cfg.Challenge, capcheck.Deps{
		Host:   nw.Host(),
		Prover: capcheck.Prover(prover),
		Busy: func() string {
			if n.work == nil {
				return ""
			}
			list, err := n.work.machine.List()
			if err != nil {
				return ""
			}
			for _, j := range list {
				switch j.State {
				case jobs.Accepting, jobs.Accepted, jobs.Preparing, jobs.Running, jobs.Uploading, jobs.Submitting:
					return fmt.Sprintf("busy: job %s holds the GPUs", j.ID)
				}
			}
			return ""
		},
		Claimed: func(id peer.ID) float64 {
			for _, r := range nw.MarketView().Records {
				if r.PeerID == id.String() {
					return r.Score
				}
			}
			return 0
		},
		Registerer: n.reg,
		Log:        n.log,
	})
	if err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	n.challenges = svc
	return nil
}

// verifiedTFLOPS is the best throughput a passing attestation this rig holds verified, 0
// without one: what manifests' resources.min_verified_score is checked against.
func (n *Node) verifiedTFLOPS() float64 {
	if n.challenges == nil {
		return 0
	}
	best := 0.0
	for _, a := range n.challenges.Received() {
		if a.Passed {
			best = max(best, a.TFLOPS)
		}
	}
	return best
}

// attestations are the passing attestations the capacity record carries: the best
// capacity.MaxAttestations by verified throughput.
func (n *Node) attestations() []json.RawMessage {
	if n.challenges == nil {
		return nil
	}
	var pass []*challenge.Attestation
	for _, a := range n.challenges.Received() {
		if a.Passed {
			pass = append(pass, a)
		}
	}
	sort.SliceStable(pass, func(i, j int) bool { return pass[i].TFLOPS > pass[j].TFLOPS })
	var out []json.RawMessage
	for _, a := range pass[:min(len(pass), capacity.MaxAttestations)] {
		out = append(out, a.Encode())
	}
	return out
}

// recordVerified is the best passing attestation a market record carries for its rig.
func recordVerified(r api.P2PRecord) *api.P2PVerified {
	var best *challenge.Attestation
	for _, raw := range r.Attestations {
		a, err := challenge.DecodeAttestation(raw)
		if err != nil || !a.Passed || a.Rig != r.PeerID {
			continue
		}
		if best == nil || a.TFLOPS > best.TFLOPS {
			best = a
		}
	}
	if best == nil {
		return nil
	}
	return &api.P2PVerified{TFLOPS: best.TFLOPS, Passed: true, Precision: string(best.Precision), N: best.N, By: best.Challenger, At: best.Time}
}
