package duties

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/policy"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/validator"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// content serves one manifest.
type content struct {
	cid string
	raw []byte
}

func (c content) Get(_ context.Context, cid string, max int64) ([]byte, error) {
	if cid != c.cid || int64(len(c.raw)) > max {
		return nil, fmt.Errorf("%s: not found", cid)
	}
	return c.raw, nil
}

// fakeValidator records the tasks it is given and answers with verdict.
type fakeValidator struct {
	mu      sync.Mutex
	tasks   []validator.Task
	verdict validator.Verdict
	err     error
}

func (v *fakeValidator) Validate(_ context.Context, t validator.Task) (validator.Verdict, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tasks = append(v.tasks, t)
	return v.verdict, v.err
}

func (v *fakeValidator) calls() []validator.Task {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]validator.Task(nil), v.tasks...)
}

const manifest = `{"version":1,"image":"reg.local/t@sha256:0000000000000000000000000000000000000000000000000000000000000001","command":["/train"],
"resources":{"gpus":0},"output":{"path":"/out","max_bytes":1048576},"max_duration":"30m","network":{"mode":"none"},
"evaluation":{"image":"reg.local/e@sha256:0000000000000000000000000000000000000000000000000000000000000002","command":["/eval"],"metric":"accuracy","threshold":0.9}}`

func posting(id string) (jobs.Posting, content) {
	sum := sha256.Sum256([]byte(manifest))
	return jobs.Posting{ID: id, Sponsor: "0x00000000000000000000000000000000000000b2", ManifestCID: "bafym", ManifestHash: hex.EncodeToString(sum[:]),
		Validators: []string{"0x00000000000000000000000000000000000000a1"}}, content{cid: "bafym", raw: []byte(manifest)}
}

func waitState(t *testing.T, st *store.Store, id, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		j, err := st.Get(Key(id))
		if err == nil && j.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("duty %s: %+v %v, want %s", id, j, err, want)
		}
	}
}

