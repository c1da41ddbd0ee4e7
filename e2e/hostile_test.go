//go:build integration

package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/jobs"
)

// paddedImage builds an image of base plus a file of pad random bytes and returns its
// ID; it is removed when the test ends.
func paddedImage(t *testing.T, base string, pad int) string {
	t.Helper()
	dir := t.TempDir()
	tag := fmt.Sprintf("gpunode-e2e-hostile-base:%d", os.Getpid())
	if out, err := exec.Command("docker", "tag", base, tag).CombinedOutput(); err != nil {
		t.Fatalf("docker tag: %v\n%s", err, out)
	}
	b := make([]byte, pad)
	rand.Read(b)
	os.WriteFile(filepath.Join(dir, "pad"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+tag+"\nCOPY pad /pad\n"), 0o644)
	big := fmt.Sprintf("gpunode-e2e-hostile-big:%d", os.Getpid())
	iid := filepath.Join(t.TempDir(), "iid")
	if out, err := exec.Command("docker", "build", "-q", "--iidfile", iid, "-t", big, dir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", big, tag).Run() })
	id, err := os.ReadFile(iid)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(id))
}

func imageSize(t *testing.T, id string) int64 {
	t.Helper()
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Size}}", id).Output()
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// providerTxs returns every transaction the provider sent from block from on, and the
// method and job id each calls on the JobMarket.
func (l *loop) providerTxs(t *testing.T, from uint64) []providerTx {
	t.Helper()
	ctx := t.Context()
	a, err := abi.JSON(strings.NewReader(bindings.JobMarketMetaData.ABI))
	if err != nil {
		t.Fatal(err)
	}
	chainID, err := l.eth.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	signer := types.LatestSignerForChainID(chainID)
	head, err := l.eth.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []providerTx
	for n := from; n <= head; n++ {
		b, err := l.eth.BlockByNumber(ctx, new(big.Int).SetUint64(n))
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range b.Transactions() {
			if sender, err := types.Sender(signer, tx); err != nil || sender != l.provider.account {
				continue
			}
			ptx := providerTx{hash: tx.Hash().Hex(), method: "transfer"}
			if len(tx.Data()) >= 4 {
				if m, err := a.MethodById(tx.Data()[:4]); err == nil {
					ptx.method = m.Name
					if args, err := m.Inputs.Unpack(tx.Data()[4:]); err == nil && len(args) > 0 {
						if id, ok := args[0].(*big.Int); ok {
							ptx.jobID = id.String()
						}
					}
				}
			}
			out = append(out, ptx)
		}
	}
	return out
}

type providerTx struct{ hash, method, jobID string }

