package market

import (
	"context"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/node/api"
)

func startDevchain(t *testing.T) devchain.Deployment {
	return devchain.StartTest(t, 20*time.Millisecond)
}

// TestMarketService runs the service against a dev chain: events reach the handler, the
// status is served on the control API, and a withdrawal through the API pays the credit.
func TestMarketService(t *testing.T) {
	dep := startDevchain(t)
	dir := t.TempDir()
	w := NewWallet(filepath.Join(dir, "keystore"), true)
	addr, err := w.ImportHex(dep.Accounts[1].PrivateKey, "pw")
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("pw\n"), 0o600)

	cfg := Default()
	cfg.Deployment = filepath.Join(dir, "dep.json")
	if err := devchain.WriteDeployment(cfg.Deployment, dep); err != nil {
		t.Fatal(err)
	}
	cfg.Keystore, cfg.PasswordFile, cfg.CursorFile = w.Dir(), pwFile, filepath.Join(dir, "cursor.json")
	cfg.Confirmations, cfg.PollInterval = 2, 20*time.Millisecond
	var mu sync.Mutex
	var seen []string
	m, err := New(cfg, discard(), nil, func(_ context.Context, e Event) error {
		v, err := DecodeEvent(e)
		if err != nil {
			t.Errorf("decode %s: %v", e.Name, err)
		}
		if posted, ok := v.(*bindings.JobMarketJobPosted); ok && posted.ManifestCID != "bafymanifest" {
			t.Errorf("JobPosted manifest %q", posted.ManifestCID)
		}
		mu.Lock()
		seen = append(seen, e.Name)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	// Stop the service and the API before the test's folders are removed: they write
	// their cursor and socket there until they return.
	var running sync.WaitGroup
	defer func() { cancel(); running.Wait() }()
	running.Add(1)
	go func() { defer running.Done(); m.Run(ctx) }()

	// The node's own account posts and cancels a job, which leaves it a credit.
	key, _ := crypto.ToECDSA(common.FromHex(dep.Accounts[1].PrivateKey))
	tm := NewTxManager(m.cfg.txConfig(), m.client, key, discard(), nil)
	mk := bindings.NewJobMarket()
	h, err := m.client.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := bindings.JobMarketJobParams{
		Reward: big.NewInt(1000), ValidatorFee: big.NewInt(1), Bond: new(big.Int), Threshold: 1, Quorum: 1,
		Validators: []common.Address{dep.Accounts[2].Address}, AcceptBy: new(big.Int).SetUint64(h.Time + 3600),
		RunWindow: 60, AttestWindow: 60, ManifestCID: "bafymanifest",
	}
	if _, err := tm.Send(ctx, dep.JobMarket, big.NewInt(1001), mk.PackPostJob(p)); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Send(ctx, dep.JobMarket, nil, mk.PackCancelJob(big.NewInt(1))); err != nil {
		t.Fatal(err)
	}
	// The watcher and the service share the key's nonces only through the chain: the
	// service's manager resyncs on "nonce too low".
	res, err := m.WithdrawCredit(ctx, api.WithdrawRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Amount != "1001" {
		t.Errorf("withdrew %s, want 1001", res.Amount)
	}
	if c, _ := m.Credit(ctx, common.Address{}, addr); c.Sign() != 0 {
		t.Errorf("credit %s after withdraw", c)
	}
	for i := 0; ; i++ {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if i > 500 {
			t.Fatalf("events seen: %v", seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if want := []string{"JobPosted", "JobCancelled", "Withdrawn"}; len(seen) != 3 || seen[0] != want[0] || seen[1] != want[1] || seen[2] != want[2] {
		t.Errorf("events %v, want %v", seen, want)
	}
	mu.Unlock()
	if st := m.Status(); !st.Connected || st.Account != addr.Hex() || st.ChainID != 1337 || st.JobMarket != dep.JobMarket.Hex() {
		t.Errorf("status %+v", st)
	}
}

func TestConfigFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		errs int
	}{
		{"testdata/config-good.toml", 0},
		{"testdata/config-bad.toml", 5},
	} {
		t.Run(tc.file, func(t *testing.T) {
			cfg := Default()
			md, err := toml.DecodeFile(tc.file, &cfg)
			cfg = cfg.Resolved("/var/lib/gpunode")
			if err != nil {
				t.Fatal(err)
			}
			if u := md.Undecoded(); len(u) > 0 {
				t.Fatalf("unknown keys %v", u)
			}
			if errs := cfg.Validate(); len(errs) != tc.errs {
				t.Fatalf("%d problems %v, want %d", len(errs), errs, tc.errs)
			}
		})
	}
}

func TestWrongChain(t *testing.T) {
	dep := startDevchain(t)
	dep.ChainID = 1
	dir := t.TempDir()
	cfg := Default()
	cfg.Deployment = filepath.Join(dir, "dep.json")
	devchain.WriteDeployment(cfg.Deployment, dep)
	cfg.Keystore, cfg.CursorFile, cfg.PasswordEnv = filepath.Join(dir, "ks"), filepath.Join(dir, "c.json"), "GPUNODE_TEST_UNSET"
	m, err := New(cfg, discard(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := m.Run(ctx); !errors.Is(err, ErrWrongChain) {
		t.Fatalf("got %v, want ErrWrongChain", err)
	}
}

// FuzzDecodeEvent: logs come from whatever endpoint the node talks to.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(uint8(0), []byte{}, []byte{})
	f.Add(uint8(1), []byte{0, 0, 0, 1}, make([]byte, 64))
	names := []string{}
	for n := range bindings.NewJobMarket().GetABI().Events {
		names = append(names, n)
	}
	slices.Sort(names)
	a := bindings.NewJobMarket().GetABI()
	f.Fuzz(func(t *testing.T, which uint8, topic, data []byte) {
		name := names[int(which)%len(names)]
		l := types.Log{Topics: []common.Hash{a.Events[name].ID, common.BytesToHash(topic)}, Data: data}
		_, _ = DecodeEvent(Event{Name: name, Log: l})
	})
}

func TestNoChain(t *testing.T) {
	cfg := Default().Resolved(t.TempDir())
	if _, err := New(cfg, discard(), nil, nil); !errors.Is(err, ErrNoChain) {
		t.Fatalf("got %v, want ErrNoChain", err)
	}
}
