//go:build integration

package main

import (
	"io"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node/market"
)

func gpunode(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gpunode %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestWalletCommands runs `gpunode wallet` as a process: its keys open in geth's
// keystore, geth's keys import, and balance and withdraw work against a dev chain.
func TestWalletCommands(t *testing.T) {
	dir := t.TempDir()
	ks := filepath.Join(dir, "keystore")
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("node-pass\n"), 0o600)
	flags := []string{"--keystore", ks, "--password-file", pw, "--light-kdf"}

	addr := gpunode(t, append([]string{"wallet", "new"}, flags...)...)
	files, _ := filepath.Glob(filepath.Join(ks, "UTC--*"))
	if len(files) != 1 {
		t.Fatalf("key files %v", files)
	}
	b, _ := os.ReadFile(files[0])
	k, err := keystore.DecryptKey(b, "node-pass")
	if err != nil {
		t.Fatalf("geth cannot decrypt gpunode's key: %v", err)
	}
	if k.Address.Hex() != addr {
		t.Fatalf("geth decrypted %s, gpunode printed %s", k.Address.Hex(), addr)
	}

	gks := keystore.NewKeyStore(filepath.Join(dir, "geth"), keystore.LightScryptN, keystore.LightScryptP)
	acc, err := gks.NewAccount("geth-pass")
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "geth-pw")
	os.WriteFile(src, []byte("geth-pass\n"), 0o600)
	got := gpunode(t, append([]string{"wallet", "import", acc.URL.Path, "--source-password-file", src}, flags...)...)
	if got != acc.Address.Hex() {
		t.Fatalf("imported %s, want %s", got, acc.Address.Hex())
	}
	list := gpunode(t, "wallet", "list", "--keystore", ks)
	if !strings.Contains(list, addr) || !strings.Contains(list, acc.Address.Hex()) {
		t.Fatalf("list:\n%s", list)
	}

	// balance and withdraw against a dev chain, for a dev account that has a credit.
	dep := startDevchain(t)
	depFile := filepath.Join(dir, "devchain.json")
	devchain.WriteDeployment(depFile, dep)
	hexFile := filepath.Join(dir, "hexkey")
	os.WriteFile(hexFile, []byte(dep.Accounts[1].PrivateKey), 0o600)
	dev := gpunode(t, append([]string{"wallet", "import", "--hex", hexFile}, flags...)...)
	leaveCredit(t, dep, 1)
	bal := gpunode(t, "wallet", "balance", dev, "--deployment", depFile)
	if !strings.Contains(bal, "credit 1.001000 ETH") {
		t.Fatalf("balance does not show the 1.001 ETH credit:\n%s", bal)
	}
	out := gpunode(t, append([]string{"wallet", "withdraw", "--deployment", depFile, "--account", dev}, flags...)...)
	if !strings.Contains(out, "withdrew 1001000000000000000 wei") {
		t.Fatalf("withdraw: %s", out)
	}
	if bal := gpunode(t, "wallet", "balance", dev, "--deployment", depFile); !strings.Contains(bal, "credit 0.000000 ETH") {
		t.Fatalf("credit left after withdraw:\n%s", bal)
	}
}

func startDevchain(t *testing.T) devchain.Deployment {
	return devchain.StartTest(t, 50*time.Millisecond)
}

// leaveCredit has dev account i post and cancel a job worth 1.001 ETH.
func leaveCredit(t *testing.T, dep devchain.Deployment, i int) {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := market.Dial(market.ClientConfig{URL: dep.RPCURL}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key, _ := crypto.ToECDSA(common.FromHex(dep.Accounts[i].PrivateKey))
	tc := market.DefaultTxConfig()
	tc.ChainID, tc.Confirmations, tc.PollInterval = dep.ChainID, 1, 20*time.Millisecond
	tm := market.NewTxManager(tc, c, key, log, nil)
	h, err := c.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := bindings.NewJobMarket()
	milli := new(big.Int).Div(big.NewInt(1e18), big.NewInt(1000))
	p := bindings.JobMarketJobParams{
		Reward: new(big.Int).Mul(milli, big.NewInt(1000)), ValidatorFee: milli, Bond: new(big.Int), Threshold: 1, Quorum: 1,
		Validators: []common.Address{dep.Accounts[2].Address}, AcceptBy: new(big.Int).SetUint64(h.Time + 3600),
		RunWindow: 60, AttestWindow: 60, ManifestCID: "bafymanifest",
	}
	r, err := tm.Send(ctx, dep.JobMarket, new(big.Int).Mul(milli, big.NewInt(1001)), m.PackPostJob(p))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := m.UnpackJobPostedEvent(r.Logs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Send(ctx, dep.JobMarket, nil, m.PackCancelJob(ev.JobId)); err != nil {
		t.Fatal(err)
	}
}
