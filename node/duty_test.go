package node

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/duties"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/policy"
	"github.com/gpunode/gpunode/node/validator"
	"github.com/gpunode/gpunode/runtime"
)

func parsePolicy(t *testing.T, body string) *policy.Set {
	t.Helper()
	p, err := policy.Parse([]byte("version = 1\n" + body))
	if err != nil {
		t.Fatal(err)
	}
	return &policy.Set{Local: p}
}

// TestValidatorDeclinesDuty: of three validators a job names, one consents; one does not
// evaluate for the job's sponsor and declines the duty when the job is posted; one does
// not run the job's evaluation image and declines once it reads the manifest. Neither
// runs anything nor attests, each says why, and the job is still paid on the first one's
// attestation.
func TestValidatorDeclinesDuty(t *testing.T) {
	dep := startDevchain(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}
	jcfg := jobs.Default()
	jcfg.OutcomePoll = jobs.Default().RetryBase
	provider := newChainNode(t, dep, 1, content, nodeOpts{jobs: jcfg, runtime: &procRuntime{done: map[string]runtime.Result{}, run: func(s runtime.Spec) int {
		os.WriteFile(filepath.Join(s.OutputDir, "model.json"), []byte(`{"w":[1]}`), 0o644)
		return 0
	}}})
	sponsor := newChainNode(t, dep, 4, content)
	if err := provider.work.registrar.Register(ctx); err != nil {
		t.Fatal(err)
	}
	machine := provider.work.machine
	policies := []string{
		"[validator]\nsponsors = [\"" + sponsor.addr.Hex() + "\"]\n[validator.images]\nallow = [\"reg.local/*\"]\n",
		"[validator]\nsponsors = [\"0x1111111111111111111111111111111111111111\"]\n",
		"[validator.images]\nallow = [\"ghcr.io/*/*\"]\n",
	}
	var validators []*chainNode
	var evals []*procRuntime
	for i, body := range policies {
		eval := &procRuntime{done: map[string]runtime.Result{}, run: func(s runtime.Spec) int {
			os.WriteFile(filepath.Join(s.OutputDir, validator.ResultFile), []byte(`{"version":1,"metrics":{"accuracy":0.95}}`), 0o644)
			return 0
		}}
		// 1 is the provider, 4 the sponsor
		v := newChainNode(t, dep, []int{2, 3, 0}[i], content, nodeOpts{validate: true, runtime: eval, policy: parsePolicy(t, body)})
		validators, evals = append(validators, v), append(evals, eval)
	}

	manifestCID, sum := testManifest(content)
	var addrs []common.Address
	for _, v := range validators {
		addrs = append(addrs, v.addr)
	}
	if _, _, err := sponsor.market.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: big.NewInt(1_000_000), ValidatorFee: big.NewInt(10), Bond: new(big.Int), Threshold: 900000, Quorum: 1,
		Validators: addrs, AcceptBy: big.NewInt(time.Now().Add(time.Hour).Unix()), RunWindow: 3600, AttestWindow: 3600,
		ManifestCID: manifestCID, ManifestHash: sum,
	}); err != nil {
		t.Fatal(err)
	}
	waitJobState(t, machine, "1", jobs.Paid, 60*time.Second)
	// The third validator declines once the result is submitted and it reads the manifest.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if d, err := validators[2].store.Get(duties.Key("1")); err == nil && d.State == duties.Declined {
			break
		}
		if time.Now().After(deadline) {
			d, err := validators[2].store.Get(duties.Key("1"))
			t.Fatalf("third validator's duty: %+v %v", d, err)
		}
	}
	for i, want := range []struct{ state, words string }{
		{duties.Done, ""},
		{duties.Declined, "validator.sponsors"},
		{duties.Declined, "validator.images.allow"},
	} {
		d, err := validators[i].store.Get(duties.Key("1"))
		if err != nil || d.State != want.state {
			t.Errorf("validator %d: duty %+v %v, want %s", i, d, err, want.state)
			continue
		}
		hist, _ := validators[i].store.History(duties.Key("1"))
		if want.words != "" && !strings.Contains(fmt.Sprint(hist), want.words) {
			t.Errorf("validator %d: history %v does not say %q", i, hist, want.words)
		}
		evals[i].mu.Lock()
		runs := len(evals[i].done)
		evals[i].mu.Unlock()
		if wantRuns := boolInt(want.state == duties.Done); runs != wantRuns {
			t.Errorf("validator %d ran %d evaluations, want %d", i, runs, wantRuns)
		}
	}
	view, err := provider.market.Job(ctx, big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	if view.Attested != 1 {
		t.Errorf("attested bits %b, want the first validator's only", view.Attested)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