// TestJudge: a duty is kept from the job's posting, judged once its result is submitted
// (with the manifest's evaluation), and done; a result for a job the node does not judge
// is ignored; a replayed posting changes nothing.
func TestJudge(t *testing.T) {
	st := openStore(t)
	p, c := posting("5")
	v := &fakeValidator{verdict: validator.Verdict{Score: 950000, Pass: true}}
	j := New(Deps{Store: st, Content: c, Validator: v, Log: quiet(), RetryGap: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); j.Wait() }()
	if err := j.Named(p, 900000, big.NewInt(10)); err != nil {
		t.Fatal(err)
	}
	if err := j.Named(p, 900000, big.NewInt(10)); err != nil {
		t.Fatalf("replayed posting: %v", err)
	}
	waitState(t, st, "5", Posted)
	if err := j.Submitted(ctx, &bindings.JobMarketResultSubmitted{JobId: big.NewInt(6), CheckpointCID: "bafyother"}); err != nil {
		t.Fatalf("result of a job not judged here: %v", err)
	}
	if err := j.Submitted(ctx, &bindings.JobMarketResultSubmitted{JobId: big.NewInt(5), CheckpointCID: "bafyckpt", ResultHash: [32]byte{7}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, "5", Done)
	tasks := v.calls()
	if len(tasks) != 1 {
		t.Fatalf("%d evaluations, want 1", len(tasks))
	}
	task := tasks[0]
	if task.JobID != "5" || task.CheckpointCID != "bafyckpt" || task.ResultHash != hex.EncodeToString([]byte{7})+strings.Repeat("00", 31) ||
		task.Threshold != 900000 || task.FeeWei != "10" || task.Metric != "accuracy" || !strings.HasPrefix(task.EvalImage, "reg.local/e@") {
		t.Errorf("task %+v", task)
	}
	if got := j.Counts(); got[Done] != 1 || len(got) != 1 {
		t.Errorf("counts %v", got)
	}
}

// TestJudgeRetriesAndResumes: a failed validation is tried again; one a stopped node
// left unfinished is resumed.
func TestJudgeRetriesAndResumes(t *testing.T) {
	st := openStore(t)
	p, c := posting("8")
	v := &fakeValidator{err: errors.New("registry down")}
	j := New(Deps{Store: st, Content: c, Validator: v, Log: quiet(), RetryGap: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	if err := j.Named(p, 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.Submitted(ctx, &bindings.JobMarketResultSubmitted{JobId: big.NewInt(8), CheckpointCID: "bafyckpt"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(v.calls()) < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts, want retries", len(v.calls()))
		}
	}
	cancel()
	j.Wait()
	waitState(t, st, "8", Submitted)

	// A new judge over the same store (the node restarted) picks the duty up.
	v2 := &fakeValidator{verdict: validator.Verdict{Score: 1}}
	j2 := New(Deps{Store: st, Content: c, Validator: v2, Log: quiet()})
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer func() { cancel2(); j2.Wait() }()
	if err := j2.Resume(ctx2); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, "8", Done)
}

// TestJudgeDeclines: the policy declines a duty on the chain's terms at once, and on the
// evaluation image once the validator reads the manifest; a node with the role off keeps
// no duty.
func TestJudgeDeclines(t *testing.T) {
	pol, err := policy.Parse([]byte("version = 1\n[validator]\nsponsors = [\"0x1111111111111111111111111111111111111111\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	p, c := posting("3")
	v := &fakeValidator{}
	j := New(Deps{Store: st, Content: c, Validator: v, Policy: &policy.Set{Local: pol}, Log: quiet()})
	if err := j.Named(p, 1, nil); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, "3", Declined)
	hist, _ := st.History(Key("3"))
	if !strings.Contains(fmt.Sprint(hist), "validator.sponsors") {
		t.Errorf("history %v does not say why", hist)
	}
	if err := j.Submitted(t.Context(), &bindings.JobMarketResultSubmitted{JobId: big.NewInt(3)}); err != nil {
		t.Fatal(err)
	}
	j.Wait()
	if n := len(v.calls()); n != 0 {
		t.Errorf("a declined duty was evaluated %d times", n)
	}

	// The validator itself declines (its consent refused the evaluation image).
	st2 := openStore(t)
	v2 := &fakeValidator{verdict: validator.Verdict{Declined: true, Reason: "validator.images.allow"}}
	j2 := New(Deps{Store: st2, Content: c, Validator: v2, Log: quiet()})
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); j2.Wait() }()
	j2.Named(p, 1, nil)
	j2.Submitted(ctx, &bindings.JobMarketResultSubmitted{JobId: big.NewInt(3)})
	waitState(t, st2, "3", Declined)

	st3 := openStore(t)
	if err := New(Deps{Store: st3, Log: quiet()}).Named(p, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st3.Get(Key("3")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("role off: duty kept (%v)", err)
	}
}

// attestMarket is the contract's attest in memory.
type attestMarket struct {
	self common.Address
	job  bindings.JobMarketJob
	sent []string
}

func (m *attestMarket) Account() common.Address { return m.self }
func (m *attestMarket) Job(context.Context, *big.Int) (bindings.JobMarketJob, error) {
	return m.job, nil
}
func (m *attestMarket) Attest(_ context.Context, id *big.Int, vals []common.Address, h common.Hash, score uint32) (*types.Receipt, error) {
	m.sent = append(m.sent, fmt.Sprintf("attest %s %d validators %d result %x", id, score, len(vals), h[:1]))
	return &types.Receipt{}, nil
}

// TestAttester: the verdict is attested once, while the job awaits attestations.
func TestAttester(t *testing.T) {
	st := openStore(t)
	p, c := posting("4")
	p.Validators = []string{"0x00000000000000000000000000000000000000b1", "0x00000000000000000000000000000000000000a1"}
	j := New(Deps{Store: st, Content: c, Validator: &fakeValidator{}, Log: quiet()})
	if err := j.Named(p, 1, nil); err != nil {
		t.Fatal(err)
	}
	m := &attestMarket{self: common.HexToAddress("0xa1"), job: bindings.JobMarketJob{State: uint8(market.StateSubmitted)}}
	a := NewAttester(m, st)
	ctx := t.Context()
	if _, err := a.Attest(ctx, "4", 7); err != nil {
		t.Fatal(err)
	}
	m.job.Attested = 1 << 1 // this node's bit: index 1
	if tx, err := a.Attest(ctx, "4", 7); err != nil || tx != "already attested" {
		t.Errorf("second attest: %q %v", tx, err)
	}
	m.job = bindings.JobMarketJob{State: uint8(market.StateCompleted)}
	if tx, err := a.Attest(ctx, "4", 7); err != nil || !strings.Contains(tx, "no longer awaits") {
		t.Errorf("attest a completed job: %q %v", tx, err)
	}
	if len(m.sent) != 1 || m.sent[0] != "attest 4 7 validators 2 result 00" {
		t.Errorf("sent %q", m.sent)
	}
	if _, err := a.Attest(ctx, "x", 1); !errors.Is(err, jobs.ErrPermanent) {
		t.Errorf("bad id: %v", err)
	}
	if _, err := a.Attest(ctx, "99", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no duty: %v", err)
	}
}
