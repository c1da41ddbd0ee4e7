package validator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime"
)

type fakeChain struct {
	mu       sync.Mutex
	scores   map[string]uint32
	attests  int
	failNext int
}

func (c *fakeChain) Attest(_ context.Context, id string, score uint32) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failNext > 0 {
		c.failNext--
		return "", errors.New("rpc: timeout")
	}
	if prev, ok := c.scores[id]; ok {
		if prev != score {
			return "", errors.New("execution reverted: already attested")
		}
		return "0xtx", nil
	}
	c.scores[id] = score
	c.attests++
	return "0xtx", nil
}

type fakeContent struct{ dirs map[string]string }

func (c fakeContent) Fetch(_ context.Context, cid string) (string, error) {
	d, ok := c.dirs[cid]
	if !ok {
		return "", errors.New("not found")
	}
	return d, nil
}

// fakeRuntime "runs" the eval image by calling eval with the checkpoint and output dirs.
type fakeRuntime struct {
	eval   func(checkpoint, out string) int
	starts int
	specs  []runtime.Spec
	res    map[string]runtime.Result
}

func (r *fakeRuntime) Start(_ context.Context, s runtime.Spec) (runtime.Handle, error) {
	if _, ok := r.res[s.JobID]; ok {
		return runtime.Handle{}, runtime.ErrJobExists
	}
	r.starts++
	r.specs = append(r.specs, s)
	code := r.eval(s.Inputs[0].Source, s.OutputDir)
	r.res[s.JobID] = runtime.Result{JobID: s.JobID, ExitCode: code}
	return runtime.Handle{JobID: s.JobID}, nil
}

func (r *fakeRuntime) Wait(_ context.Context, id string) (runtime.Result, error) {
	return r.res[id], nil
}

func writeResult(body string) func(string, string) int {
	return func(_, out string) int {
		os.WriteFile(filepath.Join(out, ResultFile), []byte(body), 0o644)
		return 0
	}
}

type setup struct {
	v     *Validator
	chain *fakeChain
	rt    *fakeRuntime
	task  Task
	st    *store.Store
}

