//go:build integration

package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/runtime/docker"
)

// share is what one member that did all of a job's work is owed of reward: all but the
// pool's fee.
func share(reward *big.Int) *big.Int {
	fee := new(big.Int).Mul(reward, big.NewInt(poolFee))
	fee.Quo(fee, big.NewInt(10_000))
	return new(big.Int).Sub(reward, fee)
}

// payoutsOf is `gpunode pool payouts --json` on m: on the coordinator every member's
// shares, on a member its own.
func payoutsOf(t *testing.T, m *member) (api.PoolPayouts, string, error) {
	t.Helper()
	out, err := m.cli(t, "pool", "payouts", "--json")
	var pp api.PoolPayouts
	if err == nil {
		err = json.Unmarshal([]byte(out), &pp)
	}
	return pp, out, err
}

// TestPoolSingleNodeJob is pools' acceptance 1: a coordinator and three members; the
// researcher's single-node job is taken by the pool's account, dispatched to one member,
// trained, validated and paid to the pool; the split is booked and published, and the
// member that did the work claims its share: its balance moves by exactly the share less
// the claim's gas.
func TestPoolSingleNodeJob(t *testing.T) {
	p := startPool(t, poolOpts{members: 3, heartbeat: time.Second, bound: 5 * time.Second})
	posted := time.Now()
	id, _ := p.post(t, p.manifest(t, nil), "10m")
	p.waitPaid(t, id, 3*time.Minute)
	t.Logf("job %s paid %s after posting", id, time.Since(posted).Round(100*time.Millisecond))

	// One member ran it, as a job of the pool; the others never had it.
	held := p.holders(t, id)
	if len(held) != 1 {
		t.Fatalf("%d members hold job %s, want exactly 1:\n%s", len(held), id, p.describe(t, id))
	}
	var worker *member
	for m := range held {
		worker = m
	}
	p.waitFor(t, "payment of job "+id+" in "+worker.name+"'s record", time.Minute, func() (bool, string) {
		j, _, err := poolJob(t.Context(), worker, id)
		return err == nil && j.State == jobs.Paid, fmt.Sprintf("%s: %s %s (%v)", worker.name, j.State, j.Reason, err)
	})
	rec, _, _ := poolJob(t.Context(), worker, id)
	if rec.Posting.Source != jobs.SourcePool {
		t.Errorf("%s's record of job %s has source %q, want pool", worker.name, id, rec.Posting.Source)
	}
	// The coordinator's record: one rank, given to the worker, never taken back.
	pj := p.waitPoolJob(t, id, "paid")
	if len(pj.Members) != 1 || !strings.EqualFold(pj.Members[0].Account, worker.account.Hex()) || pj.Members[0].Status != "done" || pj.Reassignments != 0 || len(pj.Past) != 0 {
		t.Errorf("the coordinator's record of job %s: %+v; want it done by %s alone", id, pj, worker.name)
	}
	// What the pool submitted is the member's checkpoint, once.
	subs := p.submissions(t, id)
	if len(subs) != 1 {
		t.Fatalf("job %s: %d results submitted, want 1", id, len(subs))
	}
	if subs[0].Provider != p.coordinator.account || subs[0].CheckpointCID != rec.OutputCID || hex.EncodeToString(subs[0].ResultHash[:]) != rec.OutputHash {
		t.Errorf("submitted by %s: %s %x; the member published %s %s", subs[0].Provider.Hex(), subs[0].CheckpointCID, subs[0].ResultHash, rec.OutputCID, rec.OutputHash)
	}
	dir, names := p.fetch(t, id)
	if strings.Join(names, ",") != "metrics.json,model.json" {
		t.Errorf("checkpoint holds %v", names)
	}
	if got, err := treehash.Sum(dir); err != nil || got != rec.OutputHash {
		t.Errorf("fetched checkpoint hashes to %s (%v), the member published %s", got, err, rec.OutputHash)
	}

	// The split is booked: all of the reward but the pool's fee to the worker.
	want := share(wei(reward))
	var booked api.PoolShare
	p.waitFor(t, "split of job "+id+" in the coordinator's payouts", time.Minute, func() (bool, string) {
		pp, out, err := payoutsOf(t, p.coordinator)
		if err != nil {
			return false, fmt.Sprintf("pool payouts --json: %v\n%s", err, out)
		}
		var mine []api.PoolShare
		for _, s := range pp.Shares {
			if s.JobID == id {
				mine = append(mine, s)
			}
		}
		if len(mine) != 1 {
			return false, out
		}
		booked = mine[0]
		return true, ""
	})
	if !strings.EqualFold(booked.Member, worker.account.Hex()) || booked.Wei != want.String() || booked.GPUSeconds <= 0 || booked.Score <= 0 {
		t.Errorf("job %s's share: %+v; want %s's, %s wei (reward less the pool's %d bps), for its GPU-seconds and score", id, booked, worker.account.Hex(), want, poolFee)
	}
	// Each member sees its own: the worker its share, booked; the others nothing.
	for _, m := range p.members {
		pp, out, err := payoutsOf(t, m)
		if err != nil {
			t.Errorf("%s: pool payouts --json: %v\n%s", m.name, err, out)
			continue
		}
		owed := "0"
		if m == worker {
			owed = want.String()
		}
		if pp.Role != "member" || pp.Owed.BookedWei != owed || (m == worker) != (len(pp.Shares) == 1) {
			t.Errorf("%s's payouts: role %q, booked %s wei, %d shares; want member, %s wei:\n%s", m.name, pp.Role, pp.Owed.BookedWei, len(pp.Shares), owed, out)
		}
	}

	// Published, then claimed by the worker: exactly the share, less the claim's gas.
	if out, err := p.coordinator.cli(t, "pool", "publish"); err != nil {
		t.Fatalf("pool publish: %v\n%s", err, out)
	}
	pp, out, err := payoutsOf(t, worker)
	if err != nil || pp.Owed.PublishedWei != want.String() || len(pp.Payouts) != 1 || pp.Payouts[0].Claimed {
		t.Fatalf("%s's payouts after publishing (%v): published %s wei, payouts %+v; want %s wei to claim:\n%s", worker.name, err, pp.Owed.PublishedWei, pp.Payouts, want, out)
	}
	// The worker's status says what the pool owes it (as last asked of the coordinator,
	// which pool payouts just did).
	if st, err := worker.api().Status(t.Context()); err != nil || st.PoolOwed == nil || st.PoolOwed.PublishedWei != want.String() {
		t.Errorf("%s's status: pool owed %+v (%v), want %s wei published", worker.name, st.PoolOwed, err, want)
	}
	if out, err := worker.cli(t, "status"); err != nil || !strings.Contains(out, "Pool owes you:") {
		t.Errorf("%s's status lacks what the pool owes it (%v):\n%s", worker.name, err, out)
	}
	before := p.balance(t, worker.account)
	out, err = worker.cli(t, "pool", "claim")
	if err != nil {
		t.Fatalf("%s: pool claim: %v\n%s", worker.name, err, out)
	}
	claims := p.claims(t, worker.account)
	if len(claims) != 1 || claims[0].amount.Cmp(want) != 0 {
		t.Fatalf("%s claimed %+v, want one claim of %s:\n%s", worker.name, claims, want, out)
	}
	if c := p.payoutsCoordinator(t, claims[0].contract); c != p.coordinator.account || !strings.EqualFold(pp.Contract, claims[0].contract.Hex()) {
		t.Errorf("the PoolPayouts contract %s pays for %s; want the pool's account %s and the contract its payouts name, %s", claims[0].contract.Hex(), c.Hex(), p.coordinator.account.Hex(), pp.Contract)
	}
	gained := new(big.Int).Sub(p.balance(t, worker.account), before)
	if exp := new(big.Int).Sub(want, p.gasCost(t, claims[0].tx.Hex())); gained.Cmp(exp) != 0 {
		t.Errorf("%s's balance moved by %s, want its share %s − gas = %s", worker.name, gained, want, exp)
	}
	if pp, out, err := payoutsOf(t, worker); err != nil || pp.Owed.ClaimedWei != want.String() || pp.Owed.PublishedWei != "0" {
		t.Errorf("%s's payouts after claiming (%v): %+v; want %s wei claimed, none left:\n%s", worker.name, err, pp.Owed, want, out)
	}
	// Nothing is paid twice, and nobody else is paid.
	if out, err := worker.cli(t, "pool", "claim"); err != nil {
		t.Errorf("%s: a second pool claim: %v\n%s", worker.name, err, out)
	}
	if claims := p.claims(t, worker.account); len(claims) != 1 {
		t.Errorf("%s has %d claims after claiming twice, want 1", worker.name, len(claims))
	}
	for _, m := range p.members {
		if m != worker {
			if c := p.claims(t, m.account); len(c) != 0 {
				t.Errorf("%s, which did no work, claimed %+v", m.name, c)
			}
		}
	}
}

