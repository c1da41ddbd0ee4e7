//go:build integration

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/examples/digits"
	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/runtime/docker"
)

// The job loop with real processes: a dev chain, a researcher's node, one provider, two
// validators, the CLI, dockerd, a local registry and each node's embedded IPFS.

const (
	reward = "1000000000000000000" // 1 ETH
	fee    = "10000000000000000"   // 0.01 ETH per validator
)

// member is one daemon of the loop and the dev account it acts for.
type member struct {
	name    string
	dir     string
	cfg     string
	account common.Address
	d       *daemon
}

func (m *member) start(t *testing.T) { m.d = startDaemonIn(t, m.dir, "--config", m.cfg) }

// kill ends the daemon with SIGKILL: no shutdown code runs. Its log stays in its
// generation's file (daemon.<n>.log), logged with the others' if the test fails.
func (m *member) kill(t *testing.T) {
	t.Helper()
	m.d.cmd.Process.Kill()
	<-m.d.done
	t.Logf("killed %s at %s; its log: %s", m.name, time.Now().UTC().Format(time.RFC3339Nano), m.d.log)
}

func (m *member) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return gpunode(t, append(args, "--api-socket", m.d.socket)...)
}

func (m *member) api() *api.Client { return api.NewClient(m.d.socket) }

// loop is the running network of a test.
type loop struct {
	dep                       devchain.Deployment
	eth                       *ethclient.Client
	registry                  string
	images                    map[string]string // name → registry/repo@sha256:…
	datasets                  string            // the provider's private datasets (tag digits)
	dataset                   []byte            // digits.csv.gz
	sponsor, provider, v1, v2 *member
}

// importKey puts a dev account's key into a new keystore under dir and returns the
// keystore and its password file.
func importKey(t *testing.T, dir, privateKey string) (string, string) {
	t.Helper()
	keyFile, pw := filepath.Join(dir, "key.hex"), filepath.Join(dir, "pw")
	os.WriteFile(keyFile, []byte(privateKey+"\n"), 0o600)
	os.WriteFile(pw, []byte("dev\n"), 0o600)
	keystore := filepath.Join(dir, "keystore")
	imp := exec.Command(testenv.Binary(t), "wallet", "import", "--hex", "--keystore", keystore, "--password-file", pw, keyFile)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("wallet import: %v\n%s", err, out)
	}
	os.Remove(keyFile)
	return keystore, pw
}

// pushImage tags a local image into the registry, pushes it and returns its
// registry/repo@digest, the only form a manifest accepts.
func pushImage(t *testing.T, registry, id, name string) string {
	t.Helper()
	ref := registry + "/gpunode-example/" + name + ":e2e"
	for _, args := range [][]string{{"tag", id, ref}, {"push", ref}} {
		if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref).Output()
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	var digests []string
	json.Unmarshal(out, &digests)
	for _, d := range digests {
		if strings.HasPrefix(d, registry+"/") {
			exec.Command("docker", "rmi", ref).Run() // the nodes pull it by digest
			return d
		}
	}
	t.Fatalf("%s has no digest in %s: %v", ref, registry, digests)
	return ""
}

