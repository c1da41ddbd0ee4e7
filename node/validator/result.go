package validator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// ResultFile is the file an evaluation image writes in its output directory:
//
//	{"version": 1, "metrics": {"accuracy": 0.9638, "loss": 0.12}}
//
// Metrics are finite numbers; the manifest names the one that is scored.
const ResultFile = "result.json"

// MaxResultBytes bounds the result file.
const MaxResultBytes = 64 << 10

// Result is the decoded result file.
type Result struct {
	Version int                `json:"version"`
	Metrics map[string]float64 `json:"metrics"`
}

// DecodeResult reads a result file strictly: bounded, version 1, no unknown fields, at
// least one metric, every metric a finite number with a sensible name.
func DecodeResult(r io.Reader) (Result, error) {
	var res Result
	b, err := io.ReadAll(io.LimitReader(r, MaxResultBytes+1))
	if err != nil {
		return res, fmt.Errorf("%s: %w", ResultFile, err)
	}
	if len(b) > MaxResultBytes {
		return res, fmt.Errorf("%s: larger than %d bytes", ResultFile, MaxResultBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		return res, fmt.Errorf("%s: %w", ResultFile, err)
	}
	if dec.More() {
		return res, fmt.Errorf("%s: trailing data", ResultFile)
	}
	if res.Version != 1 {
		return res, fmt.Errorf("%s: version %d, want 1", ResultFile, res.Version)
	}
	if len(res.Metrics) == 0 {
		return res, errors.New(ResultFile + ": no metrics")
	}
	for name, v := range res.Metrics {
		if name == "" || len(name) > 128 {
			return res, fmt.Errorf("%s: bad metric name %q", ResultFile, name)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return res, fmt.Errorf("%s: metric %q is not a finite number", ResultFile, name)
		}
	}
	return res, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func unmarshal(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}
