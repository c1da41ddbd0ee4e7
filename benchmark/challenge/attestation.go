package challenge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/benchmark"
)

// attestationDomain is prefixed to what an attestation's signature covers.
const attestationDomain = "gpunode/challenge/1 attestation\n"

// MaxAttestationSize bounds an encoded attestation.
const MaxAttestationSize = 2048

// Attestation is a challenger's signed statement of a challenge's outcome: which rig,
// which device and problem, the verified throughput, whether it passed, when.
type Attestation struct {
	Version    int                 `json:"version"`
	Rig        string              `json:"rig"`        // peer ID
	Challenger string              `json:"challenger"` // peer ID; its key signs
	Device     string              `json:"device"`
	Precision  benchmark.Precision `json:"precision"`
	N          int                 `json:"n"`
	Count      int                 `json:"count"`
	TFLOPS     float64             `json:"tflops"`
	Passed     bool                `json:"passed"`
	Failed     Check               `json:"failed,omitempty"`
	Time       time.Time           `json:"time"`
	Signature  []byte              `json:"signature,omitempty"`
}

// NewAttestation signs the result of a challenge to rig with the challenger's key.
func NewAttestation(key crypto.PrivKey, rig peer.ID, res *Result, at time.Time) (*Attestation, error) {
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	a := &Attestation{Version: 1, Rig: rig.String(), Challenger: self.String(), Device: res.Device, Precision: res.Precision,
		N: res.N, Count: res.Count, TFLOPS: res.TFLOPS, Passed: res.Passed, Failed: res.Failed, Time: at.UTC().Truncate(time.Millisecond)}
	if len(a.Device) > MaxDeviceLen {
		a.Device = a.Device[:MaxDeviceLen]
	}
	msg, err := a.signed()
	if err != nil {
		return nil, err
	}
	if a.Signature, err = key.Sign(msg); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Attestation) signed() ([]byte, error) {
	c := *a
	c.Signature = nil
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return append([]byte(attestationDomain), b...), nil
}

// DecodeAttestation parses an attestation strictly (unknown fields, trailing data and
// out-of-range values are errors) and checks its signature.
func DecodeAttestation(b []byte) (*Attestation, error) {
	if len(b) > MaxAttestationSize {
		return nil, fmt.Errorf("attestation of %d bytes, at most %d", len(b), MaxAttestationSize)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var a Attestation
	if err := d.Decode(&a); err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	if d.More() {
		return nil, errors.New("attestation: trailing data")
	}
	if err := a.Verify(); err != nil {
		return nil, err
	}
	return &a, nil
}

// Verify checks the attestation's fields and the challenger's signature.
func (a *Attestation) Verify() error {
	if a.Version != 1 {
		return fmt.Errorf("attestation: version %d, want 1", a.Version)
	}
	if _, ok := precisionCode[a.Precision]; !ok || a.N < MinN || a.N > MaxN || a.Count < 1 || a.Count > MaxCount ||
		len(a.Device) > MaxDeviceLen || a.TFLOPS < 0 || math.IsNaN(a.TFLOPS) || math.IsInf(a.TFLOPS, 0) || (a.Passed != (a.Failed == "")) {
		return fmt.Errorf("attestation: fields out of range")
	}
	if _, err := peer.Decode(a.Rig); err != nil {
		return fmt.Errorf("attestation: rig: %w", err)
	}
	ch, err := peer.Decode(a.Challenger)
	if err != nil {
		return fmt.Errorf("attestation: challenger: %w", err)
	}
	pub, err := ch.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("attestation: challenger %s: no public key in the peer ID: %w", ch, err)
	}
	msg, err := a.signed()
	if err != nil {
		return err
	}
	ok, err := pub.Verify(msg, a.Signature)
	if err != nil || !ok {
		return fmt.Errorf("attestation: signature does not verify for challenger %s", ch)
	}
	return nil
}

// Encode returns the attestation as JSON.
func (a *Attestation) Encode() []byte {
	b, _ := json.Marshal(a)
	return b
}