// TestHostileSponsor plays a sponsor that posts jobs built to make the provider accept
// (and lock its bond) and then fail, which gives the bond to the sponsor, or pay in a
// token the provider never priced. The provider
// declines each one before any transaction, says why in `gpunode job status` and its
// metrics, and loses nothing: its only transactions are for the good job posted among
// them, which is paid.
func TestHostileSponsor(t *testing.T) {
	l := startLoop(t)
	testenv.Attack(t, "jobs", "hostile jobs among a good one: the provider's balance and bond")
	ctx := t.Context()
	bigImage := pushImage(t, l.registry, paddedImage(t, exampleImage(t, "trainer"), 8<<20), "big")
	maxImage := imageSize(t, exampleImage(t, "trainer")) + 4<<20
	const goodBond, maxBond, greedyBond = "100000000000000000", "200000000000000000", "500000000000000000"

	// The operator opts in to risking a bond of at most 0.2 ETH, with the network's two
	// validators only, and images up to the trainer's size plus 4 MiB.
	policy := filepath.Join(l.provider.dir, "policy.toml")
	os.WriteFile(policy, fmt.Appendf(nil, "version = 1\nmax_bond_wei = %q\nmax_image_bytes = %d\n[validators]\nallow = [%q, %q]\n[datasets]\ndigits = [%q]\n",
		maxBond, maxImage, l.v1.account.Hex(), l.v2.account.Hex(), l.sponsor.account.Hex()), 0o644)
	if out, err := l.provider.cli(t, "policy", "reload"); err != nil {
		t.Fatalf("policy reload: %v\n%s", err, out)
	}

	// Manifests name their data by CID, as `job post` would have uploaded it.
	data := filepath.Join(t.TempDir(), "digits.csv.gz")
	os.WriteFile(data, l.dataset, 0o644)
	var dataCID string
	l.waitFor(t, "the sponsor's IPFS", time.Minute, func() (bool, string) {
		added, err := l.sponsor.api().IPFSUpload(ctx, data, "")
		dataCID = added.CID
		return err == nil, fmt.Sprint(err)
	})
	manifest := func(edit func(m map[string]any)) []byte {
		return l.manifest(t, func(m map[string]any) {
			m["max_duration"] = "2m"
			m["inputs"] = []any{map[string]any{"cid": dataCID, "path": "/data/digits.csv.gz"}}
			m["evaluation"].(map[string]any)["inputs"] = []any{map[string]any{"cid": dataCID, "path": "/heldout/digits.csv.gz"}}
			if edit != nil {
				edit(m)
			}
		})
	}

	head, err := l.eth.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	balanceBefore := l.balance(t, l.provider.account)
	creditBefore := l.credit(t, l.provider.account)

	missing := sha256.Sum256([]byte("no such image"))
	cases := []struct {
		name   string
		edit   func(m map[string]any)
		terms  func(r *api.PostJobRequest)
		reason string // in the job's reason
		metric string // gpunode_policy_rejections_total's reason
	}{
		{"short run window", nil, func(r *api.PostJobRequest) { r.RunWindowSeconds = 1 }, "min_run_window_factor: run window 1s", "run_window"},
		{"missing digest", func(m map[string]any) {
			m["image"] = l.registry + "/gpunode-example/trainer@sha256:" + hex.EncodeToString(missing[:])
		}, nil, "image not found", "image"},
		{"memory_mib 1", func(m map[string]any) {
			m["resources"] = map[string]any{"gpus": 0, "cpus": 1, "memory_mib": 1}
		}, nil, "the engine refuses the job's container", "container"},
		{"no command", func(m map[string]any) { delete(m, "command") }, nil, "the manifest has no command", "manifest"},
		{"threshold mismatch", nil, func(r *api.PostJobRequest) { r.Threshold = 1<<32 - 1 }, "threshold mismatch: the chain's threshold is 4294967295", "terms"},
		// v1 and v2 among the validators keep the other rigs of the network from taking
		// the job: the test's daemons end with nothing left running.
		{"validators not allowed", nil, func(r *api.PostJobRequest) {
			r.Validators = []string{l.v1.account.Hex(), l.v2.account.Hex(), l.dep.Accounts[0].Address.Hex()}
		}, "validators.allow: validators [" + strings.ToLower(l.dep.Accounts[0].Address.Hex()) + "] are not on the allow list", "validators"},
		{"bond above max_bond_wei", nil, func(r *api.PostJobRequest) { r.BondWei = greedyBond }, "max_bond_wei: the job asks a bond of " + greedyBond + ", cap " + maxBond, "bond"},
		{"image above max_image_bytes", func(m map[string]any) { m["image"] = bigImage }, nil, "image too large", "image_size"},
		{"reward in an unlisted token", nil, func(r *api.PostJobRequest) { r.Token = l.dep.Token.Hex() }, "which is not listed under [tokens]", "token"},
	}
	ids := map[string]string{}
	var goodID string
	for i, c := range cases {
		ids[c.name] = l.postWith(t, manifest(c.edit), "", c.terms)
		if i == len(cases)/2 {
			goodID = l.postWith(t, manifest(nil), "", func(r *api.PostJobRequest) { r.BondWei = goodBond })
		}
	}

	for _, c := range cases {
		id := ids[c.name]
		t.Run(c.name, func(t *testing.T) {
			testenv.Attack(t, "jobs", "job built to fail after acceptance: "+c.name)
			d := l.wait(t, id, 4*time.Minute, jobs.Declined, jobs.Accepting, jobs.Accepted, jobs.Preparing, jobs.Running, jobs.Failed)
			if d.State != jobs.Declined || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("job %s: %s, reason %q; want declined saying %q", id, d.State, d.Reason, c.reason)
			}
			out, err := l.provider.cli(t, "job", "status", id)
			if err != nil || !strings.Contains(out, "declined") || !strings.Contains(out, c.reason) {
				t.Errorf("job status %s: %v\n%s", id, err, out)
			}
			if j := l.chainJob(t, id); j.State != 1 || j.Provider != (common.Address{}) {
				t.Errorf("job %s on chain: state %d, provider %s; want open and untaken", id, j.State, j.Provider.Hex())
			}
			series := `gpunode_policy_rejections_total{reason="` + c.metric + `"}`
			l.waitFor(t, series+" ≥ 1", 20*time.Second, func() (bool, string) {
				n := metricValue(l.provider.d.metrics, series)
				return n >= 1, fmt.Sprint(n)
			})
		})
	}

	// The good job is taken, run and paid, with its bond back.
	l.wait(t, goodID, 6*time.Minute, jobs.Paid)
	if j := l.chainJob(t, goodID); j.State != 4 || j.Bond.String() != goodBond {
		t.Errorf("good job on chain: state %d, bond %s", j.State, j.Bond)
	}

	// No transaction of the provider touched a hostile job: only the good job's accept
	// and submit. Its balance moved by exactly their gas and the good job's bond, and
	// its credit is the good job's reward and bond.
	gas := new(big.Int)
	for _, tx := range l.providerTxs(t, head) {
		switch {
		case tx.jobID == goodID && (tx.method == "acceptJob" || tx.method == "submitResult"):
		default:
			t.Errorf("the provider sent %s (job %q) in tx %s", tx.method, tx.jobID, tx.hash)
		}
		gas.Add(gas, l.gasCost(t, tx.hash))
	}
	spent := new(big.Int).Sub(balanceBefore, l.balance(t, l.provider.account))
	if want := new(big.Int).Add(gas, wei(goodBond)); spent.Cmp(want) != 0 {
		t.Errorf("the provider's balance fell by %s wei, want gas %s + the good job's bond %s", spent, gas, goodBond)
	}
	gained := new(big.Int).Sub(l.credit(t, l.provider.account), creditBefore)
	if want := new(big.Int).Add(wei(reward), wei(goodBond)); gained.Cmp(want) != 0 {
		t.Errorf("the provider's credit grew by %s wei, want reward + bond = %s", gained, want)
	}
	// The rejections are listed for the operator too.
	if out, err := l.provider.cli(t, "policy", "rejections"); err != nil || !strings.Contains(out, "max_bond_wei") || !strings.Contains(out, "image_size") {
		t.Errorf("policy rejections: %v\n%s", err, out)
	}
}

// metricValue reads one sample of the node's /metrics; 0 if absent.
func metricValue(addr, series string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return f
			}
		}
	}
	return 0
}