// hostTargets are host:port addresses of a listener on every non-loopback address of
// the host (the docker bridge's gateway among them): what a job's container must not
// reach. accepted counts the connections the listener took.
func hostTargets(t *testing.T) ([]string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		ip, ok := a.(*net.IPNet)
		if !ok || ip.IP.IsLoopback() || ip.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, net.JoinHostPort(ip.IP.String(), fmt.Sprint(port)))
	}
	if len(out) == 0 {
		t.Fatal("the host has no non-loopback address to probe")
	}
	return append(out, "192.0.2.1:80"), accepted // and TEST-NET-1, which routes nowhere
}

// ddpManifest is the multi-rig job: examples/ddp's trainer with gloo on CPU across
// nodes rigs, each rank probing the network first (targets) and on the host's Python.
func (p *poolNet) ddpManifest(t *testing.T, nodes int, targets []string) []byte {
	t.Helper()
	var inputs []any
	for tag, dir := range hostSystem {
		if _, err := os.Stat(dir); err == nil {
			inputs = append(inputs, map[string]any{"dataset": tag, "path": dir})
		}
	}
	m := map[string]any{
		"version": 1,
		"image":   p.images["ddp"],
		"command": []any{hostPython, "/probe.py", "--out", "/out", "--timeout", "120"},
		"env": map[string]any{
			"PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "PROBE_TARGETS": strings.Join(targets, ","),
		},
		"resources":    map[string]any{"gpus": 0, "cpus": 1, "memory_mib": 2048, "nodes": nodes},
		"inputs":       inputs,
		"output":       map[string]any{"path": "/out", "max_bytes": 64 << 20},
		"max_duration": "4m",
		"network":      map[string]any{"mode": "none"},
		"evaluation": map[string]any{
			"image":   p.images["ddpeval"],
			"command": []any{"/ddpeval", "-checkpoint", "/checkpoint", "-out", "/out", "-ranks", fmt.Sprint(nodes)},
			"metric":  "accuracy", "threshold": 0.9,
		},
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return b
}

var probeLine = regexp.MustCompile(`(?m)^probe (\{.*\})$`)

// checkProbe fails the test if a probe's report says it reached one of its targets.
func checkProbe(t *testing.T, who string, report []byte, targets []string) {
	t.Helper()
	var r map[string]string
	if err := json.Unmarshal(report, &r); err != nil {
		t.Errorf("%s: probe report: %v\n%s", who, err, report)
		return
	}
	for _, a := range targets {
		if res, ok := r["tcp:"+a]; !ok || res == "connected" {
			t.Errorf("%s: probe of %s: %q", who, a, res)
		}
	}
	if res := r["dns:example.com"]; res == "" || res == "resolved" {
		t.Errorf("%s: name lookup: %q", who, res)
	}
}

// TestPoolTwoNodeDDP is pools' acceptance 2: a job asking for two nodes runs
// examples/ddp's trainer with gloo on CPU PyTorch across two member daemons (containers
// on the same dockerd, one process per rank from the rendezvous environment); both ranks
// join, rank 0's checkpoint is validated and paid; each rank's probe reached nothing but
// its peer (the rendezvous itself is the peer's reachability).
func TestPoolTwoNodeDDP(t *testing.T) {
	p := startPool(t, poolOpts{members: 2, heartbeat: time.Second, bound: 5 * time.Second, ddp: true})
	targets, accepted := hostTargets(t)
	id, _ := p.post(t, p.ddpManifest(t, 2, targets), "10m")
	p.waitPaid(t, id, 4*time.Minute)

	held := p.holders(t, id)
	if len(held) != 2 {
		t.Fatalf("%d members hold job %s, want both:\n%s", len(held), id, p.describe(t, id))
	}
	rank0 := ""
	for m, rec := range held {
		if rec.Posting.Source != jobs.SourcePool {
			t.Errorf("%s's record of job %s has source %q, want pool", m.name, id, rec.Posting.Source)
		}
		rc, err := m.api().JobLogs(t.Context(), rec.ID, false)
		if err != nil {
			t.Fatalf("%s: logs of job %s: %v", m.name, rec.ID, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		log := string(b)
		rank := 1
		if strings.Contains(log, "rank 0 of 2 joined") {
			rank, rank0 = 0, rec.OutputCID
		}
		for _, want := range []string{
			fmt.Sprintf("rank %d of 2 joined (node %d, backend gloo, device cpu)", rank, rank),
			fmt.Sprintf("rank %d: replicas in sync: True", rank),
		} {
			if !strings.Contains(log, want) {
				t.Errorf("%s (rank %d): log lacks %q:\n%s", m.name, rank, want, log)
			}
		}
		if pr := probeLine.FindStringSubmatch(log); pr == nil {
			t.Errorf("%s (rank %d): no probe line in the log:\n%s", m.name, rank, log)
		} else {
			checkProbe(t, fmt.Sprintf("%s (rank %d)", m.name, rank), []byte(pr[1]), targets)
			t.Logf("%s (rank %d) probe: %s", m.name, rank, pr[1])
		}
		if rank != 0 && rec.OutputCID != "" {
			t.Errorf("%s (rank 1) published %s: only rank 0's output is the checkpoint", m.name, rec.OutputCID)
		}
	}
	pj := p.waitPoolJob(t, id, "paid")
	ranks := map[int]string{}
	for _, a := range pj.Members {
		ranks[a.Rank] = strings.ToLower(a.Account)
	}
	if pj.Nodes != 2 || len(pj.Members) != 2 || len(ranks) != 2 || ranks[0] == ranks[1] || pj.Reassignments != 0 {
		t.Errorf("the coordinator's record of job %s: %+v; want ranks 0 and 1 on two members", id, pj)
	}
	subs := p.submissions(t, id)
	if len(subs) != 1 || rank0 == "" || subs[0].CheckpointCID != rank0 {
		t.Fatalf("job %s: submissions %+v; rank 0 published %q", id, subs, rank0)
	}
	dir, names := p.fetch(t, id)
	if strings.Join(names, ",") != "metrics.json,model.pt,probe.json" {
		t.Errorf("checkpoint holds %v, want rank 0's metrics.json, model.pt and probe.json", names)
	}
	var m struct {
		WorldSize int    `json:"world_size"`
		Backend   string `json:"backend"`
		InSync    bool   `json:"replicas_in_sync"`
		Ranks     []struct {
			Rank     int `json:"rank"`
			NodeRank int `json:"node_rank"`
		} `json:"ranks"`
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err := json.Unmarshal(raw, &m); err != nil || m.WorldSize != 2 || m.Backend != "gloo" || !m.InSync || len(m.Ranks) != 2 || m.Ranks[1].NodeRank != 1 {
		t.Errorf("rank 0's metrics (%v): %s", err, raw)
	}
	probe, _ := os.ReadFile(filepath.Join(dir, "probe.json"))
	checkProbe(t, "rank 0's published probe", probe, targets)
	if n := accepted.Load(); n != 0 {
		t.Errorf("the host listener took %d connections: a container reached the host", n)
	}
	// The job's cluster network goes with its last container.
	p.waitFor(t, "removal of job "+id+"'s cluster network", 30*time.Second, func() (bool, string) {
		out, err := exec.Command("docker", "network", "ls", "-q", "--filter", "label="+docker.LabelCluster).Output()
		if err != nil {
			return false, err.Error()
		}
		for _, nw := range strings.Fields(string(out)) {
			lab, _ := exec.Command("docker", "network", "inspect", "-f", `{{index .Labels "`+docker.LabelInstance+`"}}`, nw).Output()
			for _, inst := range p.instances {
				if strings.TrimSpace(string(lab)) == inst {
					return false, "left: " + nw + " of " + inst
				}
			}
		}
		return true, ""
	})
}

// TestPoolMemberKilledMidJob is pools' acceptance 3: the member running a dispatched job
// is killed with SIGKILL; the coordinator notices within its heartbeat bound and gives
// the job to the other member, whose result is paid, once. The killed member, started
// again, finds its result refused and leaves nothing behind.
func TestPoolMemberKilledMidJob(t *testing.T) {
	const bound = 3 * time.Second
	p := startPool(t, poolOpts{members: 2, heartbeat: 500 * time.Millisecond, bound: bound})
	// A job that trains for some seconds: long enough to be killed while it runs.
	id, _ := p.post(t, p.manifest(t, func(m map[string]any) {
		m["command"] = []any{"/trainer", "-data", "/data/digits.csv.gz", "-out", "/out", "-epochs", "6000"}
	}), "10m")
	var victim *member
	p.until(t, "running container of job "+id+" on any member", 2*time.Minute, func() bool {
		for m, rec := range p.holders(t, id) {
			if rec.State == jobs.Running && len(p.running(m)) > 0 {
				victim = m
				return true
			}
		}
		return false
	}, id)
	victim.kill(t)
	killed := time.Now()
	var survivor *member
	for _, m := range p.members {
		if m != victim {
			survivor = m
		}
	}
	p.until(t, "reassignment of job "+id+" to "+survivor.name, 30*time.Second, func() bool {
		_, ok, err := poolJob(t.Context(), survivor, id)
		return err == nil && ok
	}, id)
	took := time.Since(killed)
	t.Logf("job %s reassigned %s after the kill (heartbeat bound %s)", id, took.Round(10*time.Millisecond), bound)
	// Gone once no heartbeat came for the bound; the dispatch follows at once.
	if took > bound+5*time.Second {
		t.Errorf("job %s reassigned %s after the member was killed, want within the heartbeat bound %s (+5s to dispatch)", id, took, bound)
	}
	pm, out, err := p.poolMembers(t)
	if err != nil {
		t.Fatalf("pool members: %v\n%s", err, out)
	}
	for _, m := range pm.Members {
		if strings.EqualFold(m.Account, victim.account.Hex()) && m.Alive {
			t.Errorf("the coordinator still counts the killed member alive: %+v", m)
		}
	}
	p.waitPaid(t, id, 3*time.Minute)
	pj := p.waitPoolJob(t, id, "paid")
	if pj.Reassignments != 1 || len(pj.Members) != 1 || !strings.EqualFold(pj.Members[0].Account, survivor.account.Hex()) ||
		len(pj.Past) != 1 || !strings.EqualFold(pj.Past[0].Account, victim.account.Hex()) || pj.Past[0].Reason == "" {
		t.Errorf("the coordinator's record of job %s: %+v; want it taken from %s with a reason and done by %s", id, pj, victim.name, survivor.name)
	}
	for _, a := range pj.Past {
		t.Logf("taken from %s: %s", a.Member, a.Reason)
	}
	rec, _, _ := poolJob(t.Context(), survivor, id)
	subs := p.submissions(t, id)
	if len(subs) != 1 || subs[0].CheckpointCID != rec.OutputCID || rec.OutputCID == "" {
		t.Fatalf("job %s: %d submissions (%+v), want one, of %s's checkpoint %q", id, len(subs), subs, survivor.name, rec.OutputCID)
	}

	// The killed member comes back: its container, which outlived it, is dealt with, its
	// late result is refused, and the chain still has one submission.
	victim.start(t)
	p.waitFor(t, "end of job "+id+" on the restarted "+victim.name+", with its container removed", 90*time.Second, func() (bool, string) {
		j, ok, err := poolJob(t.Context(), victim, id)
		if err != nil || !ok {
			return false, fmt.Sprintf("record: %v %v", ok, err)
		}
		final := j.State == jobs.Failed || j.State == jobs.Lost || j.State == jobs.Declined || j.State == jobs.Expired
		left := p.containers(victim)
		return final && len(left) == 0, fmt.Sprintf("%s: %s (%s); containers left: %v\n%s", victim.name, j.State, j.Reason, left, tail(victim.d.stderr.String(), 30))
	})
	if j, _, err := poolJob(t.Context(), victim, id); err == nil {
		t.Logf("%s's record after its return: %s (%s)", victim.name, j.State, j.Reason)
	}
	if subs := p.submissions(t, id); len(subs) != 1 {
		t.Errorf("job %s: %d results submitted after the killed member's return, want 1", id, len(subs))
	}
}
