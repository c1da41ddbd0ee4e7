// Package pooltopic carries signed pool policies between a pool's nodes on a gossipsub topic
// (policy.Topic of the pool key). Every message is handed to the receiver from inside the
// topic validator, so a policy is relayed to other peers only if it verified and was newer
// than the one in force; bad signatures are rejected (and the sending peer penalised by
// gossipsub's scoring), stale ones ignored. Each node republishes the policy it holds from
// time to time so that nodes joining late catch up.
package pooltopic

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/policy"
)

// Receiver takes signed pool policies; *policy.Holder is one.
type Receiver interface {
	// ApplyPoolUpdate verifies and applies a signed policy.
	ApplyPoolUpdate(signed []byte) error
	// PoolPolicy returns the signed policy in force, nil if none.
	PoolPolicy() []byte
}

// Config tunes the topic adapter.
type Config struct {
	// Republish is how often the policy in force is published again for late joiners.
	Republish time.Duration `toml:"republish"`
	// Poll is how often the receiver is checked for a policy that arrived another way
	// (a file reload, an API push), which is then published at once.
	Poll time.Duration `toml:"poll"`
}

// Default returns the default configuration.
func Default() Config { return Config{Republish: 10 * time.Minute, Poll: 2 * time.Second} }

// Run joins the pool's topic on ps and serves it until ctx is cancelled. self is the local
// peer, whose own publications are accepted without being applied twice.
func Run(ctx context.Context, cfg Config, ps *pubsub.PubSub, self peer.ID, pool ed25519.PublicKey, r Receiver, log *slog.Logger) error {
	log = log.With("component", "pooltopic")
	name := policy.Topic(pool)
	validate := func(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if len(msg.Data) > policy.MaxEnvelopeBytes {
			return pubsub.ValidationReject
		}
		if from == self {
			if _, err := policy.Verify(pool, msg.Data); err != nil {
				return pubsub.ValidationReject
			}
			return pubsub.ValidationAccept
		}
		err := r.ApplyPoolUpdate(msg.Data)
		switch {
		case err == nil:
			log.Info("pool policy received", "from", from)
			return pubsub.ValidationAccept
		case errors.Is(err, policy.ErrStale):
			return pubsub.ValidationIgnore
		default:
			log.Warn("pool policy from peer rejected", "from", from, "err", err)
			return pubsub.ValidationReject
		}
	}
	if err := ps.RegisterTopicValidator(name, validate, pubsub.WithValidatorTimeout(5*time.Second)); err != nil {
		return fmt.Errorf("pool topic %s: %w", name, err)
	}
	defer ps.UnregisterTopicValidator(name)
	topic, err := ps.Join(name)
	if err != nil {
		return fmt.Errorf("pool topic %s: %w", name, err)
	}
	defer topic.Close()
	sub, err := topic.Subscribe()
	if err != nil {
		return fmt.Errorf("pool topic %s: %w", name, err)
	}
	defer sub.Cancel()
	go func() {
		// Messages were applied by the validator; only drain them here.
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	}()

	var last []byte
	var lastAt time.Time
	poll := time.NewTicker(cfg.Poll)
	defer poll.Stop()
	for {
		if cur := r.PoolPolicy(); cur != nil && (!bytes.Equal(cur, last) || time.Since(lastAt) >= cfg.Republish) {
			if err := topic.Publish(ctx, cur); err != nil && ctx.Err() == nil {
				log.Warn("publish pool policy", "err", err)
			} else {
				last, lastAt = cur, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		}
	}
}
