//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/gpunode/gpunode/contracts/bindings/payouts"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/examples/ddp"
	"github.com/gpunode/gpunode/examples/digits"
	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/runtime/docker"
)

// A pool on real processes: the dev chain, a researcher, the pool's coordinator (which
// faces the market with the pool's account), two validators and member rigs that take
// jobs from the coordinator alone, on dockerd, a local registry and each node's IPFS.

// poolFee is the coordinator's pool.fee_bps in these tests: 5 %.
const poolFee = 500

// poolOpts shapes a test pool.
type poolOpts struct {
	members int
	// heartbeat and bound are the members' pool.heartbeat and the coordinator's
	// pool.heartbeat_bound.
	heartbeat, bound time.Duration
	// ddp lends the members the host's Python and PyTorch as datasets (/usr, /lib,
	// /lib64, /etc/alternatives) for the DDP image, which is FROM nothing.
	ddp bool
}

// poolNet is a running pool; its loop's provider is the coordinator.
type poolNet struct {
	*loop
	coordinator *member
	members     []*member
	// instances are the members' runtime instances (their containers' label).
	instances map[*member]string
	depFile   string
}

// hostPython is Debian's interpreter with python3-torch, which the DDP job runs.
const hostPython = "/usr/bin/python3"

// hostSystem are the host directories a DDP job of these tests mounts, by dataset tag.
var hostSystem = map[string]string{"usr": "/usr", "lib": "/lib", "lib64": "/lib64", "alternatives": "/etc/alternatives"}

