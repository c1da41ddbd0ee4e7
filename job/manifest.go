// Package job holds the job manifest: what a researcher asks a node to run, as published on
// IPFS with its hash on chain. A manifest arrives from the network, so decoding is strict:
// bounded in size, versioned, unknown fields rejected, and every problem reported at once.
package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gpunode/gpunode/runtime"
)

// Version is the manifest format this package writes; it reads MinVersion to Version.
// Version 2 added evaluation.direction.
const (
	Version    = 2
	MinVersion = 1
)

// MaxManifestBytes bounds a manifest's encoded size.
const MaxManifestBytes = 256 << 10

// Ceilings on what a manifest may ask for: past them a value is absurd (or overflows
// where the node converts it, memory_mib to bytes, the threshold to the contract's
// integer), whatever the rig. The operator's own caps are lower.
const (
	MaxGPUs        = 64
	MaxMemoryMiB   = 16 << 20 // 16 TiB
	MaxDiskMiB     = 1 << 30  // 1 PiB
	MaxCPUs        = 1024
	MaxMinScore    = 1e6 // TFLOPS
	MaxOutputBytes = 1 << 50
	MaxJobDuration = 90 * 24 * time.Hour
	MaxThreshold   = 4294.967295 // the contract's uint32 / 10⁶
)

// ErrInvalid marks a manifest that decoded but failed validation.
var ErrInvalid = errors.New("invalid job manifest")

// Manifest describes one training job.
type Manifest struct {
	// Version is the manifest format version, MinVersion..Version.
	Version int `json:"version"`
	// Image is the training image, by digest: repo@sha256:<64 hex>.
	Image string `json:"image"`
	// Command overrides the image's entrypoint arguments.
	Command []string `json:"command,omitempty"`
	// Env is extra environment for the container.
	Env map[string]string `json:"env,omitempty"`
	// Resources is what the job needs of the node.
	Resources Resources `json:"resources"`
	// Inputs are mounted read-only: public IPFS content or a local dataset of the miner.
	Inputs []Input `json:"inputs,omitempty"`
	// Output is where the job writes its checkpoint, and how large it may be.
	Output Output `json:"output"`
	// MaxDuration bounds the running time, e.g. "6h".
	MaxDuration Duration `json:"max_duration"`
	// Network is the egress the job asks for; "none" unless the policy grants it.
	Network Network `json:"network"`
	// Evaluation tells validators how to score the checkpoint.
	Evaluation Evaluation `json:"evaluation"`
}

// Resources is what a job needs of a node (of each node, for a multi-rig job).
type Resources struct {
	// Nodes is how many rigs the job spans (a multi-rig PyTorch job, run by a pool);
	// 0 or absent means one. GPUs and the rest are per rig.
	Nodes        int     `json:"nodes,omitempty"`
	GPUs         int     `json:"gpus"`
	GPUMemoryMiB int64   `json:"gpu_memory_mib,omitempty"`
	MinScore     float64 `json:"min_score,omitempty"`
	// MinVerifiedScore is the throughput (TFLOPS) a capacity challenge must have verified
	// of the rig (benchmark/challenge): a rig without such an attestation declines.
	MinVerifiedScore float64 `json:"min_verified_score,omitempty"`
	CPUs             float64 `json:"cpus,omitempty"`
	MemoryMiB        int64   `json:"memory_mib,omitempty"`
	DiskMiB          int64   `json:"disk_mib,omitempty"`
}

// NodeCount is how many rigs the job spans: resources.nodes, at least 1.
func (r Resources) NodeCount() int { return max(r.Nodes, 1) }

// Input is one read-only mount: exactly one of CID, Dataset and File is set.
type Input struct {
	// CID is public content on IPFS.
	CID string `json:"cid,omitempty"`
	// Dataset is the tag of a private dataset on the miner's rig.
	Dataset string `json:"dataset,omitempty"`
	// File is a file or folder on the researcher's machine, relative to the manifest:
	// `gpunode job post` adds it to IPFS and posts the manifest with its CID instead.
	// Rigs decline a posted manifest that still has one.
	File string `json:"file,omitempty"`
	// Path is the absolute mount point in the container.
	Path string `json:"path"`
}

// Output is the job's writable output directory.
type Output struct {
	Path     string `json:"path"`
	MaxBytes int64  `json:"max_bytes"`
}

// Network modes.
const (
	NetworkNone   = "none"
	NetworkEgress = "egress"
)

// Network is the egress a job asks for.
type Network struct {
	// Mode is "none" or "egress".
	Mode string `json:"mode"`
	// Domains lists the hosts an "egress" job needs to reach.
	Domains []string `json:"domains,omitempty"`
}

// Evaluation tells validators how to score the result.
type Evaluation struct {
	Image string `json:"image"`
	// Command is the evaluation's whole argv. The checkpoint is mounted read-only at
	// /checkpoint; the evaluation writes /out/result.json (see node/validator).
	Command   []string `json:"command"`
	Metric    string   `json:"metric"`
	Threshold float64  `json:"threshold"`
	// Direction says which way the metric improves: "higher" (accuracy, F1) or "lower"
	// (loss, perplexity, WER): a result passes when its metric is at or above the
	// threshold, or at or below it. Required from version 2; version 1 means "higher".
	Direction string `json:"direction,omitempty"`
	// Inputs are mounted read-only into the evaluation (held-out data, say): IPFS CIDs,
	// or files that `gpunode job post` uploads. Validators have no rig's datasets.
	Inputs []Input `json:"inputs,omitempty"`
}

