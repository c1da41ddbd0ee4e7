package jobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/job/seal"
	"github.com/gpunode/gpunode/node/sealkey"
)

// With a Sealer (JobMarket v2) the machine publishes only the sealed checkpoint and
// submits the ciphertext's hash; the key stays with the provider.
func TestJobOutputSealed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		ks, err := sealkey.OpenKeyStore(filepath.Join(r.dir, "sealkeys"), big.NewInt(1337),
			common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3"), common.HexToAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"))
		if err != nil {
			t.Fatal(err)
		}
		r.deps.Sealer = ks
		r.start()
		p := r.postWith("7", manifestJSON(nil), func(p *Posting) { p.Sealed = true })
		j := r.waitState("7", Submitted)
		if !j.Posting.Sealed || p.ID != "7" {
			t.Fatalf("posting %+v", j.Posting)
		}
		pub := r.content.published[j.OutputCID]
		entries, _ := os.ReadDir(pub)
		if len(entries) != 1 || entries[0].Name() != seal.FileName {
			t.Fatalf("published %v, want only %s", entries, seal.FileName)
		}
		raw, _ := os.ReadFile(filepath.Join(pub, seal.FileName))
		if bytes.Contains(raw, []byte("weights")) || bytes.Contains(raw, []byte("model.bin")) {
			t.Fatal("the published checkpoint shows its content")
		}
		sum := sha256.Sum256(raw)
		if j.OutputHash != hex.EncodeToString(sum[:]) || r.chain.submitted["7"][1] != j.OutputHash {
			t.Fatalf("output hash %s, submitted %v; want the ciphertext's sha256", j.OutputHash, r.chain.submitted["7"])
		}
		k, b, err := ks.SealKey(t.Context(), big.NewInt(7))
		if err != nil || j.KeyHash != k.Commitment().Hex() {
			t.Fatalf("key hash %s, want keccak256 of the stored key (%v)", j.KeyHash, err)
		}
		out := t.TempDir()
		if err := seal.OpenTree(bytes.NewReader(raw), out, k, b, 1<<20); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(out, "model.bin")); string(got) != "weights" {
			t.Fatalf("opened checkpoint holds %q", got)
		}
	})
}

// A v1 job on a node that seals is still published in the clear; a v2 job on a node that
// cannot seal fails rather than publish its output.
func TestJobOutputSealedOnlyForV2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.start()
		r.postWith("8", manifestJSON(nil), func(p *Posting) { p.Sealed = true })
		j := r.waitState("8", Failed)
		if !strings.Contains(j.Reason, "seals no output") || len(r.content.published) != 0 {
			t.Fatalf("reason %q, published %v", j.Reason, r.content.published)
		}
	})
}

func TestIsJobID(t *testing.T) {
	for id, want := range map[string]bool{"7": true, "v2-7": true, "v2-": false, "v2-07": false, "v3-7": false, "duty-7": false, "validate-v2-7": false, "0": false} {
		if IsJobID(id) != want {
			t.Errorf("IsJobID(%q) = %v, want %v", id, !want, want)
		}
	}
}
