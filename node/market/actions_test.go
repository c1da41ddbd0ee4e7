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

// TestMarketActions drives a paid job through the service's methods: a provider node
// registers, accepts, submits; a validator node attests; the provider withdraws.
func TestMarketActions(t *testing.T) {
	dep := startDevchain(t)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	devchain.WriteDeployment(depFile, dep)
	provider, validator := marketFor(t, dep, depFile, 1), marketFor(t, dep, depFile, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The sponsor (dev account 3) posts with its own manager.
	sponsorKey, _ := crypto.ToECDSA(common.FromHex(dep.Accounts[3].PrivateKey))
	sponsor := NewTxManager(provider.cfg.txConfig(), provider.client, sponsorKey, discard(), nil)
	h, err := provider.client.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	vals := []common.Address{dep.Accounts[2].Address}
	p := bindings.JobMarketJobParams{
		Reward: big.NewInt(1000), ValidatorFee: big.NewInt(10), Bond: big.NewInt(50), Threshold: 900, Quorum: 1,
		Validators: vals, AcceptBy: new(big.Int).SetUint64(h.Time + 3600), RunWindow: 600, AttestWindow: 600, ManifestCID: "bafymanifest",
	}
	if _, err := sponsor.Send(ctx, dep.JobMarket, big.NewInt(1010), provider.abi.PackPostJob(p)); err != nil {
		t.Fatal(err)
	}
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
