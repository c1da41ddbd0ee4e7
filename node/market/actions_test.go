package market

import (
	"context"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/bindings/mocks"
	"github.com/gpunode/gpunode/contracts/devchain"
)

// marketFor returns a Market acting as dev account i.
func marketFor(t *testing.T, dep devchain.Deployment, depFile string, i int) *Market {
	t.Helper()
	dir := t.TempDir()
	w := NewWallet(filepath.Join(dir, "ks"), true)
	if _, err := w.ImportHex(dep.Accounts[i].PrivateKey, "pw"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw"), 0o600)
	cfg := Default()
	cfg.Deployment, cfg.Keystore, cfg.PasswordFile = depFile, w.Dir(), filepath.Join(dir, "pw")
	cfg.CursorFile, cfg.Confirmations, cfg.PollInterval = filepath.Join(dir, "c.json"), 1, 20*time.Millisecond
	m, err := New(cfg, discard(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// postAs posts a job from dev account i through via's client: reward 1000 wei, 10 wei
// per validator, every validator needed, threshold 900.
func postAs(ctx context.Context, t *testing.T, via *Market, dep devchain.Deployment, i int, vals []common.Address, bond *big.Int) {
	t.Helper()
	key, _ := crypto.ToECDSA(common.FromHex(dep.Accounts[i].PrivateKey))
	sponsor := NewTxManager(via.cfg.txConfig(), via.client, key, discard(), nil)
	h, err := via.client.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := bindings.JobMarketJobParams{
		Reward: big.NewInt(1000), ValidatorFee: big.NewInt(10), Bond: bond, Threshold: 900, Quorum: uint8(len(vals)),
		Validators: vals, AcceptBy: new(big.Int).SetUint64(h.Time + 3600), RunWindow: 600, AttestWindow: 600, ManifestCID: "bafymanifest",
	}
	value := big.NewInt(1000 + 10*int64(len(vals)))
	if _, err := sponsor.Send(ctx, dep.JobMarket, value, via.abi.PackPostJob(p)); err != nil {
		t.Fatal(err)
	}
}

// TestMarketActions drives a paid job through the service's methods: a provider node
// registers, accepts, submits; a validator node attests; the provider withdraws.
func TestMarketActions(t *testing.T) {
	dep := startDevchain(t)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	devchain.WriteDeployment(depFile, dep)
	provider, validator := marketFor(t, dep, depFile, 1), marketFor(t, dep, depFile, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// The sponsor (dev account 3) posts.
	vals := []common.Address{dep.Accounts[2].Address}
	postAs(ctx, t, provider, dep, 3, vals, big.NewInt(50))
	id := big.NewInt(1)
	if _, err := provider.AcceptJob(ctx, id, vals, big.NewInt(50)); !contracts.IsRevert(err, "NotRegistered") {
		t.Fatalf("accept before registering: %v", err)
	}
	if _, err := provider.RegisterProvider(ctx, "12D3KooWProvider", "bafyreport", common.Hash{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := provider.AcceptJob(ctx, id, vals, big.NewInt(50)); err != nil {
		t.Fatal(err)
	}
	result := crypto.Keccak256Hash([]byte("ckpt"))
	if _, err := provider.SubmitResult(ctx, id, "bafyckpt", result); err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Attest(ctx, id, vals, result, 950); !contracts.IsRevert(err, "NotValidator") {
		t.Fatalf("provider attesting: %v", err)
	}
	if _, err := validator.Attest(ctx, id, vals, result, 950); err != nil {
		t.Fatal(err)
	}
	_, amount, err := provider.Withdraw(ctx, common.Address{})
	if err != nil {
		t.Fatal(err)
	}
	if amount.Cmp(big.NewInt(1050)) != 0 {
		t.Fatalf("provider withdrew %s, want reward + bond = 1050", amount)
	}
	if _, err := provider.Expire(ctx, id); !contracts.IsRevert(err, "BadState") {
		t.Fatalf("expire of a completed job: %v", err)
	}
}

// TestConcurrentAttestations: two validators attest in the same block. Each estimates its
// gas as the first attestation, but the one mined second completes the job, which costs
// more (it credits the provider and the sponsor); both must land.
func TestConcurrentAttestations(t *testing.T) {
	dep := devchain.StartTest(t, 2*time.Second)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	devchain.WriteDeployment(depFile, dep)
	provider := marketFor(t, dep, depFile, 1)
	validators := []*Market{marketFor(t, dep, depFile, 2), marketFor(t, dep, depFile, 3)}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	vals := []common.Address{dep.Accounts[2].Address, dep.Accounts[3].Address}
	postAs(ctx, t, provider, dep, 4, vals, new(big.Int))
	id, result := big.NewInt(1), crypto.Keccak256Hash([]byte("ckpt"))
	if _, err := provider.RegisterProvider(ctx, "12D3KooWProvider", "", common.Hash{}); err != nil {
		t.Fatal(err)
	}
	if _, err := provider.AcceptJob(ctx, id, vals, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := provider.SubmitResult(ctx, id, "bafyckpt", result); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	blocks := make(chan uint64, 2)
	for _, v := range validators {
		go func() {
			r, err := v.Attest(ctx, id, vals, result, 950)
			if err == nil {
				blocks <- r.BlockNumber.Uint64()
				t.Logf("attestation used %d gas", r.GasUsed)
			}
			errs <- err
		}()
	}
	for range validators {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(blocks)
	var mined []uint64
	for b := range blocks {
		mined = append(mined, b)
	}
	if len(mined) == 2 && mined[0] != mined[1] {
		t.Logf("attestations mined in blocks %v: not the race this test is about", mined)
	}
	if j, err := provider.Job(ctx, id); err != nil || JobState(j.State) != StateCompleted {
		t.Errorf("job %v, %v: want completed", j.State, err)
	}
}

// TestTokenBond: a job paid in an ERC-20 token asks the provider for a bond in it; the
// node approves the JobMarket for the bond and accepts, and skips the approval when an
// earlier one still covers the bond (a node restarted between the two sends).
func TestTokenBond(t *testing.T) {
	dep := startDevchain(t)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	devchain.WriteDeployment(depFile, dep)
	provider := marketFor(t, dep, depFile, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := provider.RegisterProvider(ctx, "12D3KooWProvider", "", common.Hash{}); err != nil {
		t.Fatal(err)
	}
	tok := mocks.NewMockToken()
	// The sponsor's node posts in the token: it approves the escrow, then posts.
	sponsor := marketFor(t, dep, depFile, 4)
	vals := []common.Address{dep.Accounts[2].Address}
	bond := big.NewInt(50)
	post := func() *big.Int {
		h, err := provider.client.HeaderByNumber(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := sponsor.PostJob(ctx, bindings.JobMarketJobParams{
			Token: dep.Token, Reward: big.NewInt(1000), ValidatorFee: big.NewInt(10), Bond: bond, Threshold: 900, Quorum: 1,
			Validators: vals, AcceptBy: new(big.Int).SetUint64(h.Time + 3600), RunWindow: 600, AttestWindow: 600, ManifestCID: "bafymanifest",
		})
		if err != nil {
			t.Fatal(err)
		}
		if j, err := sponsor.Job(ctx, id); err != nil || j.Token != dep.Token || j.Reward.Int64() != 1000 {
			t.Fatalf("token job: %+v %v", j, err)
		}
		return id
	}
	nonce := func() uint64 {
		n, err := provider.client.PendingNonceAt(ctx, provider.Account())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range []struct {
		name       string
		preApprove bool
		sends      uint64
	}{{"no allowance: approve, then accept", false, 2}, {"allowance left: accept only", true, 1}} {
		id := post()
		if c.preApprove {
			if _, err := provider.tx.Send(ctx, dep.Token, nil, tok.PackApprove(dep.JobMarket, bond)); err != nil {
				t.Fatal(err)
			}
		}
		before := nonce()
		if _, err := provider.AcceptJobWithTokenBond(ctx, id, vals, dep.Token, bond); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if sent := nonce() - before; sent != c.sends {
			t.Errorf("%s: %d transactions, want %d", c.name, sent, c.sends)
		}
		if j, err := provider.Job(ctx, id); err != nil || JobState(j.State) != StateAccepted || j.Provider != provider.Account() {
			t.Errorf("%s: job %+v %v", c.name, j, err)
		}
	}
}