func newSetup(t *testing.T, eval func(string, string) int) *setup {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	os.MkdirAll(ckpt, 0o755)
	os.WriteFile(filepath.Join(ckpt, "model.json"), []byte(`{"w":1}`), 0o644)
	hash, err := treehash.Sum(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &setup{chain: &fakeChain{scores: map[string]uint32{}}, rt: &fakeRuntime{eval: eval, res: map[string]runtime.Result{}}, st: st}
	s.v = New(Default(), st, s.chain, fakeContent{dirs: map[string]string{"bafyckpt": ckpt}}, s.rt, filepath.Join(dir, "work"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.task = Task{JobID: "7", CheckpointCID: "bafyckpt", ResultHash: hash, EvalImage: "eval@sha256:" + strings.Repeat("a", 64),
		EvalCommand: []string{"/eval"}, Metric: "accuracy", Threshold: 900000}
	return s
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		eval   func(string, string) int
		tamper bool
		score  uint32
		pass   bool
		reason string
	}{
		{"passes", writeResult(`{"version":1,"metrics":{"accuracy":0.9638,"loss":0.1}}`), false, 963800, true, ""},
		{"below threshold", writeResult(`{"version":1,"metrics":{"accuracy":0.5}}`), false, 500000, false, ""},
		{"exactly the threshold", writeResult(`{"version":1,"metrics":{"accuracy":0.9}}`), false, 900000, true, ""},
		{"checkpoint does not match its hash", writeResult(`{"version":1,"metrics":{"accuracy":0.99}}`), true, 0, false, "the chain says"},
		{"evaluation fails", func(string, string) int { return 2 }, false, 0, false, "evaluation failed: exit 2"},
		{"no result file", func(string, string) int { return 0 }, false, 0, false, "wrote no result.json"},
		{"malformed result", writeResult(`{"version":1,"metrics":{"accuracy":"high"}}`), false, 0, false, "result.json"},
		{"missing metric", writeResult(`{"version":1,"metrics":{"f1":0.99}}`), false, 0, false, `no metric "accuracy"`},
		{"unknown field", writeResult(`{"version":1,"metrics":{"accuracy":0.99},"pass":true}`), false, 0, false, "unknown field"},
		// The evaluation image plays the attacker: a FIFO would block a plain open
		// forever, a symlink would make the validator read a host file.
		{"result is a FIFO", func(_, out string) int { syscall.Mkfifo(filepath.Join(out, ResultFile), 0o666); return 0 }, false, 0, false, "not a regular file"},
		{"result is a symlink", func(_, out string) int {
			host := filepath.Join(filepath.Dir(out), "host-file")
			os.WriteFile(host, []byte(`{"version":1,"metrics":{"accuracy":0.99}}`), 0o644)
			os.Symlink(host, filepath.Join(out, ResultFile))
			return 0
		}, false, 0, false, "is a symlink"},
		{"result is a directory", func(_, out string) int { os.Mkdir(filepath.Join(out, ResultFile), 0o755); return 0 }, false, 0, false, "not a regular file"},
		{"result is endless", func(_, out string) int {
			os.WriteFile(filepath.Join(out, ResultFile), bytes.Repeat([]byte(" "), MaxResultBytes+1), 0o644)
			return 0
		}, false, 0, false, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.name, "result is") || tt.tamper {
				testenv.Attack(t, "validator", tt.name)
			}
			s := newSetup(t, tt.eval)
			if tt.tamper {
				s.task.ResultHash = strings.Repeat("0", 64)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var v Verdict
			var err error
			done := make(chan struct{})
			go func() { v, err = s.v.Validate(ctx, s.task); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the validator hangs on the evaluation's result")
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Score != tt.score || v.Pass != tt.pass || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("verdict %+v, want score %d pass %v reason %q", v, tt.score, tt.pass, tt.reason)
			}
			if s.chain.scores["7"] != tt.score || s.chain.attests != 1 {
				t.Errorf("chain has score %d after %d attests", s.chain.scores["7"], s.chain.attests)
			}
			if len(s.rt.specs) > 0 {
				spec := s.rt.specs[0]
				if spec.Network != runtime.NetworkNone || spec.Inputs[0].Target != "/checkpoint" || spec.OutputTarget != "/out" {
					t.Errorf("eval spec %+v", spec)
				}
			}
			// The validator keeps serving: the next job's evaluation is scored.
			s.rt.eval = writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`)
			next := s.task
			next.JobID = "8"
			if s.task.ResultHash != strings.Repeat("0", 64) {
				if nv, err := s.v.Validate(ctx, next); err != nil || nv.Score != 950000 {
					t.Errorf("the next evaluation after this one: %+v, %v", nv, err)
				}
			}
		})
	}
}

// TestValidateOnce: a failed attestation is retried without evaluating again, and a
// validator asked again after attesting does nothing more.
func TestValidateOnce(t *testing.T) {
	s := newSetup(t, writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`))
	s.chain.failNext = 1
	if _, err := s.v.Validate(t.Context(), s.task); err == nil {
		t.Fatal("attest failure not reported")
	}
	for i := 0; i < 2; i++ {
		v, err := s.v.Validate(t.Context(), s.task)
		if err != nil || v.Score != 950000 {
			t.Fatalf("retry %d: %+v %v", i, v, err)
		}
	}
	if s.rt.starts != 1 || s.chain.attests != 1 {
		t.Errorf("%d evaluations and %d attestations, want 1 each", s.rt.starts, s.chain.attests)
	}
}

func TestFetchFailureIsRetried(t *testing.T) {
	s := newSetup(t, writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`))
	s.task.CheckpointCID = "bafymissing"
	if _, err := s.v.Validate(t.Context(), s.task); err == nil || !strings.Contains(err.Error(), "fetch checkpoint") {
		t.Fatalf("err = %v", err)
	}
	if s.chain.attests != 0 {
		t.Error("attested after the validator's own fetch failed")
	}
}

func TestToScore(t *testing.T) {
	for v, want := range map[float64]uint32{0: 0, -1: 0, 0.9: 900000, 1: 1000000, 1e9: 4294967295, 0.0000004: 0, 0.0000005: 1} {
		if got := toScore(v); got != want {
			t.Errorf("toScore(%v) = %d, want %d", v, got, want)
		}
	}
}

func FuzzDecodeResult(f *testing.F) {
	for _, s := range []string{`{"version":1,"metrics":{"accuracy":0.9}}`, `{"version":2}`, `{"version":1,"metrics":{}}`, `[]`, `{"version":1,"metrics":{"a":1e400}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		if r.Version != 1 || len(r.Metrics) == 0 {
			t.Errorf("accepted %+v", r)
		}
	})
}

// TestEvalInputsMounted: the evaluation's inputs are fetched and mounted read-only where
// the manifest says; one that cannot be fetched is the validator's trouble (retried),
// not a zero score for the provider.
func TestEvalInputsMounted(t *testing.T) {
	held := t.TempDir()
	os.WriteFile(filepath.Join(held, "heldout.csv"), []byte("x,y\n"), 0o644)
	s := newSetup(t, writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`))
	s.v.content.(fakeContent).dirs["bafyheld"] = held
	s.task.EvalInputs = []EvalInput{{CID: "bafyheld", Path: "/heldout"}}
	if v, err := s.v.Validate(t.Context(), s.task); err != nil || !v.Pass {
		t.Fatalf("verdict %+v, %v", v, err)
	}
	in := s.rt.specs[0].Inputs
	if len(in) != 2 || in[1].Source != held || in[1].Target != "/heldout" {
		t.Errorf("eval mounts %+v", in)
	}

	s = newSetup(t, writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`))
	s.task.EvalInputs = []EvalInput{{CID: "bafygone", Path: "/heldout"}}
	if _, err := s.v.Validate(t.Context(), s.task); err == nil || !strings.Contains(err.Error(), "fetch evaluation input bafygone") {
		t.Errorf("missing eval input: %v", err)
	}
	if s.chain.attests != 0 {
		t.Error("attested without its evaluation input")
	}
}
