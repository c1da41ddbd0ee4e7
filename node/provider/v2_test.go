package provider

import (
	"context"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/job/seal"
	"github.com/gpunode/gpunode/node/duties"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/sealkey"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/validator"
	"github.com/gpunode/gpunode/runtime"
)

// v2As returns JobMarketV2 acting as dev account i.
func v2As(t *testing.T, dep devchain.Deployment, depFile string, i int) *market.V2 {
	t.Helper()
	dir := t.TempDir()
	w := market.NewWallet(filepath.Join(dir, "ks"), true)
	if _, err := w.ImportHex(dep.Accounts[i].PrivateKey, "pw"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw"), 0o600)
	cfg := market.Default()
	cfg.Deployment, cfg.Keystore, cfg.PasswordFile = depFile, w.Dir(), filepath.Join(dir, "pw")
	cfg.CursorFile, cfg.Confirmations, cfg.PollInterval = filepath.Join(dir, "c.json"), 1, 20*time.Millisecond
	m, err := market.New(cfg, quiet(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.V2()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// sealedContent serves the provider's published directory by its CID.
type sealedContent map[string]string

func (c sealedContent) Fetch(_ context.Context, cid string) (string, error) {
	if d, ok := c[cid]; ok {
		return d, nil
	}
	return "", errors.New("not found")
}

// evalRuntime stands in for the evaluation container: it scores 0.95 when the mounted
// checkpoint is the provider's, 0 otherwise.
type evalRuntime struct {
	mu  sync.Mutex
	res map[string]runtime.Result
}

func (r *evalRuntime) Start(_ context.Context, s runtime.Spec) (runtime.Handle, error) {
	acc := "0"
	if b, err := os.ReadFile(filepath.Join(s.Inputs[0].Source, "model.bin")); err == nil && string(b) == "weights" {
		acc = "0.95"
	}
	os.WriteFile(filepath.Join(s.OutputDir, validator.ResultFile), []byte(`{"version":1,"metrics":{"accuracy":`+acc+`}}`), 0o644)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res[s.JobID] = runtime.Result{JobID: s.JobID}
	return runtime.Handle{JobID: s.JobID}, nil
}

func (r *evalRuntime) Wait(_ context.Context, id string) (runtime.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res[id], nil
}

// TestV2SealedJobEndToEnd runs a sealed job through JobMarketV2 with the node's pieces:
// the provider's ChainV2 and key store, the key server on a libp2p host, and two drawn
// validators (validator.Validator with sealkey.Client and duties.CommitReveal) that
// fetch the key, open the checkpoint, commit and reveal. The third drawn validator is
// offline: it is slashed, and the job still decides and pays on the key's release. The
// sponsor cannot get the key before.
func TestV2SealedJobEndToEnd(t *testing.T) {
	// The dev chain's clock runs a second per block (20 blocks a second here): the
	// commit window of 120 chain seconds lasts about 6 real ones.
	dep := devchain.StartTest(t, 50*time.Millisecond)
	depFile := filepath.Join(t.TempDir(), "dep.json")
	devchain.WriteDeployment(depFile, dep)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	sponsor, prov := v2As(t, dep, depFile, 0), v2As(t, dep, depFile, 1)
	eth := big.NewInt(params.Ether)
	provHost := newHost(t)
	valHosts := map[common.Address]host.Host{}
	valKeys := map[common.Address]int{}
	for i := 2; i <= 4; i++ {
		v := v2As(t, dep, depFile, i)
		h := newHost(t)
		if err := h.Connect(ctx, peer.AddrInfo{ID: provHost.ID(), Addrs: provHost.Addrs()}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.RegisterValidator(ctx, h.ID().String(), eth); err != nil {
			t.Fatal(err)
		}
		valHosts[v.Account()], valKeys[v.Account()] = h, i
	}
	if _, err := prov.RegisterProvider(ctx, provHost.ID().String(), "", common.Hash{}); err != nil {
		t.Fatal(err)
	}
	post := func(k uint8) *big.Int {
		now, _ := prov.Now(ctx)
		reward, fee, bond := eth, big.NewInt(params.Ether/100), big.NewInt(params.Ether/10)
		id, _, err := sponsor.PostJob(ctx, bindings.JobMarketV2JobParams{
			Reward: reward, ValidatorFee: fee, Bond: bond, Threshold: 900000, ValidatorCount: k, Quorum: k - 1,
			AcceptBy: big.NewInt(now.Add(time.Hour).Unix()), RunWindow: 3600, CommitWindow: big.NewInt(120), RevealWindow: big.NewInt(3600),
			ManifestCID: "bafymanifest", ManifestHash: common.HexToHash("0x01"),
		}, new(big.Int).Add(reward, new(big.Int).Mul(fee, big.NewInt(int64(k)))))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ks, err := sealkey.OpenKeyStore(t.TempDir(), prov.ChainID(), prov.Contract(), prov.Account())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sealkey.NewServer(provHost, sealkey.Default(), ks, Draw{M: prov}, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	chain := NewChainV2(prov, ks, nil, quiet())

	id := post(3)
	if _, err := chain.Accept(ctx, id.String()); err != nil {
		t.Fatal(err)
	}
	if tx, err := chain.Accept(ctx, id.String()); err != nil || tx != "already accepted" {
		t.Fatalf("accept again: %q, %v", tx, err)
	}
	ckpt, pub := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(ckpt, "model.bin"), []byte("weights"), 0o644)
	resultHash, keyHash, err := ks.Seal(ctx, id.String(), ckpt, filepath.Join(pub, seal.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chain.Submit(ctx, id.String(), "bafysealed", resultHash); err != nil {
		t.Fatal(err)
	}
	acc, err := prov.Accepted(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	binding := seal.Binding{ChainID: prov.ChainID(), Contract: prov.Contract(), JobID: id, Provider: prov.Account()}

	testenv.Attack(t, "sealkey", "sponsor asks for the key before payment")
	sponsorKey, _ := crypto.ToECDSA(common.FromHex(dep.Accounts[0].PrivateKey))
	sh := newHost(t)
	sh.Connect(ctx, peer.AddrInfo{ID: provHost.ID(), Addrs: provHost.Addrs()})
	if _, err := (sealkey.Client{Host: sh, Account: sponsorKey}).Key(ctx, provHost.ID().String(), binding, common.HexToHash(keyHash)); !errors.Is(err, sealkey.ErrRefused) {
		t.Fatalf("the sponsor asked for the key before payment: %v, want a refusal", err)
	}

	offline := acc.Validators[2]
	var wg sync.WaitGroup
	verdicts := make([]validator.Verdict, 2)
	errs := make([]error, 2)
	for i, a := range acc.Validators[:2] {
		v := v2As(t, dep, depFile, valKeys[a])
		st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		val := validator.New(validator.Default(), st, nil, sealedContent{"bafysealed": pub}, &evalRuntime{res: map[string]runtime.Result{}}, t.TempDir(), quiet())
		cr := duties.NewCommitReveal(v)
		cr.Poll = 200 * time.Millisecond
		key, _ := crypto.ToECDSA(common.FromHex(dep.Accounts[valKeys[a]].PrivateKey))
		val.SetSealed(sealkey.Client{Host: valHosts[a], Account: key}, cr, a)
		task := validator.Task{JobID: id.String(), CheckpointCID: "bafysealed", ResultHash: resultHash,
			EvalImage: "eval@sha256:" + strings.Repeat("a", 64), EvalCommand: []string{"/eval"}, Metric: "accuracy", Threshold: 900000,
			Sealed: &validator.Sealed{ChainID: prov.ChainID().String(), Contract: prov.Contract().Hex(), Provider: prov.Account().Hex(),
				ProviderPeer: provHost.ID().String(), KeyHash: keyHash, KeyBy: time.Now().Add(time.Minute)}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			verdicts[i], errs[i] = val.Validate(ctx, task)
		}()
	}
	wg.Wait()
	for i := range verdicts {
		if errs[i] != nil || !verdicts[i].Pass || verdicts[i].Score != 950000 {
			t.Fatalf("validator %d: %+v, %v", i, verdicts[i], errs[i])
		}
	}
	if o, err := chain.Outcome(ctx, id.String()); err != nil || o != jobs.OutcomeCompleted {
		t.Fatalf("outcome %s, %v; want completed after the key's release", o, err)
	}
	if k, ok, _ := sponsor.ReleasedKey(ctx, id); !ok || k != common.Hash(mustKey(t, ks, id)) {
		t.Fatal("the sponsor finds no key on chain after payment")
	}
	votes, err := prov.Votes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, vt := range votes {
		if vt.Validator == offline && (vt.Slashed == nil || vt.Slashed.Sign() <= 0) {
			t.Fatalf("the offline validator was not slashed: %+v", vt)
		}
	}

	// Early give-back: a job whose trainer fails at once is handed back with its log's
	// hash, and the bond comes back.
	// The offline validator, slashed below the minimum stake, left the pool: two remain.
	id2 := post(2)
	if _, err := chain.Accept(ctx, id2.String()); err != nil {
		t.Fatal(err)
	}
	msg, err := chain.Abandon(ctx, id2.String(), "training failed: exit 1")
	if err != nil || !strings.Contains(msg, "given back") {
		t.Fatalf("give back: %q, %v", msg, err)
	}
	if v, _ := prov.Job(ctx, id2); market.JobState(v.State) != market.V2Returned {
		t.Fatalf("job after give-back: %s", market.V2StateName(v.State))
	}
	if o, _ := chain.Outcome(ctx, id2.String()); o != jobs.OutcomeExpired {
		t.Fatalf("outcome of a returned job: %s", o)
	}
}

func mustKey(t *testing.T, ks *sealkey.KeyStore, id *big.Int) seal.Key {
	k, _, err := ks.SealKey(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
