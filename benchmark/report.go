package benchmark

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"time"
)

// ReportVersion is the version of the report format this package writes and reads.
const ReportVersion = 1

// signingDomain prefixes the signed bytes so a report signature can never be replayed as
// a signature over anything else the node key signs (capacity records, offers).
const signingDomain = "gpunode/benchmark-report/v1\n"

// MaxReportSize bounds a report read from a file or the network.
const MaxReportSize = 16 << 20

// Errors of report verification.
var (
	ErrUnsigned     = errors.New("report is not signed")
	ErrBadSignature = errors.New("report signature does not verify")
)

// GPU is one accelerator of the rig.
type GPU struct {
	Index    int    `json:"index"`
	UUID     string `json:"uuid,omitempty"`
	Name     string `json:"name"`
	MemoryMB int64  `json:"memory_mb,omitempty"`
}

// Hardware is the fingerprint of what ran the benchmark.
type Hardware struct {
	OS       string `json:"os"`
	Kernel   string `json:"kernel,omitempty"`
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryMB int64  `json:"memory_mb,omitempty"`
	GPUs     []GPU  `json:"gpus,omitempty"`
	// Driver, CUDA and CuDNN are the NVIDIA driver and library versions (GPU backends).
	Driver string `json:"driver,omitempty"`
	CUDA   string `json:"cuda,omitempty"`
	CuDNN  string `json:"cudnn,omitempty"`
	NCCL   string `json:"nccl,omitempty"`
	// Library is the math library: "openblas 0.3.21 …", "torch 2.4.0", "pure-go".
	Library string `json:"library,omitempty"`
}

// Fingerprint is a short hash of the parts that identify a rig (CPU, GPUs by model and
// UUID, driver), stable across runs, to find earlier reports of the same rig.
func (h Hardware) Fingerprint() string {
	b, _ := json.Marshal(struct {
		CPU    string
		Cores  int
		GPUs   []GPU
		Driver string
	}{h.CPU, h.Cores, h.GPUs, h.Driver})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Report is the signed result of a benchmark run.
type Report struct {
	Version int `json:"version"`
	// Harness is the backend and its version, e.g. "cpu/1 openblas", "harness/1 torch 2.4.0".
	Harness   string    `json:"harness"`
	Backend   string    `json:"backend"`
	Profile   Profile   `json:"profile"`
	Timing    Timing    `json:"timing"`
	CreatedAt time.Time `json:"created_at"`
	Hardware  Hardware  `json:"hardware"`
	// Fingerprint is Hardware.Fingerprint().
	Fingerprint string   `json:"fingerprint"`
	Results     []Result `json:"results"`
	Scores      Scores   `json:"scores"`
	// PublicKey is the Ed25519 key that signed the report, Signature its signature over
	// the report with Signature empty (see SignedBytes).
	PublicKey []byte `json:"public_key,omitempty"`
	Signature []byte `json:"signature,omitempty"`
}

// NewReport builds an unsigned report from a backend's results: it checks every result,
// derives TFLOPS and bandwidths and computes the scores.
func NewReport(backend, harness string, plan Plan, hw Hardware, results []Result, now time.Time) (*Report, error) {
	r := &Report{
		Version: ReportVersion, Harness: harness, Backend: backend, Profile: plan.Profile, Timing: plan.Timing,
		CreatedAt: now.UTC().Truncate(time.Millisecond), Hardware: hw, Fingerprint: hw.Fingerprint(),
	}
	for _, res := range results {
		if err := res.Check(); err != nil {
			return nil, err
		}
		res.Derive()
		r.Results = append(r.Results, res)
	}
	r.Scores = Score(r.Results)
	return r, nil
}

// SignedBytes is what the signature covers: a domain string, then the report's JSON with
// Signature empty.
func (r *Report) SignedBytes() ([]byte, error) {
	c := *r
	c.Signature = nil
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("report: encode: %w", err)
	}
	return append([]byte(signingDomain), b...), nil
}

// Sign embeds the signer's public key and signs the report. The key must be Ed25519 (the
// node's libp2p identity key).
func (r *Report) Sign(key crypto.Signer) error {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("report: sign: key is %T, want an Ed25519 key", key.Public())
	}
	r.PublicKey = pub
	msg, err := r.SignedBytes()
	if err != nil {
		return err
	}
	sig, err := key.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return fmt.Errorf("report: sign: %w", err)
	}
	r.Signature = sig
	return nil
}

