// Package capacity is the capacity record a rig advertises on the network: what it has
// (GPUs, benchmark score, price, free GPUs), who it is (libp2p peer ID bound to an
// Ethereum address), in a libp2p signed envelope with its own domain and payload type.
//
// Everything here handles bytes from untrusted peers: Open bounds the size, checks the
// envelope signature, the domain, the payload, the address binding and the age, and
// says which of those failed as a Reason that the caller counts.
package capacity

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/gpunode/gpunode/benchmark/challenge"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// Domain is the signature domain of capacity envelopes: a signature made for another
	// libp2p record type (a peer record, say) cannot be replayed as a capacity record.
	Domain = "gpunode-capacity-record"
	// BindingDomain prefixes the Ethereum signature that binds an address to a peer ID.
	BindingDomain = "gpunode-peer-binding/v1:"
	// Version is the payload version this package writes and accepts.
	Version = 1
	// MaxSize bounds a marshalled envelope. Real records are well under 2 KiB.
	MaxSize = 8 << 10
)

// PayloadType is the envelope payload type of capacity records (a private multicodec-style
// tag; it only has to differ from other record types).
var PayloadType = []byte("/gpunode/capacity/1")

// Capacity is what a rig offers; the caller's snapshot fills it.
type Capacity struct {
	// GPUs lists the rig's GPUs grouped by model.
	GPUs []GPU `json:"gpus"`
	// Score summarises the rig's benchmark.
	Score Score `json:"score"`
	// PricePerGPUHour is the ask in wei per GPU-hour, a decimal integer.
	PricePerGPUHour string `json:"price_per_gpu_hour"`
	// FreeGPUs is how many GPUs are idle now.
	FreeGPUs int `json:"free_gpus"`
	// JobKinds lists the kinds of jobs the policy accepts ("train", "eval", ...).
	JobKinds []string `json:"job_kinds,omitempty"`
	// DatasetTags lists local datasets the rig offers for private training.
	DatasetTags []string `json:"dataset_tags,omitempty"`
	// SoftwareVersion is the gpunode version.
	SoftwareVersion string `json:"software_version"`
	// Attestations are capacity attestations challengers signed for this rig
	// (benchmark/challenge), at most MaxAttestations; each is verified on receipt.
	Attestations []json.RawMessage `json:"attestations,omitempty"`
}

// MaxAttestations bounds the attestations a record carries.
const MaxAttestations = 3

// GPU is one GPU model on the rig.
type GPU struct {
	Model     string `json:"model"`
	MemoryMiB int    `json:"memory_mib"`
	Count     int    `json:"count"`
}

// Score is the benchmark summary.
type Score struct {
	// Overall is the rig's total score (its "DL hashrate").
	Overall float64 `json:"overall"`
	// ReportCID is the CID of the full signed benchmark report, if published.
	ReportCID string `json:"report_cid,omitempty"`
}

// Record is the signed payload.
type Record struct {
	Version   int    `json:"v"`
	PeerID    string `json:"peer_id"`
	Seq       uint64 `json:"seq"`
	Timestamp int64  `json:"ts"`
	// EthAddress is the node's Ethereum address, 0x-hex, checksummed or not.
	EthAddress string `json:"eth_address"`
	// EthSignature is the 65-byte secp256k1 signature by EthAddress over
	// Keccak256(BindingDomain || peer ID bytes), 0x-hex.
	EthSignature string   `json:"eth_sig"`
	Capacity     Capacity `json:"capacity"`
}

// Domain implements record.Record.
func (r *Record) Domain() string { return Domain }

// Codec implements record.Record.
func (r *Record) Codec() []byte { return PayloadType }

// MarshalRecord implements record.Record.
func (r *Record) MarshalRecord() ([]byte, error) { return json.Marshal(r) }

// UnmarshalRecord implements record.Record: strict JSON (unknown fields and trailing
// data are errors) followed by Check.
func (r *Record) UnmarshalRecord(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out Record
	if err := dec.Decode(&out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after record")
	}
	if err := out.Check(); err != nil {
		return err
	}
	*r = out
	return nil
}

// Time is the record's timestamp.
func (r *Record) Time() time.Time { return time.Unix(r.Timestamp, 0) }

// TotalGPUs sums the GPU counts.
func (r *Record) TotalGPUs() int {
	n := 0
	for _, g := range r.Capacity.GPUs {
		n += g.Count
	}
	return n
}

