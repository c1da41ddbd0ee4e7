package pooltopic

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/policy"
)

const poolPolicy = `version = 1
[limits]
max_gpus = 4
`

func newHost(t *testing.T, ctx context.Context) (host.Host, *pubsub.PubSub) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	return h, ps
}

type node struct {
	holder *policy.Holder
	reg    *prometheus.Registry
	cfg    policy.Config
}

func newNode(t *testing.T, poolKey string, local string) *node {
	t.Helper()
	dir := t.TempDir()
	cfg := policy.Config{PoolKey: poolKey, PoolPolicyFile: filepath.Join(dir, "pool.signed"), History: 10}
	if local != "" {
		cfg.File = filepath.Join(dir, "policy.toml")
		if err := os.WriteFile(cfg.File, []byte(local), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	h, err := policy.New(cfg, testkit.Discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return &node{holder: h, reg: reg, cfg: cfg}
}

// TestPoolPolicyOverLibp2p: the pool operator's node publishes a signed policy on the
// pool's topic and a member node applies it; a newer one replaces it; a tampered one sent
// by a third peer is rejected and counted; the member's operator cannot loosen it locally.
func TestPoolPolicyOverLibp2p(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pub, priv, err := policy.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	poolKey := policy.EncodePublicKey(pub)

	opHost, opPS := newHost(t, ctx)
	memHost, memPS := newHost(t, ctx)
	evilHost, evilPS := newHost(t, ctx)
	for _, h := range []host.Host{memHost, evilHost} {
		if err := h.Connect(ctx, peer.AddrInfo{ID: opHost.ID(), Addrs: opHost.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := evilHost.Connect(ctx, peer.AddrInfo{ID: memHost.ID(), Addrs: memHost.Addrs()}); err != nil {
		t.Fatal(err)
	}

	op := newNode(t, poolKey, "")
	member := newNode(t, poolKey, "version = 1\n[limits]\nmax_gpus = 2\n")
	cfg := Config{Republish: 300 * time.Millisecond, Poll: 100 * time.Millisecond}
	log := testkit.Discard()
	errc := make(chan error, 2)
	go func() { errc <- Run(ctx, cfg, opPS, opHost.ID(), pub, op.holder, log) }()
	go func() { errc <- Run(ctx, cfg, memPS, memHost.ID(), pub, member.holder, log) }()

	sign := func(seq uint64, p string) []byte {
		b, err := policy.Sign(priv, seq, []byte(p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The operator hands its node the signed policy (as `gpunode pool push` does).
	if err := op.holder.ApplyPoolUpdate(sign(10, poolPolicy)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, func() bool { return member.holder.Set().PoolSeq == 10 }, "member to apply seq 10")
	if got := member.holder.Set().Pool.Limits.MaxGPUs; got != 4 {
		t.Errorf("member's pool max_gpus = %d", got)
	}
	saved, err := os.ReadFile(member.cfg.PoolPolicyFile)
	if err != nil || !strings.Contains(string(saved), `"seq": 10`) {
		t.Errorf("member did not save the pool policy: %v", err)
	}

	if err := op.holder.ApplyPoolUpdate(sign(11, strings.Replace(poolPolicy, "max_gpus = 4", "max_gpus = 3", 1))); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, func() bool { return member.holder.Set().PoolSeq == 11 }, "member to apply seq 11")

	// A third peer sends a tampered policy: higher seq, looser limit, old signature.
	evilTopic, err := evilPS.Join(policy.Topic(pub))
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(sign(12, poolPolicy)), `"seq": 12`, `"seq": 99`, 1)
	testkit.Eventually(t, 30*time.Second, func() bool {
		_ = evilTopic.Publish(ctx, []byte(tampered))
		n, _ := badSignatures(member.reg)
		return n >= 1
	}, "the tampered policy to be rejected")
	if s := member.holder.Set(); s.PoolSeq != 11 || s.Pool.Limits.MaxGPUs != 3 {
		t.Errorf("tampered policy changed the member: seq %d max_gpus %d", s.PoolSeq, s.Pool.Limits.MaxGPUs)
	}

	// The member's operator tries to loosen the pool's limit locally.
	if err := os.WriteFile(member.cfg.File, []byte("version = 1\n[limits]\nmax_gpus = 8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = member.holder.Reload()
	if !errors.Is(err, policy.ErrLoosens) || !strings.Contains(err.Error(), "limits.max_gpus = 8 exceeds the pool's 3") {
		t.Errorf("loosening reload: %v", err)
	}
	if got := member.holder.Set().Local.Limits.MaxGPUs; got != 2 {
		t.Errorf("member local max_gpus = %d, want the previous 2", got)
	}

	cancel()
	for range 2 {
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func badSignatures(reg *prometheus.Registry) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != "gpunode_policy_pool_updates_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "bad_signature" {
					return m.GetCounter().GetValue(), nil
				}
			}
		}
	}
	return 0, nil
}
