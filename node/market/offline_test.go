package market

import (
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
)

// TestWithdrawOffline: a sponsor's refund is withdrawn with a key of a keystore, without
// a node; a keystore of several keys needs the account named, and a wrong password
// withdraws nothing.
func TestWithdrawOffline(t *testing.T) {
	dep := startDevchain(t)
	ctx := t.Context()
	depFile := filepath.Join(t.TempDir(), "dep.json")
	if err := devchain.WriteDeployment(depFile, dep); err != nil {
		t.Fatal(err)
	}
	sponsor := marketFor(t, dep, depFile, 1)
	h, err := sponsor.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := sponsor.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: big.NewInt(5000), ValidatorFee: big.NewInt(7), Bond: new(big.Int), Threshold: 1, Quorum: 1,
		Validators: []common.Address{dep.Accounts[2].Address}, AcceptBy: big.NewInt(h.Unix() + 3600), RunWindow: 60, AttestWindow: 60,
		ManifestCID: "bafymanifest",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sponsor.CancelJob(ctx, id); err != nil {
		t.Fatal(err)
	}

	w := NewWallet(filepath.Join(t.TempDir(), "ks"), true)
	addr, err := w.ImportHex(dep.Accounts[1].PrivateKey, "pw")
	if err != nil {
		t.Fatal(err)
	}
	req := OfflineWithdrawal{RPCURL: dep.RPCURL, Contract: dep.JobMarket, Wallet: w, Password: "wrong", Confirmations: 1}
	if _, _, err := WithdrawOffline(ctx, req, discard()); err == nil {
		t.Fatal("withdrew with a wrong password")
	}
	req.Password = "pw"
	r, amount, err := WithdrawOffline(ctx, req, discard())
	if err != nil {
		t.Fatal(err)
	}
	if amount.Cmp(big.NewInt(5007)) != 0 || r.Status != 1 {
		t.Errorf("withdrew %s (status %d), want the whole escrow 5007", amount, r.Status)
	}
	if c, err := sponsor.Credit(ctx, common.Address{}, addr); err != nil || c.Sign() != 0 {
		t.Errorf("credit after the withdrawal: %v %v", c, err)
	}
	if _, err := w.ImportHex(dep.Accounts[3].PrivateKey, "pw"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := WithdrawOffline(ctx, req, discard()); err == nil || !strings.Contains(err.Error(), "--account") {
		t.Errorf("two keys, no account: %v", err)
	}
}