// Limits on record fields: anything larger is malformed.
const (
	maxGPUModels  = 32
	maxGPUCount   = 1024
	maxString     = 128
	maxListLen    = 32
	maxPriceDigit = 78 // 2^256 has 78 decimal digits
)

// Check validates the fields of a record, not its signatures.
func (r *Record) Check() error {
	if r.Version != Version {
		return fmt.Errorf("version %d: want %d", r.Version, Version)
	}
	if _, err := peer.Decode(r.PeerID); err != nil {
		return fmt.Errorf("peer_id: %w", err)
	}
	if r.Seq == 0 {
		return errors.New("seq: must be positive")
	}
	if r.Timestamp <= 0 {
		return errors.New("ts: must be positive")
	}
	if !isHex(r.EthAddress, 20) {
		return errors.New("eth_address: want 0x and 40 hex digits")
	}
	if !isHex(r.EthSignature, 65) {
		return errors.New("eth_sig: want 0x and 130 hex digits")
	}
	if err := r.Capacity.Check(); err != nil {
		return err
	}
	for i, raw := range r.Capacity.Attestations {
		if a, _ := challenge.DecodeAttestation(raw); a == nil || a.Rig != r.PeerID {
			return fmt.Errorf("attestations[%d]: for another rig than %s", i, r.PeerID)
		}
	}
	return nil
}

// Check validates a capacity snapshot.
func (c *Capacity) Check() error {
	if len(c.GPUs) > maxGPUModels {
		return fmt.Errorf("gpus: %d models, at most %d", len(c.GPUs), maxGPUModels)
	}
	total := 0
	for i, g := range c.GPUs {
		if g.Model == "" || len(g.Model) > maxString || !printable(g.Model) {
			return fmt.Errorf("gpus[%d].model: want 1..%d printable characters", i, maxString)
		}
		if g.Count < 1 || g.Count > maxGPUCount {
			return fmt.Errorf("gpus[%d].count: %d out of range", i, g.Count)
		}
		if g.MemoryMiB < 0 || g.MemoryMiB > 1<<24 {
			return fmt.Errorf("gpus[%d].memory_mib: %d out of range", i, g.MemoryMiB)
		}
		total += g.Count
	}
	if c.FreeGPUs < 0 || c.FreeGPUs > total {
		return fmt.Errorf("free_gpus: %d, rig has %d", c.FreeGPUs, total)
	}
	if math.IsNaN(c.Score.Overall) || math.IsInf(c.Score.Overall, 0) || c.Score.Overall < 0 {
		return fmt.Errorf("score.overall: %v is not a non-negative number", c.Score.Overall)
	}
	if c.Score.ReportCID != "" {
		if len(c.Score.ReportCID) > maxString {
			return errors.New("score.report_cid: too long")
		}
		if _, err := cid.Decode(c.Score.ReportCID); err != nil {
			return fmt.Errorf("score.report_cid: %w", err)
		}
	}
	if !isDecimal(c.PricePerGPUHour) {
		return fmt.Errorf("price_per_gpu_hour: %q is not a decimal integer of wei", c.PricePerGPUHour)
	}
	for name, list := range map[string][]string{"job_kinds": c.JobKinds, "dataset_tags": c.DatasetTags} {
		if len(list) > maxListLen {
			return fmt.Errorf("%s: %d entries, at most %d", name, len(list), maxListLen)
		}
		for _, s := range list {
			if s == "" || len(s) > maxString || !printable(s) {
				return fmt.Errorf("%s: entry %q: want 1..%d printable characters", name, s, maxString)
			}
		}
	}
	if len(c.SoftwareVersion) > maxString || !printable(c.SoftwareVersion) {
		return errors.New("software_version: too long or not printable")
	}
	if len(c.Attestations) > MaxAttestations {
		return fmt.Errorf("attestations: %d, at most %d", len(c.Attestations), MaxAttestations)
	}
	for i, raw := range c.Attestations {
		if _, err := challenge.DecodeAttestation(raw); err != nil {
			return fmt.Errorf("attestations[%d]: %w", i, err)
		}
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != 2+2*n || !strings.HasPrefix(s, "0x") {
		return false
	}
	_, err := hex.DecodeString(s[2:])
	return err == nil
}

func isDecimal(s string) bool {
	if s == "" || len(s) > maxPriceDigit || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '\uFFFD' {
			return false
		}
	}
	return true
}