func startLoop(t *testing.T) *loop {
	t.Helper()
	l := &loop{images: map[string]string{}}
	var err error
	l.dataset, err = os.ReadFile(digits.DebianPath)
	if err != nil {
		t.Fatalf("%v: %s", err, testenv.Setup)
	}
	l.datasets = t.TempDir()
	os.WriteFile(filepath.Join(l.datasets, "digits.csv.gz"), l.dataset, 0o644)
	l.registry = testenv.Registry(t, t.TempDir(), "")
	for _, name := range []string{"trainer", "eval", "probe"} {
		l.images[name] = pushImage(t, l.registry, exampleImage(t, name), name)
	}

	depFile := devchainProcess(t, "--block-period", "250ms")
	if l.dep, err = devchain.ReadDeployment(depFile); err != nil {
		t.Fatal(err)
	}
	if len(l.dep.Accounts) < 5 {
		t.Fatalf("devchain funded %d accounts, want 5", len(l.dep.Accounts))
	}
	if l.eth, err = ethclient.Dial(l.dep.RPCURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.eth.Close)

	newMember := func(name string, account int, boot []string) *member {
		dir := t.TempDir()
		keystore, pw := importKey(t, dir, l.dep.Accounts[account].PrivateKey)
		c := loopbackConfig("127.0.0.1", boot)
		instance := instanceFor(name, dir)
		c.Runtime.Instance = instance
		c.Runtime.DatasetAllowlist = []string{l.datasets}
		c.Runtime.DockerConfig = "/nonexistent/config.json"
		c.Jobs.PrepareTimeout = configfile.Duration(20 * time.Second)
		c.Jobs.OutcomePoll = configfile.Duration(500 * time.Millisecond)
		c.Jobs.RetryBase = configfile.Duration(500 * time.Millisecond)
		c.Jobs.RetryMax = configfile.Duration(4 * time.Second)
		c.Jobs.MaxAttempts = 3
		c.Market.Deployment, c.Market.Keystore, c.Market.PasswordFile = depFile, keystore, pw
		c.Market.Confirmations = 1
		c.Market.PollInterval = 250 * time.Millisecond
		c.Datasets = map[string]string{"digits": l.datasets}
		// The operator shares the digits dataset with the researcher, and only with them.
		policy := filepath.Join(dir, "policy.toml")
		os.WriteFile(policy, fmt.Appendf(nil, "version = 1\n[datasets]\ndigits = [%q]\n", l.dep.Accounts[1].Address.Hex()), 0o644)
		c.Policy.File = policy
		cfg := writeConfig(t, c)
		m := &member{name: name, dir: dir, cfg: cfg, account: l.dep.Accounts[account].Address}
		t.Cleanup(func() { leaveNothing(dir, instance) })
		return m
	}
	// Account 0 deployed the contracts; 1 posts jobs, 2 takes them, 3 and 4 judge them.
	l.sponsor = newMember("sponsor", 1, nil)
	l.sponsor.start(t)
	boot := []string{loopbackAddr(t, l.sponsor.d)}
	l.provider = newMember("provider", 2, boot)
	l.v1 = newMember("validator1", 3, boot)
	l.v2 = newMember("validator2", 4, boot)
	for _, m := range []*member{l.provider, l.v1, l.v2} {
		m.start(t)
	}
	// The provider registers on chain before it can accept.
	l.waitFor(t, "registration of the provider", 60*time.Second, func() (bool, string) {
		return strings.Contains(l.provider.d.stderr.String(), "registered as provider"), l.provider.d.stderr.String()
	})
	return l
}

func (l *loop) waitFor(t *testing.T, what string, limit time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s:\n%s", what, limit, detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// manifest is the example job's manifest (examples/job.template.json) for this loop,
// changed by edit. Its input is the file digits.csv.gz beside it, which post uploads.
// Its max_duration leaves the 10-minute run windows of the tests room for the margin
// providers require (min_run_window_factor).
func (l *loop) manifest(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "examples", "job.template.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("${TRAINER_IMAGE}", l.images["trainer"], "${EVAL_IMAGE}", l.images["eval"]).Replace(string(raw))
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("template: %v", err)
	}
	m["max_duration"] = "4m"
	if edit != nil {
		edit(m)
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return b
}

var postedRE = regexp.MustCompile(`posted job (\d+)\n.*\ntx (0x[0-9a-f]+)`)

// post posts a manifest through the researcher's CLI and returns the job id and tx.
func (l *loop) post(t *testing.T, manifest []byte, runWindow string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "job.json")
	os.WriteFile(path, manifest, 0o644)
	os.WriteFile(filepath.Join(dir, "digits.csv.gz"), l.dataset, 0o644)
	var out string
	var err error
	for attempt := 0; attempt < 30; attempt++ { // the first adds wait for IPFS to be up
		out, err = l.sponsor.cli(t, "job", "post", path, "--validators", l.v1.account.Hex()+","+l.v2.account.Hex(),
			"--reward", reward, "--validator-fee", fee, "--accept-within", "1h", "--run-window", runWindow, "--attest-window", "10m")
		if err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	m := postedRE.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("job post: %v\n%s", err, out)
	}
	return m[1], m[2]
}

// postRaw posts bytes the CLI would refuse, straight through the API, as a careless or
// hostile researcher could; hash is what goes on chain as the manifest's sha256.
func (l *loop) postRaw(t *testing.T, body []byte, hash string) string {
	t.Helper()
	return l.postWith(t, body, hash, nil)
}

