//go:build integration

package main

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/validator"
)

// TestValidatorCommands runs `gpunode validator` as a process against a dev chain:
// register with the minimum stake, add stake, read the status, unstake.
func TestValidatorCommands(t *testing.T) {
	dir := t.TempDir()
	dep := devchain.StartTest(t, 50*time.Millisecond)
	depFile := filepath.Join(dir, "devchain.json")
	devchain.WriteDeployment(depFile, dep)
	ks, pw, hexFile := filepath.Join(dir, "keystore"), filepath.Join(dir, "pw"), filepath.Join(dir, "key.hex")
	os.WriteFile(pw, []byte("node-pass\n"), 0o600)
	os.WriteFile(hexFile, []byte(dep.Accounts[3].PrivateKey), 0o600)
	flags := []string{"--keystore", ks, "--password-file", pw, "--light-kdf"}
	gpunode(t, append([]string{"wallet", "import", "--hex", hexFile}, flags...)...)
	flags = append(flags, "--deployment", depFile)

	status := func() string { return gpunode(t, append([]string{"validator", "status"}, flags...)...) }
	if s := status(); !strings.Contains(s, "not registered") {
		t.Fatalf("status before registering:\n%s", s)
	}
	out := gpunode(t, append([]string{"validator", "register", "--peer-id", "12D3KooWvalidator"}, flags...)...)
	if !strings.Contains(out, "registered: tx 0x") {
		t.Fatalf("register: %s", out)
	}
	if s := status(); !strings.Contains(s, "1000000000000000000 wei") || !strings.Contains(s, "drawable") {
		t.Fatalf("status after registering with the minimum:\n%s", s)
	}
	gpunode(t, append([]string{"validator", "stake", "--amount", "0.5eth"}, flags...)...)
	if s := status(); !strings.Contains(s, "1500000000000000000 wei") {
		t.Fatalf("status after staking half an ether more:\n%s", s)
	}
	gpunode(t, append([]string{"validator", "unstake"}, flags...)...)
	if s := status(); !strings.Contains(s, "unbonding until") {
		t.Fatalf("status after unstaking:\n%s", s)
	}
	// Too early: the unbonding period has not passed.
	bad := append([]string{"validator", "withdraw-stake"}, flags...)
	if out, err := runGpunode(t, bad...); err == nil || !strings.Contains(out, "StakeLocked") {
		t.Fatalf("withdraw-stake while unbonding: %v\n%s", err, out)
	}
	if out, err := runGpunode(t, append([]string{"validator", "stake", "--amount", "lots"}, flags...)...); err == nil || !strings.Contains(out, "want a positive number") {
		t.Fatalf("stake with a bad amount: %v\n%s", err, out)
	}
}

// runGpunode runs the binary and returns its output and error, for a command meant to fail.
func runGpunode(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testenv.Binary(t), args...).CombinedOutput()
	return string(out), err
}

// TestJobStatusV2 shows a JobMarketV2 job's commits, reveals and slash: three staked
// validators are drawn, two commit and reveal, the third is offline.
func TestJobStatusV2(t *testing.T) {
	dir := t.TempDir()
	dep := devchain.StartTest(t, 50*time.Millisecond)
	depFile := filepath.Join(dir, "devchain.json")
	devchain.WriteDeployment(depFile, dep)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	as := func(i int) *market.V2 {
		key, _ := crypto.ToECDSA(common.FromHex(dep.Accounts[i].PrivateKey))
		v, err := market.DialV2(ctx, market.V2Dial{URL: dep.RPCURL, Contract: dep.JobMarketV2, Confirmations: 1}, key, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Close)
		return v
	}
	eth := big.NewInt(params.Ether)
	vals := map[common.Address]*market.V2{}
	for i := 2; i <= 4; i++ {
		v := as(i)
		if _, err := v.RegisterValidator(ctx, "12D3KooWvalidator", eth); err != nil {
			t.Fatal(err)
		}
		vals[v.Account()] = v
	}
	sponsor, prov := as(0), as(1)
	if _, err := prov.RegisterProvider(ctx, "12D3KooWprovider", "", common.Hash{}); err != nil {
		t.Fatal(err)
	}
	now, _ := prov.Now(ctx)
	id, _, err := sponsor.PostJob(ctx, bindings.JobMarketV2JobParams{Reward: eth, ValidatorFee: big.NewInt(1), Bond: big.NewInt(0),
		Threshold: 500000, LowerIsBetter: true, ValidatorCount: 3, Quorum: 2, AcceptBy: big.NewInt(now.Add(time.Hour).Unix()),
		RunWindow: 3600, CommitWindow: big.NewInt(120), RevealWindow: big.NewInt(3600), ManifestCID: "bafymanifest"}, new(big.Int).Add(eth, big.NewInt(3)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.AcceptJob(ctx, id, false, nil, big.NewInt(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := prov.SubmitResult(ctx, id, "bafysealed", common.HexToHash("0x01"), common.HexToHash("0x02")); err != nil {
		t.Fatal(err)
	}
	acc, _ := prov.Accepted(ctx, id)
	salt := common.HexToHash("0x5a17")
	for _, a := range acc.Validators[:2] {
		if _, err := vals[a].Commit(ctx, id, acc.Validators, validator.Commitment(250000, salt, a, id)); err != nil {
			t.Fatal(err)
		}
	}
	out := gpunode(t, "job", "status", id.String(), "--deployment", depFile)
	if !strings.Contains(out, "On JobMarketV2:  submitted") || strings.Count(out, " yes ") != 2 || !strings.Contains(out, "lower is better") {
		t.Fatalf("status after two commits:\n%s", out)
	}
	for _, a := range acc.Validators[:2] {
		deadline := time.Now().Add(time.Minute)
		for {
			_, err := vals[a].Reveal(ctx, id, acc.Validators, 250000, salt)
			if err == nil {
				break
			}
			if !contracts.IsRevert(err, "RevealTooEarly") || time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	out = gpunode(t, "job", "status", id.String(), "--deployment", depFile)
	offline := acc.Validators[2].Hex()
	if !strings.Contains(out, "On JobMarketV2:  passed") || strings.Count(out, "250000") != 2 || !regexp.MustCompile(offline+`\s+no\s+no\s+-\s+-\s+500000000000000000`).MatchString(out) {
		t.Fatalf("status after the reveals:\n%s", out)
	}
}
