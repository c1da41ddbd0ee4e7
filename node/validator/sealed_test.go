package validator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/job/seal"
)

// fakeKeys is the provider's end of node/sealkey: it hands out key (or err), checked
// against the commitment as sealkey.Fetch checks it.
type fakeKeys struct {
	mu    sync.Mutex
	key   seal.Key
	err   error
	calls int
}

func (k *fakeKeys) Key(_ context.Context, _ string, _ seal.Binding, want common.Hash) (seal.Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.err != nil {
		return seal.Key{}, k.err
	}
	if !k.key.Matches(want) {
		return seal.Key{}, fmt.Errorf("%w: not the committed key", seal.ErrWrongKey)
	}
	return k.key, nil
}

// fakeCR is JobMarket v2's commit and reveal for one validator: a reveal must match the
// commitment, as the contract checks it.
type fakeCR struct {
	mu         sync.Mutex
	self       common.Address
	committed  map[string]common.Hash
	revealed   map[string]uint32
	commits    int
	revealFail int
}

func (c *fakeCR) Commit(_ context.Context, id string, h common.Hash) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.committed[id]; ok {
		if prev != h {
			return "", errors.New("execution reverted: AlreadyCommitted")
		}
		return "0xcommit", nil
	}
	c.committed[id] = h
	c.commits++
	return "0xcommit", nil
}

func (c *fakeCR) Reveal(_ context.Context, id string, score uint32, salt common.Hash) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revealFail > 0 {
		c.revealFail--
		return "", errors.New("rpc: connection refused")
	}
	n, _ := new(big.Int).SetString(id, 10)
	if Commitment(score, salt, c.self, n) != c.committed[id] {
		return "", errors.New("execution reverted: WrongReveal")
	}
	c.revealed[id] = score
	return "0xreveal", nil
}

type sealedSetup struct {
	*setup
	keys    *fakeKeys
	cr      *fakeCR
	binding seal.Binding
	logs    *bytes.Buffer
}

var (
	testContract = common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3")
	testProvider = common.HexToAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
	testSelf     = common.HexToAddress("0x90F79bf6EB2c4f870365E785982E1f101E93b906")
)

// publishSealed seals ckpt for b with k into a fresh directory, as a provider publishes
// it, and returns the directory and the ciphertext's hash.
func publishSealed(t *testing.T, ckpt string, k seal.Key, b seal.Binding) (string, string) {
	t.Helper()
	pub := t.TempDir()
	f, err := os.Create(filepath.Join(pub, SealedFile))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if err := seal.SealTree(io.MultiWriter(f, h), ckpt, k, b); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return pub, hex.EncodeToString(h.Sum(nil))
}

func newSealedSetup(t *testing.T, eval func(string, string) int) *sealedSetup {
	s := &sealedSetup{setup: newSetup(t, eval), logs: &bytes.Buffer{}}
	k, _ := seal.NewKey()
	s.keys = &fakeKeys{key: k}
	s.cr = &fakeCR{self: testSelf, committed: map[string]common.Hash{}, revealed: map[string]uint32{}}
	s.binding = seal.Binding{ChainID: big.NewInt(1337), Contract: testContract, JobID: big.NewInt(7), Provider: testProvider}
	ckpt := s.v.content.(fakeContent).dirs["bafyckpt"]
	pub, hash := publishSealed(t, ckpt, k, s.binding)
	s.v.content.(fakeContent).dirs["bafysealed"] = pub
	s.v.log = slog.New(slog.NewTextHandler(s.logs, nil))
	s.v.SetSealed(s.keys, s.cr, testSelf)
	s.task.CheckpointCID, s.task.ResultHash = "bafysealed", "0x"+hash
	s.task.Sealed = &Sealed{ChainID: "1337", Contract: testContract.Hex(), Provider: testProvider.Hex(), ProviderPeer: "12D3KooWprovider",
		KeyHash: k.Commitment().Hex(), KeyBy: time.Now().Add(time.Minute)}
	return s
}

