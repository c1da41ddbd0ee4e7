//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/node/api"
)

// cheatBinary builds gpunode with the test-only tag challengecheat: its rig answers
// capacity challenges computing in bf16 while claiming fp32.
func cheatBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gpunode-cheat")
	cmd := exec.Command("go", "build", "-tags", "challengecheat", "-o", bin, "./cmd/gpunode")
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build gpunode -tags challengecheat: %v\n%s", err, out)
	}
	return bin
}

// challengeConfig is p2pConfig with small challenges, so that the test is quick, and
// records republished every 2 s, so that a rig's new attestations travel quickly.
func challengeConfig(t *testing.T, ip string, bootstrap []string) string {
	t.Helper()
	cfg := loopbackConfig(ip, bootstrap)
	cfg.P2P.RepublishInterval = configfile.Duration(2 * time.Second)
	cfg.Challenge.N = 512
	return writeConfig(t, cfg)
}

// TestChallengeThreeDaemons: three daemons on loopback; the first challenges the second
// (honest) and the third (built with a cheating prover) over libp2p. Its `gpunode market
// --json` shows the second verified and the third failed; the second holds the signed
// attestation, so a manifest with resources.min_verified_score passes its policy, while
// the cheat's policy declines it.
func TestChallengeThreeDaemons(t *testing.T) {
	ctx := context.Background()
	cheat := cheatBinary(t)
	a := startDaemon(t, "--config", challengeConfig(t, "127.0.0.1", nil))
	var boot string
	for end := time.Now().Add(30 * time.Second); boot == "" && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		p, err := api.NewClient(a.socket).P2PPeers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, addr := range p.Addrs {
			if strings.HasPrefix(addr, "/ip4/127.0.0.1/tcp/") {
				boot = addr
			}
		}
	}
	if boot == "" {
		t.Fatalf("first daemon has no loopback TCP address:\n%s", a.stderr)
	}
	b := startDaemon(t, "--config", challengeConfig(t, "127.0.0.2", []string{boot}))
	c := startDaemonBin(t, cheat, t.TempDir(), "--config", challengeConfig(t, "127.0.0.3", []string{boot}))
	id := func(d *daemon) string {
		p, err := api.NewClient(d.socket).P2PPeers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	idB, idC := id(b), id(c)

	challenge := func(peerID string) api.ChallengeResult {
		t.Helper()
		var out string
		var err error
		// The rigs dial in to the first daemon through the bootstrap address; poll until
		// the stream opens.
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			out, err = gpunode(t, "bench", "challenge", peerID, "--json", "--api-socket", a.socket)
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("gpunode bench challenge %s: %v\n%s\nchallenger log:\n%s", peerID, err, out, a.stderr)
		}
		var r api.ChallengeResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("bench challenge --json: %v\n%s", err, out)
		}
		return r
	}
	rb := challenge(idB)
	if !rb.Passed || rb.Verdict != "passed" || rb.VerifiedTFLOPS <= 0 || rb.Device != "cpu" || len(rb.Attestation) == 0 {
		t.Fatalf("honest rig: %+v\nrig log:\n%s", rb, b.stderr)
	}
	rc := challenge(idC)
	if rc.Passed || rc.Verdict != "failed" || (rc.Failed != "row" && rc.Failed != "freivalds") {
		t.Fatalf("cheating rig: %+v\nrig log:\n%s", rc, c.stderr)
	}
	t.Logf("honest: verified %.4f TFLOPS; cheat: %s (%s)", rb.VerifiedTFLOPS, rc.Failed, rc.Reason)

	// The challenger's market shows both verdicts beside the records' claims.
	var m api.P2PMarket
	ok := false
	for end := time.Now().Add(60 * time.Second); !ok && time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		out, err := gpunode(t, "market", "--json", "--api-socket", a.socket)
		if err != nil {
			t.Fatalf("market: %v\n%s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("market --json: %v\n%s", err, out)
		}
		seen := 0
		for _, r := range m.Records {
			switch {
			case r.PeerID == idB && r.Verified != nil && r.Verified.Passed && r.Verified.TFLOPS == rb.VerifiedTFLOPS:
				seen++
			case r.PeerID == idC && r.Verified != nil && !r.Verified.Passed && r.Verified.Failed == rc.Failed:
				seen++
			}
		}
		ok = seen == 2
	}
	if !ok {
		t.Fatalf("the challenger's market does not show B verified and C failed: %+v", m)
	}

	// The honest rig's record carries the attestation: the cheat, which never challenged
	// it, sees it verified by the first daemon.
	idA := id(a)
	ok = false
	for end := time.Now().Add(60 * time.Second); !ok && time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		view, err := api.NewClient(c.socket).P2PMarket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range view.Records {
			if r.PeerID == idB && r.Verified != nil && r.Verified.Passed && r.Verified.By == idA && len(r.Attestations) == 1 {
				ok = true
			}
		}
		m = view
	}
	if !ok {
		t.Fatalf("the honest rig's record, as a third node sees it, carries no attestation by the challenger: %+v", m)
	}

	// resources.min_verified_score: the honest rig holds a passing attestation and takes
	// the job; the cheat holds none and declines it.
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "job", "testdata", "valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "manifest.json")
	body := strings.Replace(string(raw), `"min_score": 100`, `"min_verified_score": 0.000001`, 1)
	if err := os.WriteFile(manifest, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(d *daemon) (string, error) {
		return gpunode(t, "policy", "check", manifest, "--daemon", "--api-socket", d.socket)
	}
	// The rig keeps the attestation the challenger sent after verifying: poll for it.
	var out string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		out, _ = check(b)
		if !strings.Contains(checkFailed(t, out), "resources.min_verified_score") {
			break
		}
	}
	if !strings.Contains(out, "resources.min_verified_score") {
		t.Fatalf("honest rig's policy check does not weigh min_verified_score:\n%s", out)
	}
	if strings.Contains(checkFailed(t, out), "resources.min_verified_score") {
		t.Fatalf("honest rig declines on min_verified_score despite its attestation:\n%s\nrig log:\n%s", out, b.stderr)
	}
	out, _ = check(c)
	if !strings.Contains(checkFailed(t, out), "resources.min_verified_score") {
		t.Fatalf("cheating rig's policy does not decline on min_verified_score:\n%s", out)
	}
}

// checkFailed returns the lines of rules that failed in a policy check's explanation.
func checkFailed(t *testing.T, out string) string {
	t.Helper()
	var failed []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "FAIL ") {
			failed = append(failed, l)
		}
	}
	return strings.Join(failed, "\n")
}