func startPool(t *testing.T, o poolOpts) *poolNet {
	t.Helper()
	testenv.RequireDocker(t)
	begin := time.Now()
	mark := func(what string) { t.Logf("%s %s after start", what, time.Since(begin).Round(100*time.Millisecond)) }
	l := &loop{images: map[string]string{}}
	p := &poolNet{loop: l, instances: map[*member]string{}}
	var err error
	l.dataset, err = os.ReadFile(digits.DebianPath)
	if err != nil {
		t.Fatalf("%v: %s", err, testenv.Setup)
	}
	l.datasets = t.TempDir()
	os.WriteFile(filepath.Join(l.datasets, "digits.csv.gz"), l.dataset, 0o644)
	l.registry = testenv.Registry(t, t.TempDir(), "")
	for _, name := range []string{"trainer", "eval"} {
		l.images[name] = pushImage(t, l.registry, exampleImage(t, name), name)
	}
	if o.ddp {
		if out, err := exec.Command(hostPython, "-c", "import torch").CombinedOutput(); err != nil {
			t.Fatalf("%s cannot import torch (%v: %s): install Debian's python3-torch; %s", hostPython, err, out, testenv.Setup)
		}
		for name, id := range ddpImages(t) {
			l.images[name] = pushImage(t, l.registry, id, name)
		}
	}

	// Accounts: 0 deployed the contracts, 1 posts jobs, 2 is the pool's, 3 and 4 judge,
	// 5… are the members'.
	p.depFile = devchainProcess(t, "--block-period", "250ms", "--accounts", fmt.Sprint(5+o.members))
	if l.dep, err = devchain.ReadDeployment(p.depFile); err != nil {
		t.Fatal(err)
	}
	if len(l.dep.Accounts) < 5+o.members {
		t.Fatalf("devchain funded %d accounts, want %d", len(l.dep.Accounts), 5+o.members)
	}
	if l.eth, err = ethclient.Dial(l.dep.RPCURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.eth.Close)
	mark("dev chain and images ready")

	// A member's share of a job is in proportion to GPU-seconds × its benchmark score:
	// each member measures itself first (the quick CPU benchmark, a few seconds, while
	// the rest of the pool starts).
	memberDirs := make([]string, o.members)
	for i := range memberDirs {
		memberDirs[i] = t.TempDir()
	}
	benched := benchDirs(t, memberDirs)

	newNode := func(name, dir string, account int, boot []string, edit func(c *node.Config)) *member {
		keystore, pw := importKey(t, dir, l.dep.Accounts[account].PrivateKey)
		c := loopbackConfig("127.0.0.1", boot)
		instance := instanceFor(name, dir) // unique per run: see instanceFor
		c.Runtime.Instance = instance
		c.Runtime.DatasetAllowlist = []string{l.datasets}
		c.Runtime.DockerConfig = "/nonexistent/config.json"
		c.Jobs.PrepareTimeout = configfile.Duration(20 * time.Second)
		c.Jobs.OutcomePoll = configfile.Duration(500 * time.Millisecond)
		c.Jobs.RetryBase = configfile.Duration(500 * time.Millisecond)
		c.Jobs.RetryMax = configfile.Duration(4 * time.Second)
		c.Jobs.MaxAttempts = 3
		c.Market.Deployment, c.Market.Keystore, c.Market.PasswordFile = p.depFile, keystore, pw
		c.Market.Confirmations = 1
		c.Market.PollInterval = 250 * time.Millisecond
		c.Datasets = map[string]string{"digits": l.datasets}
		c.Pool.Heartbeat, c.Pool.HeartbeatBound = configfile.Duration(o.heartbeat), configfile.Duration(o.bound)
		if edit != nil {
			edit(&c)
		}
		// The operator shares its datasets with the researcher, and only with them; a
		// node without datasets has no datasets table.
		var policy strings.Builder
		policy.WriteString("version = 1\n")
		if len(c.Datasets) > 0 {
			policy.WriteString("[datasets]\n")
		}
		for tag := range c.Datasets {
			fmt.Fprintf(&policy, "%s = [%q]\n", tag, l.dep.Accounts[1].Address.Hex())
		}
		c.Policy.File = filepath.Join(dir, "policy.toml")
		os.WriteFile(c.Policy.File, []byte(policy.String()), 0o644)
		m := &member{name: name, dir: dir, cfg: writeConfig(t, c), account: l.dep.Accounts[account].Address}
		p.instances[m] = instance
		t.Cleanup(func() { leaveNothing(dir, instance) })
		return m
	}

	l.sponsor = newNode("sponsor", t.TempDir(), 1, nil, nil)
	l.sponsor.start(t)
	mark("researcher started")
	boot := []string{loopbackAddr(t, l.sponsor.d)}
	// The host's system directories, as datasets of the members for the DDP job.
	hostDatasets := func(c *node.Config) {
		if !o.ddp {
			return
		}
		for tag, dir := range hostSystem {
			if _, err := os.Stat(dir); err == nil {
				c.Datasets[tag] = dir
			}
		}
		c.Runtime.DatasetAllowlist = append(c.Runtime.DatasetAllowlist, "/usr", "/etc/alternatives")
	}
	p.coordinator = newNode("coordinator", t.TempDir(), 2, boot, func(c *node.Config) {
		c.Pool.Coordinator = true
		c.Pool.FeeBPS = poolFee
		// The coordinator runs no job: it has no datasets and its policy shares none.
		// It dispatches a job mounting one to a member that reports it, whose own
		// policy decides.
		c.Datasets = nil
	})
	l.provider = p.coordinator
	p.coordinator.start(t)
	mark("coordinator started")
	peers, err := p.coordinator.api().P2PPeers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	boot = append(boot, loopbackAddr(t, p.coordinator.d))
	l.v1 = newNode("validator1", t.TempDir(), 3, boot, nil)
	l.v2 = newNode("validator2", t.TempDir(), 4, boot, nil)
	for i := range o.members {
		m := newNode(fmt.Sprintf("member%d", i+1), memberDirs[i], 5+i, boot, func(c *node.Config) {
			c.Pool.CoordinatorPeer = peers.ID
			hostDatasets(c)
		})
		p.members = append(p.members, m)
	}
	for _, m := range []*member{l.v1, l.v2} {
		m.start(t)
	}
	mark("researcher, coordinator and validators started")
	if err := <-benched; err != nil {
		t.Fatal(err)
	}
	mark("members benchmarked")
	for _, m := range p.members {
		m.start(t)
	}
	mark("members started")

	// The pool's account accepts jobs on chain: it registers as a provider like any rig.
	l.waitFor(t, "registration of the pool's coordinator as provider", 60*time.Second, func() (bool, string) {
		return strings.Contains(p.coordinator.d.stderr.String(), "registered as provider"), tail(p.coordinator.d.stderr.String(), 40)
	})
	p.waitMembers(t, o.members, 60*time.Second)
	mark(fmt.Sprintf("pool of %d members up", o.members))
	return p
}

// benchDirs runs the quick CPU benchmark on the data directory of each daemon dir at
// once, in the background, so that each member's daemon starts with a signed report and
// a score. The channel says when they are done, with what went wrong.
func benchDirs(t *testing.T, dirs []string) <-chan error {
	t.Helper()
	bin := testenv.Binary(t)
	done := make(chan error, 1)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // before the dirs go: a failed test may not have waited
	errs := make([]error, len(dirs))
	for i, dir := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command(bin, "bench", "--data-dir", filepath.Join(dir, "data"), "--threads", "1").CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("bench of member %d: %v\n%s", i+1, err, out)
			}
		}()
	}
	go func() {
		wg.Wait()
		done <- errors.Join(errs...)
	}()
	return done
}