// Metric directions.
const (
	DirectionHigher = "higher"
	DirectionLower  = "lower"
)

// LowerIsBetter reports whether the metric improves downwards.
func (e Evaluation) LowerIsBetter() bool { return e.Direction == DirectionLower }

// Duration is a time.Duration written as a Go duration string ("90m").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"6h\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	d.Duration = v
	return nil
}

// Decode reads one manifest of at most MaxManifestBytes, rejecting unknown fields and
// trailing data, and validates it. A validation failure wraps ErrInvalid and lists every
// problem.
func Decode(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("job manifest: %w", err)
	}
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("job manifest: larger than %d bytes", MaxManifestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("job manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("job manifest: trailing data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("job manifest: trailing data after the JSON object")
	}
	if errs := m.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return &m, nil
}

var (
	digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	repoRE   = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)
	cidRE    = regexp.MustCompile(`^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,200})$`)
	tagRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	envRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// ParseImage splits "repo@sha256:…" into its repository and digest.
func ParseImage(ref string) (repo, digest string, err error) {
	repo, digest, ok := strings.Cut(ref, "@")
	if !ok {
		return "", "", fmt.Errorf("image %q: must be pinned by digest (repo@sha256:…)", ref)
	}
	if len(repo) > 255 || !repoRE.MatchString(repo) {
		return "", "", fmt.Errorf("image %q: bad repository name", ref)
	}
	if !digestRE.MatchString(digest) {
		return "", "", fmt.Errorf("image %q: digest must be sha256:<64 lowercase hex>", ref)
	}
	return repo, digest, nil
}

// ImageRepo returns the repository part of the image reference, or "" if malformed.
func (m *Manifest) ImageRepo() string {
	r, _, err := ParseImage(m.Image)
	if err != nil {
		return ""
	}
	return r
}

// ImageDigest returns the digest part of the image reference, or "" if malformed.
func (m *Manifest) ImageDigest() string {
	_, d, err := ParseImage(m.Image)
	if err != nil {
		return ""
	}
	return d
}

// ValidDatasetTag reports whether s is a dataset tag: lowercase letters, digits, . _ -,
// at most 63 characters, starting with a letter or digit.
func ValidDatasetTag(s string) bool { return tagRE.MatchString(s) }

// Datasets returns the local dataset tags the job mounts.
func (m *Manifest) Datasets() []string {
	var out []string
	for _, in := range m.Inputs {
		if in.Dataset != "" {
			out = append(out, in.Dataset)
		}
	}
	return out
}