// postWith is postRaw with the contract's terms changed by edit.
func (l *loop) postWith(t *testing.T, body []byte, hash string, edit func(r *api.PostJobRequest)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(path, body, 0o644)
	added, err := l.sponsor.api().IPFSUpload(t.Context(), path, "")
	if err != nil {
		t.Fatal(err)
	}
	if hash == "" {
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
	}
	req := api.PostJobRequest{
		ManifestCID: added.CID, ManifestHash: hash, Threshold: 900000,
		Validators: []string{l.v1.account.Hex(), l.v2.account.Hex()}, Quorum: 2,
		RewardWei: reward, ValidatorFeeWei: fee, AcceptWithinSeconds: 3600, RunWindowSeconds: 600, AttestWindowSeconds: 600,
	}
	if edit != nil {
		edit(&req)
	}
	res, err := l.sponsor.api().PostJob(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res.JobID
}

// job is the provider's record of a job, through the API (polled often).
func (l *loop) job(id string) (jobs.Detail, error) {
	var d jobs.Detail
	err := l.provider.api().Get(context.Background(), "/v1/jobs/"+id, &d)
	return d, err
}

// wait waits until the provider's job is in one of states and returns it.
func (l *loop) wait(t *testing.T, id string, limit time.Duration, states ...jobs.State) jobs.Detail {
	t.Helper()
	var d jobs.Detail
	var err error
	deadline := time.Now().Add(limit)
	for {
		d, err = l.job(id)
		for _, s := range states {
			if err == nil && d.State == s {
				return d
			}
		}
		if time.Now().After(deadline) {
			hist, _ := json.MarshalIndent(d, "", "  ")
			t.Fatalf("job %s not %v within %s (%v):\n%s\nprovider log:\n%s", id, states, limit, err, hist, tail(l.provider.d.stderr.String(), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// chainJob reads the contract's record of a job.
func (l *loop) chainJob(t *testing.T, id string) bindings.JobMarketJob {
	t.Helper()
	n, _ := new(big.Int).SetString(id, 10)
	a := bindings.NewJobMarket()
	out, err := l.eth.CallContract(t.Context(), ethereum.CallMsg{To: &l.dep.JobMarket, Data: a.PackGetJob(n)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := a.UnpackGetJob(out)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (l *loop) credit(t *testing.T, who common.Address) *big.Int {
	t.Helper()
	a := bindings.NewJobMarket()
	out, err := l.eth.CallContract(t.Context(), ethereum.CallMsg{To: &l.dep.JobMarket, Data: a.PackCredit(common.Address{}, who)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.UnpackCredit(out)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// submissions returns every ResultSubmitted event of job id.
func (l *loop) submissions(t *testing.T, id string) []*bindings.JobMarketResultSubmitted {
	t.Helper()
	logs, err := l.eth.FilterLogs(t.Context(), ethereum.FilterQuery{FromBlock: big.NewInt(int64(l.dep.DeployBlock)), Addresses: []common.Address{l.dep.JobMarket}})
	if err != nil {
		t.Fatal(err)
	}
	a := bindings.NewJobMarket()
	var out []*bindings.JobMarketResultSubmitted
	for i := range logs {
		if ev, err := a.UnpackResultSubmittedEvent(&logs[i]); err == nil && ev.JobId.String() == id {
			out = append(out, ev)
		}
	}
	return out
}

// gasCost is what transaction tx cost its sender in fees.
func (l *loop) gasCost(t *testing.T, tx string) *big.Int {
	t.Helper()
	r, err := l.eth.TransactionReceipt(t.Context(), common.HexToHash(tx))
	if err != nil {
		t.Fatalf("receipt %s: %v", tx, err)
	}
	return new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice)
}

func (l *loop) balance(t *testing.T, who common.Address) *big.Int {
	t.Helper()
	b, err := l.eth.BalanceAt(t.Context(), who, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fetch has the researcher fetch job id's checkpoint with the CLI into a new folder,
// which it returns with the names of the files in it.
func (l *loop) fetch(t *testing.T, id string) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "job-"+id)
	out, err := l.sponsor.cli(t, "job", "fetch", id, dir)
	if err != nil || !strings.Contains(out, "matches the chain") {
		t.Fatalf("job fetch %s: %v\n%s", id, err, out)
	}
	var names []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	sort.Strings(names)
	return dir, names
}

func wei(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return v
}

// TestJobLoop runs the product's whole loop with real processes, good jobs and bad ones
// side by side, and the provider killed twice in the middle of a job.
func TestJobLoop(t *testing.T) {
	l := startLoop(t)
	ctx := t.Context()

	localData := []any{map[string]any{"dataset": "digits", "path": "/data"}}

	// Acceptance 2's job first: long enough to be killed while it trains, with a
	// checkpoint every few epochs so that its upload takes a while too.
	longID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
		m["command"] = []any{"/trainer", "-data", "/data/digits.csv.gz", "-out", "/out", "-epochs", "3000", "-checkpoint-every", "1"}
		m["output"] = map[string]any{"path": "/out", "max_bytes": 256 << 20}
		m["max_duration"] = "7m"
	}), "10m")

	// Acceptance 1: the example job on public data from IPFS. The sponsor pays exactly
	// the reward and the validators' fees into escrow, and the gas of its transaction.
	before := l.balance(t, l.sponsor.account)
	goodID, postTx := l.post(t, l.manifest(t, nil), "10m")
	escrow := new(big.Int).Add(wei(reward), new(big.Int).Mul(wei(fee), big.NewInt(2)))
	if spent := new(big.Int).Sub(before, l.balance(t, l.sponsor.account)); spent.Cmp(new(big.Int).Add(escrow, l.gasCost(t, postTx))) != 0 {
		t.Errorf("posting cost the sponsor %s wei, want escrow %s + gas %s", spent, escrow, l.gasCost(t, postTx))
	}

	peers, err := l.provider.api().P2PPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := l.sponsor.cli(t, "job", "offer", goodID, "--peer", peers.ID); err != nil || !strings.Contains(out, "accepted by "+peers.ID) {
		t.Errorf("offer of the good job: %v\n%s", err, out)
	}

	// Acceptance 3: a trainer that exits non-zero (its data file is not there), and a
	// model below the threshold (no training at all).
	crashID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
		m["command"] = []any{"/trainer", "-data", "/data/missing.csv.gz", "-out", "/out"}
		m["max_duration"] = "5s"
	}), "60s")
	poorID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
		m["command"] = []any{"/trainer", "-data", "/data/digits.csv.gz", "-out", "/out", "-epochs", "0"}
	}), "10m")

	// Acceptance 4: training on the rig's private dataset; and a hostile job on it that
	// plants links to host files in its output and tries the network.
	privateID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
		m["inputs"] = localData
	}), "10m")
	probeID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
		m["inputs"] = localData
		m["image"] = l.images["probe"]
		m["command"] = []any{"/probe", "-data", "/data/digits.csv.gz", "-out", "/out", "-dial", l.registry}
	}), "10m")

	// Acceptance 5: a malformed manifest, bytes that are not the manifest posted, an
	// image digest the registry does not have, an input nobody has, a dataset the rig
	// does not have. The provider checks the image and the inputs before it accepts, so
	// none of them is ever taken.
	malformedID := l.postRaw(t, []byte(`{"version": 1, "image": "trainer:latest", "command": ["/trainer"]}`), "")
	mismatchID := l.postRaw(t, l.manifest(t, nil), strings.Repeat("ab", 32))
	badDigestID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
		sum := sha256.Sum256([]byte("no such image"))
		m["image"] = l.registry + "/gpunode-example/trainer@sha256:" + hex.EncodeToString(sum[:])
		m["max_duration"] = "10s"
	}), "40s")
	missingCID := "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy" // sha256 of "hello world\n", added nowhere
	missingInputID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
		m["inputs"] = []any{map[string]any{"cid": missingCID, "path": "/data/digits.csv.gz"}}
		m["max_duration"] = "10s"
	}), "40s")
	missingSetID, _ := l.post(t, l.manifest(t, func(m map[string]any) {
		m["inputs"] = []any{map[string]any{"dataset": "scans", "path": "/data"}}
	}), "10m")

	// A researcher can also offer a posted job to one rig over the p2p network and get
	// the rig's decision at once.
	if out, err := l.sponsor.cli(t, "job", "offer", malformedID, "--peer", peers.ID); err == nil || !strings.Contains(out, "declined by "+peers.ID) || !strings.Contains(out, "must be pinned by digest") {
		t.Errorf("offer of the malformed job: %v\n%s", err, out)
	}

	// Acceptance 2: kill -9 the provider while the long job trains, start it again;
	// kill it again while it uploads the output, start it again.
	l.wait(t, longID, 3*time.Minute, jobs.Running)
	time.Sleep(3 * time.Second)
	if d, _ := l.job(longID); d.State != jobs.Running {
		t.Fatalf("long job left running too soon (%s): make it train longer", d.State)
	}
	l.provider.kill(t)
	l.provider.start(t)
	l.wait(t, longID, 5*time.Minute, jobs.Uploading, jobs.Submitting, jobs.Submitted, jobs.Paid)
	if d, _ := l.job(longID); d.State != jobs.Uploading {
		t.Fatalf("the long job's upload was over before it could be interrupted (%s): give it more checkpoints", d.State)
	}
	l.provider.kill(t)
	l.provider.start(t)
	// The API answers before the job machine has re-attached (it waits for the engine).
	l.waitFor(t, "resumed job in the restarted provider's log", time.Minute, func() (bool, string) {
		return strings.Contains(l.provider.d.stderr.String(), "resuming job"), tail(l.provider.d.stderr.String(), 40)
	})

	// Every job ends; the good ones are paid.
	final := map[string]jobs.Detail{}
	for _, c := range []struct {
		id    string
		state jobs.State
	}{
		{longID, jobs.Paid}, {goodID, jobs.Paid}, {privateID, jobs.Paid},
		{crashID, jobs.Failed}, {poorID, jobs.Rejected}, {probeID, jobs.Rejected},
		{malformedID, jobs.Declined}, {mismatchID, jobs.Declined}, {badDigestID, jobs.Declined},
		{missingInputID, jobs.Declined}, {missingSetID, jobs.Declined},
	} {
		final[c.id] = l.wait(t, c.id, 6*time.Minute, c.state)
	}

	t.Run("exactly one submission after two kills", func(t *testing.T) {
		if subs := l.submissions(t, longID); len(subs) != 1 {
			t.Errorf("job %s: %d results submitted, want 1", longID, len(subs))
		}
		var states []string
		restarts := 0
		for _, h := range final[longID].History {
			states = append(states, h.To)
			if strings.Contains(h.Note, "resumed after a restart") {
				restarts++
			}
		}
		if restarts != 2 {
			t.Errorf("the long job's history shows %d restarts, want 2: %s", restarts, strings.Join(states, " → "))
		}
		t.Logf("long job history: %s", strings.Join(states, " → "))
	})

	t.Run("paid and fetched", func(t *testing.T) {
		for _, id := range []string{goodID, longID, privateID} {
			if st := l.chainJob(t, id); st.State != 4 || st.Passes != 2 {
				t.Errorf("job %s on chain: state %d, %d passes; want completed by 2", id, st.State, st.Passes)
			}
		}
		dir, names := l.fetch(t, goodID)
		if strings.Join(names, ",") != "metrics.json,model.json" {
			t.Errorf("checkpoint holds %v", names)
		}
		got, err := treehash.Sum(dir)
		subs := l.submissions(t, goodID)
		if err != nil || len(subs) != 1 || got != hex.EncodeToString(subs[0].ResultHash[:]) {
			t.Errorf("fetched checkpoint hashes to %s (%v); chain has %v", got, err, subs)
		}
		if _, err := digits.LoadModel(filepath.Join(dir, "model.json")); err != nil {
			t.Errorf("the checkpoint is not a model: %v", err)
		}
	})

	t.Run("refund path visible in status", func(t *testing.T) {
		d := final[crashID]
		if !strings.Contains(d.Reason, "training failed: exit status 1") {
			t.Errorf("crashed trainer: reason %q", d.Reason)
		}
		l.waitFor(t, "refund of the crashed job", 2*time.Minute, func() (bool, string) {
			d, err := l.job(crashID)
			return err == nil && d.Refund != "", fmt.Sprintf("%+v %v", d.Record, err)
		})
		for _, c := range []struct{ id, chain, who string }{
			{crashID, "expired", "provider"}, {poorID, "rejected", "provider"},
			{crashID, "expired", "sponsor"}, {poorID, "rejected", "sponsor"},
		} {
			m := l.provider
			if c.who == "sponsor" {
				m = l.sponsor
			}
			out, err := m.cli(t, "job", "status", c.id)
			if err != nil || !regexp.MustCompile(`On chain:\s+`+c.chain).MatchString(out) || !strings.Contains(out, "refunded") {
				t.Errorf("%s's job status %s: %v\n%s", c.who, c.id, err, out)
			}
			if c.who == "provider" && c.id == crashID && !strings.Contains(out, "Refund:") {
				t.Errorf("provider's status of the crashed job shows no refund:\n%s", out)
			}
		}
		// The researcher lists what it posted, with how each job ended.
		out, err := l.sponsor.cli(t, "job", "list", "--posted")
		for _, row := range []string{`(?m)^` + goodID + `\s+completed\s.*\spaid$`, `(?m)^` + crashID + `\s+expired\s.*\srefunded$`, `(?m)^` + poorID + `\s+rejected\s.*\srefunded$`} {
			if err != nil || !regexp.MustCompile(row).MatchString(out) {
				t.Errorf("job list --posted lacks a row like %s: %v\n%s", row, err, out)
			}
		}
	})

	t.Run("private data stays on the rig", func(t *testing.T) {
		dir, names := l.fetch(t, privateID)
		if strings.Join(names, ",") != "metrics.json,model.json" {
			t.Errorf("published output of the private job holds %v", names)
		}
		noneIs(t, dir, l.dataset)

		dir, names = l.fetch(t, probeID)
		if strings.Join(names, ",") != "report.json" {
			t.Errorf("published output of the probe holds %v, want only report.json", names)
		}
		passwd, _ := os.ReadFile("/etc/passwd")
		noneIs(t, dir, l.dataset, passwd)
		var r struct {
			Interfaces []string          `json:"interfaces"`
			Dial       map[string]string `json:"dial"`
			Links      map[string]string `json:"links"`
			DatasetLen int64             `json:"dataset_bytes"`
		}
		raw, _ := os.ReadFile(filepath.Join(dir, "report.json"))
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("report: %v\n%s", err, raw)
		}
		if r.DatasetLen != int64(len(l.dataset)) {
			t.Errorf("the probe saw a dataset of %d bytes, want %d", r.DatasetLen, len(l.dataset))
		}
		if strings.Join(r.Interfaces, ",") != "lo" {
			t.Errorf("the container had network interfaces %v, want only lo", r.Interfaces)
		}
		for a, res := range r.Dial {
			if res == "connected" {
				t.Errorf("the container reached %s", a)
			}
		}
		for _, name := range []string{"passwd-symlink", "dataset-symlink", "data-dir-symlink", "own-hardlink"} {
			if r.Links[name] != "made" {
				t.Errorf("the probe could not plant %s (%s): the test proves nothing about it", name, r.Links[name])
			}
		}
		t.Logf("probe report: %s", raw)
	})

	t.Run("bad jobs end with a clear reason", func(t *testing.T) {
		for id, want := range map[string]string{
			malformedID:    "must be pinned by digest",
			mismatchID:     "manifest hash mismatch",
			badDigestID:    "not found",
			missingInputID: "fetch input " + missingCID,
			missingSetID:   `dataset "scans" is not on this rig`,
		} {
			if d := final[id]; !strings.Contains(d.Reason, want) {
				t.Errorf("job %s (%s): reason %q, want it to say %q", id, d.State, d.Reason, want)
			}
		}
		// The researcher cancels the job nobody would take; a finished one cannot be.
		if out, err := l.sponsor.cli(t, "job", "cancel", malformedID); err != nil || !strings.Contains(out, "cancelled job "+malformedID) {
			t.Errorf("cancel: %v\n%s", err, out)
		}
		if out, err := l.sponsor.cli(t, "job", "cancel", goodID); err == nil || !strings.Contains(out, "BadState") {
			t.Errorf("cancel of a completed job: %v\n%s", err, out)
		}
	})

	// Money: every credit is what the contract's rules give for the jobs' ends, and a
	// withdrawal pays out exactly the credit.
	t.Run("balances", func(t *testing.T) {
		// The jobs declined before acceptance were never taken: nothing to refund. (The
		// dev chain's clock runs ahead of the wall's; a job left open past its accept
		// window is expired by the sponsor's node, its escrow credited back.)
		declined := []string{badDigestID, missingInputID, mismatchID, missingSetID}
		for _, id := range declined {
			if j := l.chainJob(t, id); (j.State != 1 && j.State != 7) || j.Provider != (common.Address{}) {
				t.Errorf("declined job %s on chain: state %d, provider %s; want open (or expired open), untaken", id, j.State, j.Provider.Hex())
			}
		}
		want := map[common.Address]*big.Int{}
		for _, m := range []*member{l.sponsor, l.provider, l.v1, l.v2} {
			want[m.account] = new(big.Int)
		}
		for _, id := range append([]string{longID, goodID, crashID, poorID, privateID, probeID, malformedID}, declined...) {
			j := l.chainJob(t, id)
			unearned := new(big.Int).Mul(j.ValidatorFee, big.NewInt(int64(2-j.Passes-j.Fails)))
			for i, v := range []*member{l.v1, l.v2} {
				if j.Attested&(1<<i) != 0 {
					want[v.account].Add(want[v.account], j.ValidatorFee)
				}
			}
			switch j.State {
			case 1: // open, never taken: nothing credited yet
			case 4: // completed
				want[l.provider.account].Add(want[l.provider.account], new(big.Int).Add(j.Reward, j.Bond))
				want[l.sponsor.account].Add(want[l.sponsor.account], unearned)
			case 5: // rejected
				want[l.sponsor.account].Add(want[l.sponsor.account], new(big.Int).Add(new(big.Int).Add(j.Reward, j.Bond), unearned))
			case 6: // cancelled while open: the whole escrow back
				want[l.sponsor.account].Add(want[l.sponsor.account], new(big.Int).Add(j.Reward, new(big.Int).Mul(j.ValidatorFee, big.NewInt(2))))
			case 7: // expired while accepted: nothing was attested
				want[l.sponsor.account].Add(want[l.sponsor.account], new(big.Int).Add(new(big.Int).Add(j.Reward, j.Bond), new(big.Int).Mul(j.ValidatorFee, big.NewInt(2))))
			default:
				t.Errorf("job %s ended in chain state %d", id, j.State)
			}
		}
		for _, m := range []*member{l.sponsor, l.provider, l.v1, l.v2} {
			if got := l.credit(t, m.account); got.Cmp(want[m.account]) != 0 {
				t.Errorf("%s's credit is %s wei, the contract's rules give %s", m.name, got, want[m.account])
			}
		}
		if paid := new(big.Int).Mul(wei(reward), big.NewInt(3)); want[l.provider.account].Cmp(paid) != 0 {
			t.Errorf("provider is owed %s, want three rewards (%s)", want[l.provider.account], paid)
		}
		for _, m := range []*member{l.provider, l.sponsor} {
			credit := l.credit(t, m.account)
			before := l.balance(t, m.account)
			out, err := gpunode(t, "wallet", "withdraw", "--api-socket", m.d.socket)
			re := regexp.MustCompile(`withdrew (\d+) wei in tx (0x[0-9a-fA-F]+)`).FindStringSubmatch(out)
			if err != nil || re == nil {
				t.Fatalf("%s withdraw: %v\n%s", m.name, err, out)
			}
			if re[1] != credit.String() {
				t.Errorf("%s withdrew %s, its credit was %s", m.name, re[1], credit)
			}
			gained := new(big.Int).Sub(l.balance(t, m.account), before)
			if exp := new(big.Int).Sub(credit, l.gasCost(t, re[2])); gained.Cmp(exp) != 0 {
				t.Errorf("%s's balance changed by %s, want credit %s − gas = %s", m.name, gained, credit, exp)
			}
			if c := l.credit(t, m.account); c.Sign() != 0 {
				t.Errorf("%s's credit after withdrawing: %s", m.name, c)
			}
		}
	})

	// The provider's earnings and jobs, in status and in its metrics.
	l.waitFor(t, "the provider's earnings in status", 30*time.Second, func() (bool, string) {
		st, err := l.provider.api().Status(ctx)
		if err != nil || st.Earnings == nil {
			return false, fmt.Sprint(err)
		}
		e := st.Earnings
		three := new(big.Int).Mul(wei(reward), big.NewInt(3)).String()
		return e.RewardsWei == three && e.WithdrawnWei == three && e.CreditWei == "0" && st.Jobs["paid"] == 3, fmt.Sprintf("%+v %v", e, st.Jobs)
	})
	if out, err := l.provider.cli(t, "status"); err != nil || !strings.Contains(out, "Earnings:") || !strings.Contains(out, "rewards 3.000000 ETH") {
		t.Errorf("status: %v\n%s", err, out)
	}
	// Each paid job shows what it earned.
	out, err := l.provider.cli(t, "job", "list")
	for _, id := range []string{goodID, longID, privateID} {
		if err != nil || !regexp.MustCompile(`(?m)^`+id+`\s+paid\s.*\s1\.000000 ETH\s`).MatchString(out) {
			t.Errorf("job list shows no earnings for job %s: %v\n%s", id, err, out)
		}
	}
	// A validator's status shows its validations and the fees they earned.
	l.waitFor(t, "the validator's fees in status", 30*time.Second, func() (bool, string) {
		st, err := l.v1.api().Status(ctx)
		if err != nil || st.Earnings == nil {
			return false, fmt.Sprint(err)
		}
		return st.Validations["done"] >= 5 && st.Earnings.FeesWei != "0" && st.Earnings.FeesWei == l.credit(t, l.v1.account).String(), fmt.Sprintf("%+v %v", st.Earnings, st.Validations)
	})
	if out, err := l.v1.cli(t, "status"); err != nil || !regexp.MustCompile(`Validations:\s+(awaiting a result \d+, )?attested \d+`).MatchString(out) {
		t.Errorf("validator status: %v\n%s", err, out)
	}
	names := scrapeNames(t, l.provider.d.metrics)
	for _, n := range []string{"gpunode_jobs", "gpunode_job_gpu_seconds_total", "gpunode_earned_wei_total", "gpunode_withdrawn_wei_total"} {
		if !names[n] {
			t.Errorf("metrics lack %s", n)
		}
	}

	// The jobs dashboard works on a real Prometheus scraping the provider.
	t.Run("dashboard", func(t *testing.T) {
		p := startPrometheus(t, l.provider.d.metrics)
		p.waitSeries(t, `gpunode_jobs{state="paid"} == 3`, 1)
		checkDashboard(t, p, l.provider.d.metrics, filepath.Join(testenv.RepoRoot(t), "configs", "grafana", "gpunode-jobs.json"))
	})

	// Nothing else broke: every daemon still answers.
	for _, m := range []*member{l.sponsor, l.provider, l.v1, l.v2} {
		if _, err := m.api().Status(ctx); err != nil {
			t.Errorf("%s: %v", m.name, err)
		}
	}
}

