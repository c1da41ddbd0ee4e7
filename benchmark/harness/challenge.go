package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"

	"github.com/gpunode/gpunode/benchmark/challenge"
)

// ChallengeOutput is what harness.py --challenge computed.
type ChallengeOutput struct {
	// Products are C_t, row-major n×n fp32.
	Products [][]float32
	// MS is the harness's own time per product (generation and product), informational.
	MS []float64
	// AHash and BHash are SHA-256 of A_t and B_t (fp32, little-endian), with hashInputs.
	AHash, BHash []string
}

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// RunChallenge has the harness compute a challenge's products on its device, in one
// harness process (in the harness image when the backend runs one).
func (b *Backend) RunChallenge(ctx context.Context, seed [32]byte, p challenge.Params, hashInputs bool) (*ChallengeOutput, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	cj, err := json.Marshal(map[string]any{"seed": hex.EncodeToString(seed[:]), "n": p.N, "precision": p.Precision, "count": p.Count})
	if err != nil {
		return nil, err
	}
	args := []string{"--challenge", "/in/challenge.json", "--out-dir", "/out"}
	if hashInputs {
		args = append(args, "--hash-inputs")
	}
	var stdout tail
	var out ChallengeOutput
	collect := func(dir string) error {
		line, err := challengeLine(stdout.b)
		if err != nil {
			return err
		}
		if len(line.Products) != p.Count {
			return fmt.Errorf("harness challenge: %d products, want %d", len(line.Products), p.Count)
		}
		for t, pr := range line.Products {
			if pr.T != t || pr.File != fmt.Sprintf("c%d.bin", t) || !(pr.MS >= 0) {
				return fmt.Errorf("harness challenge: product %d: bad line %+v", t, pr)
			}
			if hashInputs && (!hexHash.MatchString(pr.A) || !hexHash.MatchString(pr.B)) {
				return fmt.Errorf("harness challenge: product %d: no input hashes", t)
			}
			c, err := readFloats(filepath.Join(dir, pr.File), p.N*p.N)
			if err != nil {
				return fmt.Errorf("harness challenge: %w", err)
			}
			out.Products = append(out.Products, c)
			out.MS = append(out.MS, pr.MS)
			out.AHash, out.BHash = append(out.AHash, pr.A), append(out.BHash, pr.B)
		}
		return nil
	}
	if err := b.runFiles(ctx, map[string][]byte{"challenge.json": cj}, args, &stdout, collect); err != nil {
		return nil, err
	}
	return &out, nil
}

type challengeProduct struct {
	T    int     `json:"t"`
	File string  `json:"file"`
	MS   float64 `json:"ms"`
	A    string  `json:"a_sha256"`
	B    string  `json:"b_sha256"`
}

// challengeLine finds the harness's challenge line among its output lines (after hello).
func challengeLine(out []byte) (*struct{ Products []challengeProduct }, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		var head struct {
			Type  string `json:"type"`
			Error string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &head) != nil {
			return nil, fmt.Errorf("harness challenge: line is not JSON: %.100q", sc.Text())
		}
		switch head.Type {
		case "hello":
		case "error":
			return nil, fmt.Errorf("harness challenge: %s", head.Error)
		case "challenge":
			var line struct {
				Type     string             `json:"type"`
				Products []challengeProduct `json:"products"`
			}
			d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			d.DisallowUnknownFields()
			if err := d.Decode(&line); err != nil {
				return nil, fmt.Errorf("harness challenge: %w", err)
			}
			return &struct{ Products []challengeProduct }{line.Products}, nil
		default:
			return nil, fmt.Errorf("harness challenge: unexpected line type %q", head.Type)
		}
	}
	return nil, errors.New("harness challenge: no challenge line")
}

// readFloats reads exactly n little-endian fp32 values, all finite.
func readFloats(path string, n int) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != int64(4*n) {
		return nil, fmt.Errorf("%s: want %d bytes", filepath.Base(path), 4*n)
	}
	out := make([]float32, n)
	if err := binary.Read(bufio.NewReaderSize(f, 1<<20), binary.LittleEndian, out); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	for i, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%s: value %d not finite", filepath.Base(path), i)
		}
	}
	return out, nil
}

// Prover is the harness as a challenge prover (challenge.Backend).
type Prover struct{ *Backend }

// Device names the harness's device: "cuda" or "torch-cpu".
func (p Prover) Device() string { return p.Name() }

// Compute runs the challenge's products in the harness.
func (p Prover) Compute(ctx context.Context, seed [32]byte, params challenge.Params) ([][]float32, error) {
	out, err := p.RunChallenge(ctx, seed, params, false)
	if err != nil {
		return nil, err
	}
	return out.Products, nil
}