// LocalFiles returns the local files of the job's and the evaluation's inputs, which
// `gpunode job post` uploads.
func (m *Manifest) LocalFiles() []string {
	var out []string
	for _, in := range append(append([]Input(nil), m.Inputs...), m.Evaluation.Inputs...) {
		if in.File != "" {
			out = append(out, in.File)
		}
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Validate reports every problem with the manifest.
func (m *Manifest) Validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if m.Version < MinVersion || m.Version > Version {
		bad("version: got %d, this node reads versions %d to %d", m.Version, MinVersion, Version)
	}
	if _, _, err := ParseImage(m.Image); err != nil {
		bad("image: %v", err)
	}
	if len(m.Command) > 256 {
		bad("command: more than 256 arguments")
	}
	if len(m.Env) > 256 {
		bad("env: more than 256 variables")
	}
	for _, k := range slices.Sorted(maps.Keys(m.Env)) {
		if !envRE.MatchString(k) {
			bad("env: bad variable name %q", k)
		} else if err := runtime.ReservedEnv(k); err != nil {
			bad("%v", err)
		}
	}
	r := m.Resources
	if r.Nodes < 0 || r.Nodes > runtime.MaxNodes {
		bad("resources.nodes: %d out of range 1..%d (0 or absent means 1)", r.Nodes, runtime.MaxNodes)
	}
	if r.GPUs < 0 || r.GPUs > MaxGPUs {
		bad("resources.gpus: %d out of range 0..%d", r.GPUs, MaxGPUs)
	}
	if r.GPUMemoryMiB < 0 || r.MemoryMiB < 0 || r.DiskMiB < 0 || r.CPUs < 0 || r.MinScore < 0 {
		bad("resources: negative amounts")
	}
	if r.MemoryMiB > MaxMemoryMiB || r.GPUMemoryMiB > MaxMemoryMiB {
		bad("resources: memory_mib and gpu_memory_mib must be at most %d (16 TiB)", MaxMemoryMiB)
	}
	if r.DiskMiB > MaxDiskMiB {
		bad("resources.disk_mib: %d above %d (1 PiB)", r.DiskMiB, MaxDiskMiB)
	}
	if r.CPUs > MaxCPUs || math.IsNaN(r.CPUs) {
		bad("resources.cpus: %v out of range 0..%d", r.CPUs, MaxCPUs)
	}
	if r.MinScore > MaxMinScore || math.IsNaN(r.MinScore) {
		bad("resources.min_score: %v out of range 0..%g", r.MinScore, MaxMinScore)
	}
	if r.MinVerifiedScore < 0 || r.MinVerifiedScore > MaxMinScore || math.IsNaN(r.MinVerifiedScore) {
		bad("resources.min_verified_score: %v out of range 0..%g", r.MinVerifiedScore, MaxMinScore)
	}
	if len(m.Inputs) > 64 {
		bad("inputs: more than 64")
	}
	for i, in := range m.Inputs {
		switch {
		case btoi(in.CID != "")+btoi(in.Dataset != "")+btoi(in.File != "") != 1:
			bad("inputs[%d]: set exactly one of cid, dataset and file", i)
		case in.File != "" && (len(in.File) > 4096 || strings.ContainsRune(in.File, 0)):
			bad("inputs[%d].file: not a usable path", i)
		case in.CID != "" && !cidRE.MatchString(in.CID):
			bad("inputs[%d].cid: %q is not a CID", i, in.CID)
		case in.Dataset != "" && !tagRE.MatchString(in.Dataset):
			bad("inputs[%d].dataset: %q is not a dataset tag (lowercase letters, digits, . _ -)", i, in.Dataset)
		}
		if !cleanAbs(in.Path) {
			bad("inputs[%d].path: %q must be a clean absolute path", i, in.Path)
		}
	}
	if !cleanAbs(m.Output.Path) || m.Output.Path == "/" {
		bad("output.path: %q must be a clean absolute path below /", m.Output.Path)
	}
	if m.Output.MaxBytes <= 0 || m.Output.MaxBytes > MaxOutputBytes {
		bad("output.max_bytes: must be 1..%d", int64(MaxOutputBytes))
	}
	if m.MaxDuration.Duration <= 0 || m.MaxDuration.Duration > MaxJobDuration {
		bad("max_duration: must be positive and at most %s", MaxJobDuration)
	}
	switch m.Network.Mode {
	case NetworkNone:
		if len(m.Network.Domains) > 0 {
			bad("network.domains: set only with mode %q", NetworkEgress)
		}
	case NetworkEgress:
		if len(m.Network.Domains) == 0 || len(m.Network.Domains) > 64 {
			bad("network.domains: egress needs 1..64 domains")
		}
		for _, d := range m.Network.Domains {
			if len(d) > 253 || !domainRE.MatchString(d) {
				bad("network.domains: %q is not a domain name", d)
			}
		}
	default:
		bad("network.mode: %q, want %q or %q", m.Network.Mode, NetworkNone, NetworkEgress)
	}
	if _, _, err := ParseImage(m.Evaluation.Image); err != nil {
		bad("evaluation.image: %v", err)
	}
	if t := m.Evaluation.Threshold; math.IsNaN(t) || t < 0 || t > MaxThreshold {
		bad("evaluation.threshold: %v out of range 0..%v (the contract keeps threshold × 10⁶ in 32 bits)", t, MaxThreshold)
	}
	switch d := m.Evaluation.Direction; {
	case m.Version == 1 && d != "":
		bad("evaluation.direction: needs manifest version 2 (version 1 metrics are higher-is-better)")
	case m.Version >= 2 && d != DirectionHigher && d != DirectionLower:
		bad("evaluation.direction: %q, want %q or %q", d, DirectionHigher, DirectionLower)
	}
	if m.Evaluation.Metric == "" || len(m.Evaluation.Metric) > 128 {
		bad("evaluation.metric: must be 1..128 characters")
	}
	if len(m.Evaluation.Command) == 0 || len(m.Evaluation.Command) > 256 {
		bad("evaluation.command: must have 1..256 arguments")
	}
	if len(m.Evaluation.Inputs) > 64 {
		bad("evaluation.inputs: more than 64")
	}
	for i, in := range m.Evaluation.Inputs {
		switch {
		case in.Dataset != "":
			bad("evaluation.inputs[%d].dataset: validators have no rig's datasets; give a cid or a file", i)
		case (in.CID == "") == (in.File == ""):
			bad("evaluation.inputs[%d]: set exactly one of cid and file", i)
		case in.CID != "" && !cidRE.MatchString(in.CID):
			bad("evaluation.inputs[%d].cid: %q is not a CID", i, in.CID)
		}
		if !cleanAbs(in.Path) {
			bad("evaluation.inputs[%d].path: %q must be a clean absolute path", i, in.Path)
		}
		for _, reserved := range []string{"/checkpoint", "/out"} {
			if in.Path == reserved || strings.HasPrefix(in.Path, reserved+"/") || in.Path == "/" {
				bad("evaluation.inputs[%d].path: %q overlaps %s, where the evaluation gets the checkpoint or writes its result", i, in.Path, reserved)
			}
		}
	}
	return errs
}

func cleanAbs(p string) bool {
	return p != "" && len(p) <= 4096 && path.IsAbs(p) && path.Clean(p) == p && !strings.ContainsRune(p, 0)
}