func TestSealedCommitThenReveal(t *testing.T) {
	s := newSealedSetup(t, func(ckpt, out string) int {
		// The evaluation sees the opened checkpoint, not the ciphertext.
		if b, err := os.ReadFile(filepath.Join(ckpt, "model.json")); err != nil || string(b) != `{"w":1}` {
			return 3
		}
		return writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`)(ckpt, out)
	})
	v, err := s.v.Validate(t.Context(), s.task)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Pass || v.Score != 950000 || v.Tx != "0xreveal" {
		t.Fatalf("verdict %+v, want a pass of 950000 revealed", v)
	}
	if got := s.cr.revealed["7"]; got != 950000 || s.cr.commits != 1 {
		t.Fatalf("revealed %d after %d commits", got, s.cr.commits)
	}
	j, _ := s.st.Get(key("7"))
	var rec sealedRecord
	json.Unmarshal(j.Data, &rec)
	if j.State != stateRevealed || rec.Salt == (common.Hash{}) {
		t.Fatalf("store: state %s, salt set %v", j.State, rec.Salt != (common.Hash{}))
	}
	// The salt is the validator's secret until the reveal: not in the verdict, not logged.
	salt := hex.EncodeToString(rec.Salt[:])
	vj, _ := json.Marshal(v)
	if strings.Contains(string(vj), salt) || strings.Contains(s.logs.String(), salt) {
		t.Fatal("the salt shows in the verdict or the log")
	}
	// Done once: a second call neither evaluates nor commits again.
	if _, err := s.v.Validate(t.Context(), s.task); err != nil || s.rt.starts != 1 || s.cr.commits != 1 {
		t.Fatalf("second Validate: %v, %d evaluations, %d commits", err, s.rt.starts, s.cr.commits)
	}
}

func TestSealedRevealSurvivesARestart(t *testing.T) {
	s := newSealedSetup(t, writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`))
	s.cr.revealFail = 1
	if _, err := s.v.Validate(t.Context(), s.task); err == nil {
		t.Fatal("Validate succeeded though the reveal failed")
	}
	if j, _ := s.st.Get(key("7")); j.State != stateRevealing {
		t.Fatalf("state %s after a failed reveal, want %s", j.State, stateRevealing)
	}
	// A new validator on the same store (the daemon restarted) reveals the committed
	// score with the stored salt, without evaluating or committing again.
	v2 := New(Default(), s.st, s.chain, s.v.content, s.rt, s.v.workDir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	v2.SetSealed(s.keys, s.cr, testSelf)
	verdict, err := v2.Validate(t.Context(), s.task)
	if err != nil {
		t.Fatal(err)
	}
	if verdict.Score != 950000 || s.cr.revealed["7"] != 950000 || s.rt.starts != 1 || s.cr.commits != 1 {
		t.Fatalf("after restart: verdict %+v, revealed %d, %d evaluations, %d commits", verdict, s.cr.revealed["7"], s.rt.starts, s.cr.commits)
	}
}

func TestSealedDirection(t *testing.T) {
	for _, c := range []struct {
		loss string
		pass bool
	}{{"0.2", true}, {"0.5", true}, {"0.7", false}} {
		s := newSealedSetup(t, writeResult(`{"version":1,"metrics":{"loss":`+c.loss+`}}`))
		s.task.Metric, s.task.Threshold, s.task.Sealed.LowerIsBetter = "loss", 500000, true
		v, err := s.v.Validate(t.Context(), s.task)
		if err != nil {
			t.Fatal(err)
		}
		if v.Pass != c.pass {
			t.Errorf("loss %s against 0.5, lower is better: pass %v, want %v", c.loss, v.Pass, c.pass)
		}
	}
}

// What the provider controls fails its own job: the validator commits a score of 0.
func TestSealedProviderFaultsScoreZero(t *testing.T) {
	cases := []struct {
		name   string
		mut    func(t *testing.T, s *sealedSetup)
		reason string
	}{
		{"checkpoint copied from another job", func(t *testing.T, s *sealedSetup) {
			other := s.binding
			other.JobID = big.NewInt(6)
			pub, hash := publishSealed(t, s.v.content.(fakeContent).dirs["bafyckpt"], s.keys.key, other)
			s.v.content.(fakeContent).dirs["bafycopy"] = pub
			s.task.CheckpointCID, s.task.ResultHash = "bafycopy", hash
		}, "made for another job"},
		{"ciphertext not the one on chain", func(t *testing.T, s *sealedSetup) {
			s.task.ResultHash = strings.Repeat("ab", 32)
		}, "the chain says"},
		{"key withheld", func(t *testing.T, s *sealedSetup) {
			s.keys.err = errors.New("key request refused: not_drawn")
			s.task.Sealed.KeyBy = time.Now().Add(50 * time.Millisecond)
		}, "did not deliver the checkpoint's key"},
		{"key not the committed one", func(t *testing.T, s *sealedSetup) {
			s.keys.key, _ = seal.NewKey()
		}, "does not match the commitment"},
		{"no sealed file", func(t *testing.T, s *sealedSetup) {
			s.task.CheckpointCID = "bafyckpt" // the plain tree
		}, "holds no " + SealedFile},
		{"tampered ciphertext", func(t *testing.T, s *sealedSetup) {
			pub := s.v.content.(fakeContent).dirs["bafysealed"]
			b, _ := os.ReadFile(filepath.Join(pub, SealedFile))
			b[len(b)-3] ^= 1
			os.WriteFile(filepath.Join(pub, SealedFile), b, 0o644)
			sum := sha256.Sum256(b)
			s.task.ResultHash = hex.EncodeToString(sum[:])
		}, "corrupt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testenv.Attack(t, "validator", c.name)
			s := newSealedSetup(t, writeResult(`{"version":1,"metrics":{"accuracy":0.99}}`))
			c.mut(t, s)
			v, err := s.v.Validate(t.Context(), s.task)
			if err != nil {
				t.Fatal(err)
			}
			if v.Score != 0 || v.Pass || !strings.Contains(v.Reason, c.reason) {
				t.Fatalf("verdict %+v, want score 0 because %q", v, c.reason)
			}
			if s.rt.starts != 0 {
				t.Fatal("the evaluation ran on a checkpoint that did not check")
			}
			if s.cr.revealed["7"] != 0 || s.cr.commits != 1 {
				t.Fatalf("revealed %d after %d commits, want 0 after 1", s.cr.revealed["7"], s.cr.commits)
			}
		})
	}
}

