package market

import (
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/contracts/devchain"
)

// gaugeValue returns the value of the unlabelled gauge name in reg, and whether it is there.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestWalletBalanceMetric: the node exports its account's balance (what pays for gas) for
// the "wallet low" alert; a watch-only node, which sends nothing, exports none.
func TestWalletBalanceMetric(t *testing.T) {
	dep := startDevchain(t)
	dir := t.TempDir()
	w := NewWallet(filepath.Join(dir, "keystore"), true)
	addr, err := w.ImportHex(dep.Accounts[3].PrivateKey, "pw")
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Deployment = filepath.Join(dir, "dep.json")
	if err := devchain.WriteDeployment(cfg.Deployment, dep); err != nil {
		t.Fatal(err)
	}
	cfg.Keystore, cfg.PasswordFile, cfg.CursorFile = w.Dir(), pwFile, filepath.Join(dir, "cursor.json")

	reg := prometheus.NewRegistry()
	m, err := New(cfg, discard(), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.client.Close()
	want, err := m.client.BalanceAt(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if want.Sign() == 0 {
		t.Fatal("dev account has no balance: the check below could not fail")
	}
	got, ok := gaugeValue(t, reg, "gpunode_wallet_balance_wei")
	if !ok {
		t.Fatal("gpunode_wallet_balance_wei not exported")
	}
	if wantF, _ := new(big.Float).SetInt(want).Float64(); got != wantF {
		t.Errorf("gpunode_wallet_balance_wei = %g, want %g", got, wantF)
	}

	// Watch-only: no account, no series.
	cfg.PasswordFile, cfg.PasswordEnv = "", "GPUNODE_TEST_UNSET"
	cfg.CursorFile = filepath.Join(dir, "cursor2.json")
	reg2 := prometheus.NewRegistry()
	m2, err := New(cfg, discard(), reg2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.client.Close()
	if v, ok := gaugeValue(t, reg2, "gpunode_wallet_balance_wei"); ok {
		t.Errorf("watch-only node exports a wallet balance %g", v)
	}
}
