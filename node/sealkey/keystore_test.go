package sealkey

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/job/seal"
)

func openKS(t *testing.T, dir string) *KeyStore {
	t.Helper()
	ks, err := OpenKeyStore(dir, big.NewInt(1337), common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
		common.HexToAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestKeyStoreKeepsOneKeyPerJob(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sealkeys")
	ks := openKS(t, dir)
	k1, b, err := ks.Make("7")
	if err != nil {
		t.Fatal(err)
	}
	k2, _, _ := ks.Make("7")
	k3, _, _ := openKS(t, dir).Make("7") // after a restart
	if k1 != k2 || k1 != k3 {
		t.Fatal("the same job got different keys")
	}
	if k8, _, _ := ks.Make("8"); k8 == k1 {
		t.Fatal("two jobs share a key")
	}
	if b.JobID.Int64() != 7 || b.ChainID.Int64() != 1337 {
		t.Fatalf("binding %s", b)
	}
	fi, _ := os.Stat(dir)
	kf, _ := os.Stat(ks.path(big.NewInt(7)))
	if fi.Mode().Perm() != 0o700 || kf.Mode().Perm()&0o077 != 0 {
		t.Fatalf("key directory %v, key file %v: others may read them", fi.Mode().Perm(), kf.Mode().Perm())
	}
	if _, _, err := ks.SealKey(t.Context(), big.NewInt(9)); !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("unknown job: %v", err)
	}
	if err := ks.Forget("7"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ks.SealKey(t.Context(), big.NewInt(7)); !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("forgotten job: %v", err)
	}
	if _, _, err := ks.Make("-1"); err == nil {
		t.Fatal("made a key for a negative job id")
	}
	os.WriteFile(ks.path(big.NewInt(10)), []byte(`{"key":"00"}`), 0o600)
	if _, _, err := ks.SealKey(t.Context(), big.NewInt(10)); err == nil || errors.Is(err, ErrUnknownJob) {
		t.Fatalf("malformed key file: %v", err)
	}
}

func TestKeyStoreSeal(t *testing.T) {
	ks := openKS(t, t.TempDir())
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "model.pt"), []byte("weights"), 0o644)
	dst := filepath.Join(t.TempDir(), "checkpoint.sealed")
	resultHash, keyHash, err := ks.Seal(t.Context(), "7", src, dst)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(dst)
	sum := sha256.Sum256(raw)
	if resultHash != hex.EncodeToString(sum[:]) {
		t.Fatal("result hash is not the ciphertext's sha256")
	}
	k, b, _ := ks.SealKey(t.Context(), big.NewInt(7))
	if keyHash != k.Commitment().Hex() {
		t.Fatal("key hash is not keccak256(K)")
	}
	f, _ := os.Open(dst)
	defer f.Close()
	out := t.TempDir()
	if err := seal.OpenTree(f, out, k, b, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "model.pt")); string(got) != "weights" {
		t.Fatalf("opened %q", got)
	}
}