// Verify checks the signature against the embedded public key, that every result is
// plausible, and that the derived numbers and scores are the ones the results give: a
// report cannot claim more than it measured. Who the key belongs to is for the caller to
// check (e.g. against the peer ID that advertised it).
func (r *Report) Verify() error {
	if r.Version != ReportVersion {
		return fmt.Errorf("report: version %d, want %d", r.Version, ReportVersion)
	}
	if len(r.Signature) == 0 || len(r.PublicKey) == 0 {
		return ErrUnsigned
	}
	if len(r.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key has %d bytes, want %d", ErrBadSignature, len(r.PublicKey), ed25519.PublicKeySize)
	}
	msg, err := r.SignedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(ed25519.PublicKey(r.PublicKey), msg, r.Signature) {
		return ErrBadSignature
	}
	if r.Fingerprint != r.Hardware.Fingerprint() {
		return fmt.Errorf("report: fingerprint %s does not match its hardware (%s)", r.Fingerprint, r.Hardware.Fingerprint())
	}
	for i, res := range r.Results {
		if err := res.Check(); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		d := res
		d.Derive()
		if !near(d.TFLOPS, res.TFLOPS) || !near(d.AlgBW, res.AlgBW) || !near(d.BusBW, res.BusBW) {
			return fmt.Errorf("report: result %d (%s): throughput does not follow from its time", i, res.Problem.ID())
		}
	}
	if !reflect.DeepEqual(normalize(Score(r.Results)), normalize(r.Scores)) {
		return fmt.Errorf("report: scores do not follow from its results")
	}
	return nil
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

// normalize rounds scores to 12 significant digits so a JSON round trip compares equal.
func normalize(s Scores) Scores {
	r := func(v float64) float64 {
		if v == 0 {
			return 0
		}
		e := math.Pow(10, 12-math.Ceil(math.Log10(math.Abs(v))))
		return math.Round(v*e) / e
	}
	c := Scores{Rig: r(s.Rig), AllReduceBusBW: r(s.AllReduceBusBW)}
	for _, x := range s.Classes {
		x.Value = r(x.Value)
		c.Classes = append(c.Classes, x)
	}
	for _, x := range s.Devices {
		x.Score = r(x.Score)
		c.Devices = append(c.Devices, x)
	}
	return c
}

// DecodeReport reads a report strictly: unknown fields, trailing data and oversized input
// are errors. It does not verify the signature.
func DecodeReport(rd io.Reader) (*Report, error) {
	b, err := io.ReadAll(io.LimitReader(rd, MaxReportSize+1))
	if err != nil {
		return nil, fmt.Errorf("report: read: %w", err)
	}
	if len(b) > MaxReportSize {
		return nil, fmt.Errorf("report: larger than %d bytes", MaxReportSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("report: decode: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("report: trailing data after the report")
	}
	return &r, nil
}

// Backend runs a plan's problems. Run calls progress once per problem as its result
// arrives and returns every result; a problem the backend cannot run comes back Skipped.
type Backend interface {
	Name() string
	// Harness names the backend's code and version, recorded in the report.
	Harness() string
	Capabilities(ctx context.Context) (Capabilities, error)
	Hardware(ctx context.Context) (Hardware, error)
	Run(ctx context.Context, plan Plan, progress func(Result)) ([]Result, error)
}

// Run benchmarks a profile on a backend and returns the unsigned report.
func Run(ctx context.Context, b Backend, profile Profile, progress func(done, total int, r Result)) (*Report, error) {
	caps, err := b.Capabilities(ctx)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", b.Name(), err)
	}
	plan, err := NewPlan(profile, caps)
	if err != nil {
		return nil, err
	}
	hw, err := b.Hardware(ctx)
	if err != nil {
		return nil, fmt.Errorf("backend %s: hardware: %w", b.Name(), err)
	}
	done, total := 0, caps.Results(plan)
	results, err := b.Run(ctx, plan, func(r Result) {
		done++
		if progress != nil {
			r.Derive()
			progress(done, max(done, total), r)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", b.Name(), err)
	}
	return NewReport(b.Name(), b.Harness(), plan, hw, results, time.Now())
}

// Summary is a report in a few fields: what the node's status shows and what a capacity
// record advertises beside the CID of the full signed report.
type Summary struct {
	// RigScore is the rig's DL hashrate: the sum of its devices' scores, TFLOPS.
	RigScore float64
	Devices  []DeviceScore
	// AllReduceBusBW is the geometric mean all-reduce bus bandwidth, GB/s.
	AllReduceBusBW                         float64
	Profile, Backend, Harness, Fingerprint string
	CreatedAt                              time.Time
	// SHA256 is the hash of the signed report as kept (indented JSON, last-report.json).
	SHA256 string
}

// Summary returns the report in a few fields.
func (r *Report) Summary() Summary {
	b, _ := json.MarshalIndent(r, "", "  ")
	sum := sha256.Sum256(b)
	return Summary{
		RigScore: r.Scores.Rig, Devices: append([]DeviceScore(nil), r.Scores.Devices...), AllReduceBusBW: r.Scores.AllReduceBusBW,
		Profile: string(r.Profile), Backend: r.Backend, Harness: r.Harness, Fingerprint: r.Fingerprint,
		CreatedAt: r.CreatedAt, SHA256: hex.EncodeToString(sum[:]),
	}
}
