package capacity

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/challenge"
)

func attestation(t *testing.T, rig signer, tflops float64) json.RawMessage {
	t.Helper()
	ch := newSigner(t)
	res := &challenge.Result{Passed: true, Device: "cpu", TFLOPS: tflops,
		Params: challenge.Params{N: 2048, Precision: benchmark.FP32, Count: 1, Deadline: time.Minute}}
	a, err := challenge.NewAttestation(ch.key, rig.id, res, now)
	if err != nil {
		t.Fatal(err)
	}
	return a.Encode()
}

// TestRecordAttestations: a record carries up to MaxAttestations attestations about its
// own rig, each verified on receipt; one about another rig, a tampered one or one too
// many refuses the record, and it still fits well under MaxSize.
func TestRecordAttestations(t *testing.T) {
	s, other := newSigner(t), newSigner(t)
	r := s.record(t)
	for i := range MaxAttestations {
		r.Capacity.Attestations = append(r.Capacity.Attestations, attestation(t, s, float64(i+1)))
	}
	env := s.seal(t, r)
	got, err := Open(env, now, time.Hour, time.Minute)
	if err != nil {
		t.Fatalf("record with %d attestations: %v", MaxAttestations, err)
	}
	if len(got.Capacity.Attestations) != MaxAttestations || len(env) > MaxSize/2 {
		t.Fatalf("%d attestations, %d bytes", len(got.Capacity.Attestations), len(env))
	}
	tampered := strings.Replace(string(attestation(t, s, 1)), `"tflops":1`, `"tflops":100`, 1)
	for name, list := range map[string][]json.RawMessage{
		"another rig's": {attestation(t, other, 1)},
		"tampered":      {json.RawMessage(tampered)},
		"one too many":  append(append([]json.RawMessage{}, r.Capacity.Attestations...), attestation(t, s, 9)),
	} {
		bad := s.record(t)
		bad.Capacity.Attestations = list
		if _, err := Open(s.seal(t, bad), now, time.Hour, time.Minute); err == nil {
			t.Errorf("%s attestation: record opened", name)
		}
		if err := bad.Check(); err == nil {
			t.Errorf("%s attestation: record checks", name)
		}
	}
}
