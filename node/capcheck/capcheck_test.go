package capcheck

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/benchmark/challenge"
	"github.com/gpunode/gpunode/benchmark/cpu"
	"github.com/gpunode/gpunode/node/api"
)

func newHost(t *testing.T) host.Host {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func newService(t *testing.T, h host.Host, reg prometheus.Registerer, busy func() string) *Service {
	be, err := cpu.New(cpu.Config{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.N, cfg.DeadlineSeconds = 64, 30
	s, err := New(cfg, Deps{Host: h, Prover: Prover(challenge.CPU{Backend: be}), Busy: busy, Registerer: reg,
		Claimed: func(peer.ID) float64 { return 42 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestChallengeOverLibp2p: one node challenges another over real libp2p hosts; the
// verdict passes, shows as verified, and the rig keeps the signed attestation; a rig
// whose GPUs a job holds refuses and says why.
func TestChallengeOverLibp2p(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	var busy string
	a := newService(t, ha, regA, nil)
	b := newService(t, hb, regB, func() string { return busy })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := ha.Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		t.Fatal(err)
	}
	r, err := a.Challenge(ctx, api.ChallengeRequest{PeerID: hb.ID().String()})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed || r.Verdict != "passed" || r.VerifiedTFLOPS <= 0 || r.ClaimedTFLOPS != 42 || len(r.Attestation) == 0 {
		t.Fatalf("%+v", r)
	}
	if v := a.Verified(hb.ID().String()); v == nil || !v.Passed || v.TFLOPS != r.VerifiedTFLOPS {
		t.Fatalf("verified %+v", v)
	}
	// The rig keeps the attestation once the handler has read it.
	deadline := time.Now().Add(30 * time.Second)
	for len(b.Received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.Received(); len(got) != 1 || got[0].Challenger != ha.ID().String() || !got[0].Passed {
		t.Fatalf("rig received %+v", got)
	}
	if v := b.Verified(hb.ID().String()); v == nil || v.By != ha.ID().String() {
		t.Fatalf("rig's own verified figure %+v", v)
	}
	busy = "busy: job 0x1 holds the GPUs"
	r, err = a.Challenge(ctx, api.ChallengeRequest{PeerID: hb.ID().String()})
	if err != nil || r.Verdict != "refused" || !strings.Contains(r.Reason, "job 0x1 holds the GPUs") {
		t.Fatalf("busy rig: %+v %v", r, err)
	}
	if n := testutil.ToFloat64(a.metrics.total.WithLabelValues("challenger", "passed")); n != 1 {
		t.Errorf("challenger passed = %g", n)
	}
	if n := testutil.ToFloat64(b.metrics.total.WithLabelValues("rig", "refused")); n != 1 {
		t.Errorf("rig refused = %g", n)
	}
	if testutil.ToFloat64(b.metrics.verified.WithLabelValues("fp32")) <= 0 {
		t.Error("no gpunode_verified_tflops on the rig")
	}
	if _, err := a.Challenge(ctx, api.ChallengeRequest{PeerID: "nope"}); err == nil {
		t.Error("a bad peer id was accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := Default().Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	bad := Config{N: 3, Precision: "fp8", Count: 0, DeadlineSeconds: 0, MaxN: 1, PeerEverySeconds: 0}
	if errs := bad.Validate(); len(errs) != 3 {
		t.Fatalf("%d problems, want 3 (params, max_n, peer_every_s): %v", len(errs), errs)
	}
}