// poolMembers is the coordinator's view of its members, through the CLI.
func (p *poolNet) poolMembers(t *testing.T) (api.PoolMembers, string, error) {
	t.Helper()
	out, err := p.coordinator.cli(t, "pool", "members", "--json")
	var pm api.PoolMembers
	if err == nil {
		err = json.Unmarshal([]byte(out), &pm)
	}
	return pm, out, err
}

// waitMembers waits until the coordinator lists n live, active members, each with a
// benchmark score and the account of one of the pool's member daemons.
func (p *poolNet) waitMembers(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	accounts := map[string]bool{}
	for _, m := range p.members {
		accounts[strings.ToLower(m.account.Hex())] = true
	}
	p.waitFor(t, fmt.Sprintf("%d live members with scores at the coordinator", n), limit, func() (bool, string) {
		pm, out, err := p.poolMembers(t)
		if err != nil {
			return false, fmt.Sprintf("pool members --json: %v\n%s", err, out)
		}
		live := 0
		for _, m := range pm.Members {
			if m.Alive && m.Admission == "active" && m.Score > 0 && accounts[strings.ToLower(m.Account)] {
				live++
			}
		}
		return live == n, out
	})
}

// memberByAccount is the pool member acting for account a.
func (p *poolNet) memberByAccount(a common.Address) *member {
	for _, m := range p.members {
		if m.account == a {
			return m
		}
	}
	return nil
}

// poolJob is member m's record of chain job id, which the pool dispatched to it; ok is
// false while the member has none.
func poolJob(ctx context.Context, m *member, id string) (jobs.Job, bool, error) {
	var list []jobs.Job
	if err := m.api().Jobs(ctx, &list); err != nil {
		return jobs.Job{}, false, err
	}
	for _, j := range list {
		if j.ID == id || j.Posting.ID == id || j.ID == "pool-"+id {
			return j, true, nil
		}
	}
	return jobs.Job{}, false, nil
}

// holders are the members that have a record of chain job id.
func (p *poolNet) holders(t *testing.T, id string) map[*member]jobs.Job {
	t.Helper()
	out := map[*member]jobs.Job{}
	for _, m := range p.members {
		if m.d.cmd.ProcessState != nil {
			continue // killed by the test
		}
		j, ok, err := poolJob(t.Context(), m, id)
		if err != nil {
			t.Fatalf("%s: jobs: %v", m.name, err)
		}
		if ok {
			out[m] = j
		}
	}
	return out
}

// poolJobAt is the coordinator's record of job id; ok is false while it has none.
func (p *poolNet) poolJobAt(t *testing.T, id string) (api.PoolJob, bool) {
	t.Helper()
	pj, err := p.coordinator.api().PoolJobs(t.Context())
	if err != nil {
		t.Fatalf("pool jobs on the coordinator: %v\n%s", err, tail(p.coordinator.d.stderr.String(), 30))
	}
	for _, j := range pj.Jobs {
		if j.ID == id {
			return j, true
		}
	}
	return api.PoolJob{}, false
}

// waitPoolJob waits until the coordinator's record of job id is in state and returns it.
func (p *poolNet) waitPoolJob(t *testing.T, id, state string) api.PoolJob {
	t.Helper()
	var pj api.PoolJob
	p.until(t, "job "+id+" "+state+" at the coordinator", time.Minute, func() bool {
		var ok bool
		pj, ok = p.poolJobAt(t, id)
		return ok && pj.State == state
	}, id)
	return pj
}