// noneIs fails the test if any file under dir has the contents of one of secrets.
func noneIs(t *testing.T, dir string, secrets ...[]byte) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, s := range secrets {
			if len(s) > 0 && bytes.Contains(b, s) {
				t.Errorf("published %s holds a host file's contents", p)
			}
		}
		return nil
	})
}

// TestDemo runs `make demo`'s script: the example job through the whole loop, with the
// checkpoint fetched, verified and its path printed. A first run is interrupted (Ctrl-C,
// which signals the whole foreground process group) while the provider's container
// runs: what it leaves behind must not break the second run.
func TestDemo(t *testing.T) {
	testenv.RequireDocker(t)
	root := testenv.RepoRoot(t)
	base := 0
	for p := 20000 + os.Getpid()%20000; base == 0; p += 7 {
		if portFree(p) && portFree(p+45) {
			base = p
		}
	}
	dir := filepath.Join(t.TempDir(), "demo")
	demo := func() *exec.Cmd {
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "demo.sh"), testenv.Binary(t), dir)
		cmd.Env = append(os.Environ(), fmt.Sprintf("DEMO_PORT_BASE=%d", base))
		return cmd
	}

	// The engine says when the provider's container starts (the example job may run
	// for less than a second, too short to poll for).
	events := exec.Command("docker", "events", "--filter", "type=container", "--filter", "event=start",
		"--filter", "label=io.gpunode.instance=demo-provider", "--format", "{{.ID}}")
	evOut, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { events.Process.Kill(); events.Wait() }()
	started := make(chan struct{})
	go func() {
		if _, err := bufio.NewReader(evOut).ReadString('\n'); err == nil {
			close(started)
		}
	}()

	interrupted := demo()
	var first bytes.Buffer
	interrupted.Stdout, interrupted.Stderr = &first, &first
	interrupted.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := interrupted.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- interrupted.Wait() }()
	select {
	case <-started:
	case err := <-exited:
		t.Fatalf("the demo ended (%v) before its job's container started:\n%s", err, first.String())
	case <-time.After(5 * time.Minute):
		syscall.Kill(-interrupted.Process.Pid, syscall.SIGKILL)
		t.Fatalf("the provider's container did not start within 5m:\n%s", first.String())
	}
	if err := syscall.Kill(-interrupted.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		syscall.Kill(-interrupted.Process.Pid, syscall.SIGKILL)
		t.Fatalf("the interrupted demo did not stop within 2m:\n%s", first.String())
	}
	for _, n := range []string{"provider", "validator1", "validator2"} {
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=io.gpunode.instance=demo-"+n).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("the interrupted demo left containers of demo-%s: %s", n, out)
		}
	}

	out, err := demo().CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"job 1: paid", "matches the chain", "withdrew 1000000000000000000 wei", "checkpoint: " + dir + "/checkpoint/model.json", "pass true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if _, err := digits.LoadModel(filepath.Join(dir, "checkpoint", "model.json")); err != nil {
		t.Errorf("the demo's checkpoint: %v", err)
	}
}

func portFree(p int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// instanceFor names the container runtime instance of a test's daemon over dir. The
// runtime labels its containers with it, and leaveNothing removes them by it. Every
// test's temp dirs end in the same sequence numbers (…/007), so the name hashes the whole
// path: two test processes on one engine (engineers running the e2e tests side by side)
// must never share an instance, or one's cleanup kills the other's running jobs.
func instanceFor(name, dir string) string {
	h := sha256.Sum256([]byte(dir))
	return "e2e-" + name + "-" + hex.EncodeToString(h[:6])
}

// leaveNothing removes what a daemon of a test leaves behind when it stops with a job
// still running (a job outlives its daemon, by design): the job's containers, found by
// the runtime's instance label, with their volumes, and the output filesystems still
// loop-mounted under dir, deepest first.
func leaveNothing(dir, instance string) {
	exec.Command("sh", "-c", "docker ps -aq --filter label="+docker.LabelInstance+"="+instance+" | xargs -r docker rm -f -v").Run()
	raw, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		// /proc/self/mounts escapes spaces and the like as octal: \040.
		p := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[1])
		if strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		exec.Command("umount", p).Run()
	}
}
