// Package digits is the example job's model: multinomial logistic regression (softmax)
// on the UCI handwritten digits (8×8 images, 10 classes) that scikit-learn ships as
// digits.csv.gz, and Debian packages in python3-sklearn. It has no dependencies, so the
// trainer and the evaluator build as static binaries for FROM-scratch images.
package digits

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"strconv"
	"strings"
)

// DebianPath is where Debian's python3-sklearn installs the data set.
const DebianPath = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

const (
	// Features per sample: 8×8 pixels, each 0..16.
	Features = 64
	// Classes are the digits 0..9.
	Classes = 10
)

// Sample is one image and its label.
type Sample struct {
	X     [Features]float64
	Label int
}

// Load reads digits.csv.gz (or a plain CSV): 64 pixel values then the label per line.
func Load(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gz
	}
	var out []Sample
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ",")
		if len(fields) != Features+1 {
			return nil, fmt.Errorf("%s:%d: %d fields, want %d", path, line, len(fields), Features+1)
		}
		var s Sample
		for i := 0; i <= Features; i++ {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			if i == Features {
				if v < 0 || v >= Classes || v != math.Trunc(v) {
					return nil, fmt.Errorf("%s:%d: label %v out of range", path, line, v)
				}
				s.Label = int(v)
			} else {
				s.X[i] = v / 16
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no samples", path)
	}
	return out, nil
}

// Split is the fixed train/held-out split both sides use: every fifth sample is held
// out for evaluation, the rest are for training.
func Split(all []Sample) (train, heldOut []Sample) {
	for i, s := range all {
		if i%5 == 4 {
			heldOut = append(heldOut, s)
		} else {
			train = append(train, s)
		}
	}
	return train, heldOut
}

// Model is a softmax classifier, saved as the job's checkpoint.
type Model struct {
	Version int                        `json:"version"`
	Kind    string                     `json:"kind"`
	W       [Classes][Features]float64 `json:"weights"`
	B       [Classes]float64           `json:"bias"`
}

// Train fits a model with mini-batch-free SGD over epochs passes, in a fixed order from
// seed, so a run is reproducible.
func Train(train []Sample, epochs int, lr float64, seed int64) *Model {
	return Resume(nil, train, epochs, lr, seed)
}

// Resume trains m (a new model when nil) for epochs more passes, as Train does.
func Resume(m *Model, train []Sample, epochs int, lr float64, seed int64) *Model {
	if m == nil {
		m = &Model{Version: 1, Kind: "softmax"}
	}
	rng := rand.New(rand.NewSource(seed))
	order := rng.Perm(len(train))
	var p [Classes]float64
	for e := 0; e < epochs; e++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, idx := range order {
			s := &train[idx]
			m.probs(&s.X, &p)
			for c := 0; c < Classes; c++ {
				g := p[c]
				if c == s.Label {
					g--
				}
				for f := 0; f < Features; f++ {
					m.W[c][f] -= lr * g * s.X[f]
				}
				m.B[c] -= lr * g
			}
		}
	}
	return m
}

func (m *Model) probs(x *[Features]float64, p *[Classes]float64) {
	maxZ := math.Inf(-1)
	for c := 0; c < Classes; c++ {
		z := m.B[c]
		for f := 0; f < Features; f++ {
			z += m.W[c][f] * x[f]
		}
		p[c] = z
		maxZ = math.Max(maxZ, z)
	}
	var sum float64
	for c := range p {
		p[c] = math.Exp(p[c] - maxZ)
		sum += p[c]
	}
	for c := range p {
		p[c] /= sum
	}
}

// Predict returns the most likely digit.
func (m *Model) Predict(x *[Features]float64) int {
	var p [Classes]float64
	m.probs(x, &p)
	best := 0
	for c := 1; c < Classes; c++ {
		if p[c] > p[best] {
			best = c
		}
	}
	return best
}

// Accuracy is the fraction of samples predicted right.
func (m *Model) Accuracy(samples []Sample) float64 {
	if len(samples) == 0 {
		return 0
	}
	right := 0
	for i := range samples {
		if m.Predict(&samples[i].X) == samples[i].Label {
			right++
		}
	}
	return float64(right) / float64(len(samples))
}

// Save writes the model as JSON.
func (m *Model) Save(path string) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// LoadModel reads a model written by Save.
func LoadModel(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Version != 1 || m.Kind != "softmax" {
		return nil, errors.New(path + ": not a version 1 softmax model")
	}
	return &m, nil
}
