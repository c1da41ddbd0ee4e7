package market

import (
	"context"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/sealkey"
	"github.com/gpunode/gpunode/node/validator"
)

func v2For(t *testing.T, dep devchain.Deployment, depFile string, i int) *V2 {
	t.Helper()
	v, err := marketFor(t, dep, depFile, i).V2()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestV2Lifecycle runs a sealed job through JobMarketV2 on a dev chain with the node's
// own pieces: three staked validators are drawn, two commit and reveal scores made with
// validator.Commitment, the third stays offline and is slashed, the job passes, and the
// provider's key (sealkey.KeyStore, keccak256(K) committed at submit) is released on
// chain, which pays the provider.
func TestV2Lifecycle(t *testing.T) {
	dep := devchain.StartTest(t, 50*time.Millisecond)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	devchain.WriteDeployment(depFile, dep)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sponsor, provider := v2For(t, dep, depFile, 0), v2For(t, dep, depFile, 1)
	vals := []*V2{v2For(t, dep, depFile, 2), v2For(t, dep, depFile, 3), v2For(t, dep, depFile, 4)}
	eth := big.NewInt(params.Ether)
	for i, v := range vals {
		if _, err := v.RegisterValidator(ctx, "12D3KooWvalidator"+string(rune('a'+i)), eth); err != nil {
			t.Fatal(err)
		}
		rec, err := v.Validator(ctx, v.Account())
		if err != nil || rec.Stake.Cmp(eth) != 0 || rec.PoolIndex == 0 {
			t.Fatalf("validator %d: %+v, %v", i, rec, err)
		}
	}
	if _, err := provider.RegisterProvider(ctx, "12D3KooWprovider", "", common.Hash{}); err != nil {
		t.Fatal(err)
	}
	now, _ := provider.m.Now(ctx)
	reward, fee, bond := big.NewInt(params.Ether), big.NewInt(params.Ether/100), big.NewInt(params.Ether/10)
	p := bindings.JobMarketV2JobParams{
		Reward: reward, ValidatorFee: fee, Bond: bond, Threshold: 900000, ValidatorCount: 3, Quorum: 2,
		AcceptBy: big.NewInt(now.Add(time.Hour).Unix()), RunWindow: 3600, CommitWindow: big.NewInt(120), RevealWindow: big.NewInt(3600),
		ManifestCID: "bafymanifest", ManifestHash: common.HexToHash("0x01"),
	}
	escrow := new(big.Int).Add(reward, new(big.Int).Mul(fee, big.NewInt(3)))
	id, _, err := sponsor.PostJob(ctx, p, escrow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.AcceptJob(ctx, id, false, nil, bond); err != nil {
		t.Fatal(err)
	}
	acc, err := provider.Accepted(ctx, id)
	if err != nil || len(acc.Validators) != 3 || acc.Provider != provider.Account() {
		t.Fatalf("accepted: %+v, %v", acc, err)
	}

	// The provider seals a checkpoint and submits the ciphertext's hash and keccak256(K).
	ks, err := sealkey.OpenKeyStore(t.TempDir(), provider.ChainID(), provider.Contract(), provider.Account())
	if err != nil {
		t.Fatal(err)
	}
	ckpt := t.TempDir()
	os.WriteFile(filepath.Join(ckpt, "model.bin"), []byte("weights"), 0o644)
	resultHash, keyHash, err := ks.Seal(ctx, id.String(), ckpt, filepath.Join(t.TempDir(), "checkpoint.sealed"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.SubmitResult(ctx, id, "bafysealed", common.HexToHash(resultHash), common.HexToHash(keyHash)); err != nil {
		t.Fatal(err)
	}
	sub, err := provider.Submitted(ctx, id)
	if err != nil || common.Hash(sub.KeyHash).Hex() != keyHash {
		t.Fatalf("submitted: %+v, %v", sub, err)
	}

	// Two drawn validators commit; the third is offline.
	byAddr := map[common.Address]*V2{}
	for _, v := range vals {
		byAddr[v.Account()] = v
	}
	online := []*V2{byAddr[acc.Validators[0]], byAddr[acc.Validators[1]]}
	offline := acc.Validators[2]
	scores := []uint32{950000, 920000}
	salts := []common.Hash{common.HexToHash("0xaa"), common.HexToHash("0xbb")}
	for i, v := range online {
		c := validator.Commitment(scores[i], salts[i], v.Account(), id)
		if _, err := v.Commit(ctx, id, acc.Validators, c); err != nil {
			t.Fatal(err)
		}
		if got, _ := v.Commitment(ctx, id, v.Account()); got != c {
			t.Fatalf("stored commitment %s, want %s", got.Hex(), c.Hex())
		}
	}
	// Not every drawn validator committed: reveals wait for the commit deadline.
	_, err = online[0].Reveal(ctx, id, acc.Validators, scores[0], salts[0])
	if !contracts.IsRevert(err, "RevealTooEarly") {
		t.Fatalf("reveal before the commit deadline: %v, want RevealTooEarly", err)
	}
	// A reveal that does not match the commitment earns nothing.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err = online[0].Reveal(ctx, id, acc.Validators, scores[0]+1, salts[0])
		if !contracts.IsRevert(err, "RevealTooEarly") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !contracts.IsRevert(err, "WrongReveal") {
		t.Fatalf("reveal of another score: %v, want WrongReveal", err)
	}
	for i, v := range online {
		if _, err := v.Reveal(ctx, id, acc.Validators, scores[i], salts[i]); err != nil {
			t.Fatalf("reveal %d: %v", i, err)
		}
	}
	job, err := provider.Job(ctx, id)
	if err != nil || JobState(job.State) != V2Passed {
		t.Fatalf("job after the reveals: %s, %v", V2StateName(job.State), err)
	}
	votes, err := provider.Votes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, vt := range votes {
		switch vt.Validator {
		case offline:
			if vt.Revealed || vt.Slashed == nil || vt.Slashed.Cmp(big.NewInt(params.Ether/2)) != 0 {
				t.Errorf("offline validator: %+v, want slashed half an ether", vt)
			}
		default:
			if !vt.Revealed || !vt.Pass || vt.Commitment == (common.Hash{}) {
				t.Errorf("online validator: %+v", vt)
			}
		}
	}

	// The key released on chain pays the provider; the sponsor reads it from the chain.
	if _, ok, _ := provider.ReleasedKey(ctx, id); ok {
		t.Fatal("a key is on chain before its release")
	}
	k, _, err := ks.SealKey(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.ReleaseKey(ctx, id, common.Hash(k)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := sponsor.ReleasedKey(ctx, id)
	if err != nil || !ok || got != common.Hash(k) {
		t.Fatalf("released key %s, %v, %v", got.Hex(), ok, err)
	}
	if job, _ := provider.Job(ctx, id); JobState(job.State) != V2Completed {
		t.Fatalf("job after the key release: %s", V2StateName(job.State))
	}
}

// TestWatcherFollowsV2: the watcher hands over JobMarketV2 logs beside the JobMarket's,
// marked and decoded with v2's ABI (the two contracts share event signatures).
func TestWatcherFollowsV2(t *testing.T) {
	dep := devchain.StartTest(t, 20*time.Millisecond)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	devchain.WriteDeployment(depFile, dep)
	dir := t.TempDir()
	w := NewWallet(filepath.Join(dir, "ks"), true)
	if _, err := w.ImportHex(dep.Accounts[2].PrivateKey, "pw"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw"), 0o600)
	cfg := Default()
	cfg.Deployment, cfg.Keystore, cfg.PasswordFile = depFile, w.Dir(), filepath.Join(dir, "pw")
	cfg.CursorFile, cfg.Confirmations, cfg.PollInterval = filepath.Join(dir, "c.json"), 1, 20*time.Millisecond
	got := make(chan any, 16)
	m, err := New(cfg, discard(), nil, func(_ context.Context, e Event) error {
		v, err := DecodeEvent(e)
		if err != nil {
			t.Errorf("decode %s (v2 %v): %v", e.Name, e.V2, err)
			return nil
		}
		if _, isV2 := v.(*bindings.JobMarketV2ProviderRegistered); e.V2 != isV2 && e.Name == "ProviderRegistered" {
			t.Errorf("%s from %s decoded as %T", e.Name, e.Log.Address.Hex(), v)
		}
		got <- v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	v2, err := m.V2()
	if err != nil {
		t.Fatal(err)
	}
	// The same event signature on both contracts: each arrives decoded with its own ABI.
	if _, err := m.RegisterProvider(ctx, "12D3KooWv1", "", common.Hash{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.RegisterProvider(ctx, "12D3KooWv2", "", common.Hash{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.RegisterValidator(ctx, "12D3KooWv2", big.NewInt(params.Ether)); err != nil {
		t.Fatal(err)
	}
	var v1Reg, v2Reg, v2Val bool
	for !(v1Reg && v2Reg && v2Val) {
		select {
		case v := <-got:
			switch e := v.(type) {
			case *bindings.JobMarketProviderRegistered:
				v1Reg = e.PeerId == "12D3KooWv1"
			case *bindings.JobMarketV2ProviderRegistered:
				v2Reg = e.PeerId == "12D3KooWv2"
			case *bindings.JobMarketV2ValidatorRegistered:
				v2Val = e.Stake.Cmp(big.NewInt(params.Ether)) == 0
			}
		case <-ctx.Done():
			t.Fatalf("events: v1 registration %v, v2 registration %v, v2 validator %v", v1Reg, v2Reg, v2Val)
		}
	}
	if peer, err := v2.ProviderPeer(ctx, v2.Account()); err != nil || peer != "12D3KooWv2" {
		t.Fatalf("provider peer on v2: %q, %v", peer, err)
	}
}

// TestPostV2: POST /v1/market/jobs with validator_count posts on JobMarketV2, drawing
// validators at acceptance; bad terms are refused before any transaction.
func TestPostV2(t *testing.T) {
	dep := devchain.StartTest(t, 20*time.Millisecond)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	devchain.WriteDeployment(depFile, dep)
	m := marketFor(t, dep, depFile, 1)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req := api.PostJobRequest{ManifestCID: "bafymanifest", ManifestHash: strings.Repeat("ab", 32), Threshold: 250000,
		ValidatorCount: 3, Quorum: 2, LowerIsBetter: true, RewardWei: "1000", ValidatorFeeWei: "10",
		AcceptWithinSeconds: 3600, RunWindowSeconds: 600, CommitWindowSeconds: 60, RevealWindowSeconds: 60}
	for name, bad := range map[string]func(r *api.PostJobRequest){
		"validators named": func(r *api.PostJobRequest) { r.Validators = []string{dep.Accounts[2].Address.Hex()} },
		"quorum above k":   func(r *api.PostJobRequest) { r.Quorum = 4 },
		"no commit window": func(r *api.PostJobRequest) { r.CommitWindowSeconds = 0 },
		"a token":          func(r *api.PostJobRequest) { r.Token = dep.Token.Hex() },
		"fee over 80 bits": func(r *api.PostJobRequest) { r.ValidatorFeeWei = "1" + strings.Repeat("0", 30) },
		"no manifest hash": func(r *api.PostJobRequest) { r.ManifestHash = "" },
	} {
		r := req
		bad(&r)
		if _, err := m.Post(ctx, r); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("%s: %v, want an invalid argument", name, err)
		}
	}
	res, err := m.Post(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := m.V2()
	id, _ := new(big.Int).SetString(res.JobID, 10)
	p, err := v2.Posted(ctx, id)
	if err != nil || res.Contract != "JobMarketV2" || p.Params.ValidatorCount != 3 || !p.Params.LowerIsBetter || p.Params.CommitWindow.Int64() != 60 {
		t.Fatalf("posted %+v (%+v), %v", p, res, err)
	}
}