// until is waitFor whose failure message is describe(id), made only then.
func (p *poolNet) until(t *testing.T, what string, limit time.Duration, cond func() bool, id string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s:\n%s", what, limit, p.describe(t, id))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// describe is the coordinator's and every live member's record of job id and the tails
// of the pool's logs, for a failure message.
func (p *poolNet) describe(t *testing.T, id string) string {
	t.Helper()
	var b strings.Builder
	j := p.chainJob(t, id)
	fmt.Fprintf(&b, "chain: job %s state %d provider %s passes %d fails %d\n", id, j.State, j.Provider.Hex(), j.Passes, j.Fails)
	if pj, ok := p.poolJobAt(t, id); ok {
		raw, _ := json.Marshal(pj)
		fmt.Fprintf(&b, "coordinator's pool job: %s\n", raw)
	}
	for m, r := range p.holders(t, id) {
		fmt.Fprintf(&b, "%s holds it: %s (source %q) %s\n", m.name, r.State, r.Posting.Source, r.Reason)
	}
	fmt.Fprintf(&b, "coordinator log:\n%s\n", tail(p.coordinator.d.stderr.String(), 30))
	for _, m := range p.members {
		fmt.Fprintf(&b, "%s log:\n%s\n", m.name, tail(m.d.stderr.String(), 15))
	}
	return b.String()
}

// running lists member m's running containers.
func (p *poolNet) running(m *member) []string {
	out, _ := exec.Command("docker", "ps", "-q", "--filter", "status=running", "--filter", "label="+docker.LabelInstance+"="+p.instances[m]).Output()
	return strings.Fields(string(out))
}

// containers lists member m's containers, whatever their state.
func (p *poolNet) containers(m *member) []string {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+docker.LabelInstance+"="+p.instances[m]).Output()
	return strings.Fields(string(out))
}

// waitPaid waits until job id is completed on chain, accepted by the pool's account.
func (p *poolNet) waitPaid(t *testing.T, id string, limit time.Duration) {
	t.Helper()
	p.until(t, "completion of job "+id+" on chain", limit, func() bool {
		if pj, ok := p.poolJobAt(t, id); ok && slices.Contains([]string{"declined", "failed", "rejected", "expired", "lost"}, pj.State) {
			t.Fatalf("the pool's coordinator ended job %s %s: %s\n%s", id, pj.State, pj.Reason, p.describe(t, id))
		}
		return p.chainJob(t, id).State == 4
	}, id)
	if j := p.chainJob(t, id); j.Provider != p.coordinator.account || j.Passes != 2 {
		t.Fatalf("job %s completed by %s with %d passes; want the pool's account %s and 2 passes", id, j.Provider.Hex(), j.Passes, p.coordinator.account.Hex())
	}
}

// claimed is what PoolPayouts contracts paid member a, by Claimed event, with each
// claim's transaction.
type claim struct {
	contract common.Address
	epoch    *big.Int
	amount   *big.Int
	tx       common.Hash
}

func (p *poolNet) claims(t *testing.T, a common.Address) []claim {
	t.Helper()
	abi := payouts.NewPoolPayouts()
	ev := abi.GetABI().Events["Claimed"]
	logs, err := p.eth.FilterLogs(t.Context(), ethereum.FilterQuery{
		FromBlock: big.NewInt(int64(p.dep.DeployBlock)),
		Topics:    [][]common.Hash{{ev.ID}, nil, {common.BytesToHash(a.Bytes())}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []claim
	for i := range logs {
		c, err := abi.UnpackClaimedEvent(&logs[i])
		if err != nil || c.Member != a {
			continue
		}
		out = append(out, claim{contract: logs[i].Address, epoch: c.Epoch, amount: c.Amount, tx: logs[i].TxHash})
	}
	return out
}

// payoutsCoordinator is the account a PoolPayouts contract pays out for.
func (p *poolNet) payoutsCoordinator(t *testing.T, contract common.Address) common.Address {
	t.Helper()
	abi := payouts.NewPoolPayouts()
	out, err := p.eth.CallContract(t.Context(), ethereum.CallMsg{To: &contract, Data: abi.PackCoordinator()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := abi.UnpackCoordinator(out)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// ddpImages builds the images of the multi-rig job: examples/ddp's train.py with the
// tests' probe in front of it, FROM nothing (the members lend the host's Python and
// PyTorch), and its evaluation, a static Go binary. It returns their IDs by name.
func ddpImages(t *testing.T) map[string]string {
	t.Helper()
	root := testenv.RepoRoot(t)
	probe, err := os.ReadFile(filepath.Join(root, "e2e", "testdata", "ddpprobe", "probe.py"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "train.py"), ddp.Script, 0o644)
	os.WriteFile(filepath.Join(dir, "probe.py"), probe, 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY train.py /train.py\nCOPY probe.py /probe.py\nUSER 65534:65534\n"), 0o644)
	cmd := exec.Command("docker", "build", "-q", "-t", "gpunode-example/ddp-probe:test", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker build ddp: %v\n%s%s", err, out, stderr.String())
	}
	eval, err := buildStatic(root, "ddpeval", "./e2e/testdata/ddpeval", "FROM scratch\nCOPY ddpeval /ddpeval\nUSER 65534:65534\nENTRYPOINT [\"/ddpeval\"]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"ddp": strings.TrimSpace(string(out)), "ddpeval": eval}
}
