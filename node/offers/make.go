package offers

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/gpunode/gpunode/node/p2p"
)

// Terms are what a researcher offers a rig for a job posted on chain.
type Terms struct {
	// GPUs the job needs: the rig declines if fewer are free.
	GPUs int
	// PricePerGPUHour in wei: the rig declines below its ask.
	PricePerGPUHour string
	// MaxDuration is the job's longest run.
	MaxDuration time.Duration
}

// TTL is how long an offer stands.
const TTL = 5 * time.Minute

// Make is the offer of job jobID, posted with manifest manifestCID, on terms t: under a
// fresh random id, standing for TTL from now.
func Make(jobID, manifestCID string, t Terms, now time.Time) p2p.Offer {
	nonce := make([]byte, 8)
	rand.Read(nonce)
	return p2p.Offer{
		Version: p2p.OfferVersion, ID: hex.EncodeToString(nonce), ManifestCID: manifestCID, GPUs: t.GPUs,
		PricePerGPUHour: t.PricePerGPUHour, MaxDurationSeconds: int64(t.MaxDuration.Seconds()), JobID: jobID,
		ExpiresAt: now.Add(TTL).Unix(),
	}
}
