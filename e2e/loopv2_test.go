//go:build integration

package e2e

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
)

// v2As reaches the loop's JobMarketV2 as dev account i.
func (l *loop) v2As(t *testing.T, i int) *market.V2 {
	t.Helper()
	key, err := crypto.ToECDSA(common.FromHex(l.dep.Accounts[i].PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	v, err := market.DialV2(t.Context(), market.V2Dial{URL: l.dep.RPCURL, ChainID: l.dep.ChainID, Contract: l.dep.JobMarketV2,
		StartBlock: l.dep.DeployBlock, Confirmations: 1}, key, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// TestJobLoopV2 runs the job loop on JobMarketV2 with real processes: the dev chain, a
// researcher, a provider and three staked validators, two of them daemons registered
// through the CLI and the third offline. The provider trains on its private dataset,
// publishes the checkpoint sealed and delivers its key to the drawn validators over
// libp2p; they commit and reveal; the offline validator is slashed and the job still
// passes; the provider releases the key on chain, which pays it; the researcher opens
// the checkpoint with that key, and sees the commits and reveals with job status.
func TestJobLoopV2(t *testing.T) {
	l := startLoop(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	depFile := filepath.Join(t.TempDir(), "devchain.json")
	if err := devchain.WriteDeployment(depFile, l.dep); err != nil {
		t.Fatal(err)
	}

	// Validators 3 and 4 stake the minimum with their daemons' peer IDs; account 0 stakes
	// too and never runs a node.
	for _, m := range []*member{l.v1, l.v2} {
		out, err := gpunode(t, "validator", "register", "--deployment", depFile, "--keystore", filepath.Join(m.dir, "keystore"),
			"--password-file", filepath.Join(m.dir, "pw"), "--light-kdf", "--api-socket", m.d.socket)
		if err != nil || !strings.Contains(out, "registered: tx 0x") {
			t.Fatalf("validator register (%s): %v\n%s", m.name, err, out)
		}
	}
	offline := l.v2As(t, 0)
	if _, err := offline.RegisterValidator(ctx, "12D3KooWOfflineValidatorNeverRunsANodeAtAll", big.NewInt(params.Ether)); err != nil {
		t.Fatal(err)
	}

	// The researcher posts the job with the CLI: three validators drawn, two reveals
	// decide. The dev chain's clock runs a second per block (4 a real second here): a
	// 4-minute commit window gives the validators a minute to fetch, open, evaluate and
	// commit.
	dir := t.TempDir()
	mpath := filepath.Join(dir, "job.json")
	os.WriteFile(mpath, l.manifest(t, func(m map[string]any) {
		m["version"] = 2
		m["inputs"] = []any{map[string]any{"dataset": "digits", "path": "/data"}}
		m["evaluation"].(map[string]any)["direction"] = "higher"
	}), 0o644)
	os.WriteFile(filepath.Join(dir, "digits.csv.gz"), l.dataset, 0o644)
	var out string
	var err error
	for attempt := 0; attempt < 30; attempt++ { // the first adds wait for IPFS to be up
		out, err = l.sponsor.cli(t, "job", "post", mpath, "--validator-count", "3", "--quorum", "2", "--reward", reward,
			"--validator-fee", fee, "--accept-within", "1h", "--run-window", "10m", "--commit-window", "4m", "--reveal-window", "10m")
		if err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	m := regexp.MustCompile(`posted job (\d+) on JobMarketV2\n`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("job post: %v\n%s", err, out)
	}
	id, _ := new(big.Int).SetString(m[1], 10)
	sponsor := l.v2As(t, 1)
	if p, err := sponsor.Posted(ctx, id); err != nil || p.Params.ValidatorCount != 3 || p.Params.LowerIsBetter {
		t.Fatalf("posted: %+v, %v", p, err)
	}
	key := "v2-" + id.String()
	l.wait(t, key, 5*time.Minute, jobs.Submitted, jobs.Paid)
	d := l.wait(t, key, 5*time.Minute, jobs.Paid)
	if d.KeyHash == "" {
		t.Errorf("the provider's record has no key hash: %+v", d.Record)
	}

	// On chain: completed, the key released, two reveals that pass, the offline one slashed.
	j, err := sponsor.Job(ctx, id)
	if err != nil || market.JobState(j.State) != market.V2Completed {
		t.Fatalf("job on chain: %s, %v", market.V2StateName(j.State), err)
	}
	votes, err := sponsor.Votes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range votes {
		switch v.Validator {
		case offline.Account():
			if v.Revealed || v.Slashed == nil || v.Slashed.Sign() <= 0 {
				t.Errorf("the offline validator: %+v, want slashed", v)
			}
		case l.v1.account, l.v2.account:
			if !v.Revealed || !v.Pass || v.Score < 900000 {
				t.Errorf("validator %s: %+v, want a passing reveal", v.Validator.Hex(), v)
			}
		default:
			t.Errorf("drawn %s, neither of the three staked validators", v.Validator.Hex())
		}
	}

	// The researcher opens the checkpoint with the key from the chain, and sees the votes.
	dir = filepath.Join(t.TempDir(), "checkpoint")
	out, err = l.sponsor.cli(t, "job", "fetch", id.String(), dir, "--deployment", depFile)
	if err != nil || !strings.Contains(out, "opened into") {
		t.Fatalf("job fetch: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) == 0 {
		t.Fatal("the fetched checkpoint is empty")
	}
	out, err = gpunode(t, "job", "status", id.String(), "--deployment", depFile)
	if err != nil || !strings.Contains(out, "completed") || strings.Count(out, " yes ") < 2 {
		t.Fatalf("job status:\n%v\n%s", err, out)
	}
	// What the provider published is sealed: the model's bytes are nowhere in it.
	sealed := filepath.Join(t.TempDir(), "sealed")
	if err := l.sponsor.api().IPFSDownload(ctx, d.OutputCID, sealed); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(sealed, "checkpoint.sealed"))
	model, _ := os.ReadFile(filepath.Join(dir, firstFile(t, dir)))
	if len(b) == 0 || (len(model) >= 32 && strings.Contains(string(b), string(model[:32]))) {
		t.Fatal("the published checkpoint is not sealed")
	}
	t.Logf("v2 job %s paid; key hash %s; sealed checkpoint %s", id, d.KeyHash, d.OutputCID)
}

func firstFile(t *testing.T, dir string) string {
	t.Helper()
	var name string
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && name == "" {
			name, _ = filepath.Rel(dir, p)
		}
		return nil
	})
	if name == "" {
		t.Fatal("no file in the checkpoint")
	}
	return name
}