func TestSealedNeedsItsDependencies(t *testing.T) {
	s := newSealedSetup(t, writeResult(`{"version":1,"metrics":{"accuracy":0.95}}`))
	s.v.SetSealed(nil, nil, common.Address{})
	if _, err := s.v.Validate(t.Context(), s.task); err == nil || !strings.Contains(err.Error(), "judges none") {
		t.Fatalf("got %v, want an error saying the validator judges no sealed results", err)
	}
	s.v.SetSealed(s.keys, s.cr, testSelf)
	s.task.Sealed.Contract = "not an address"
	if _, err := s.v.Validate(t.Context(), s.task); err == nil {
		t.Fatal("a sealed task with a bad contract was judged")
	}
}

// Commitment matches the contract's keccak256(abi.encode(uint32, bytes32, address,
// uint256)): four 32-byte words, the score and the address left-padded.
func TestCommitmentEncoding(t *testing.T) {
	salt := common.HexToHash("0x0102")
	got := Commitment(950000, salt, testSelf, big.NewInt(7))
	var words []byte
	words = append(words, common.LeftPadBytes(big.NewInt(950000).Bytes(), 32)...)
	words = append(words, salt[:]...)
	words = append(words, common.LeftPadBytes(testSelf[:], 32)...)
	words = append(words, common.LeftPadBytes([]byte{7}, 32)...)
	if want := common.BytesToHash(keccak(words)); got != want {
		t.Fatalf("commitment %s, want %s", got.Hex(), want.Hex())
	}
	if Commitment(950001, salt, testSelf, big.NewInt(7)) == got || Commitment(950000, salt, testProvider, big.NewInt(7)) == got {
		t.Fatal("the commitment does not bind the score and the validator")
	}
}

func keccak(b []byte) []byte { return crypto.Keccak256(b) }
