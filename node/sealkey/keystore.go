package sealkey

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/job/seal"
)

// KeyStore keeps the keys of the checkpoints this provider sealed, one file per job in a
// directory only the node reads, so that a restart seals again with the same key and
// still delivers it. It is the provider's Keys.
type KeyStore struct {
	dir      string
	chainID  *big.Int
	contract common.Address
	provider common.Address
}

// OpenKeyStore opens (making it) the key directory of a provider account on one
// contract of one chain.
func OpenKeyStore(dir string, chainID *big.Int, contract, provider common.Address) (*KeyStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("seal key store: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("seal key store: %w", err)
	}
	ks := &KeyStore{dir: dir, chainID: chainID, contract: contract, provider: provider}
	if err := ks.binding(big.NewInt(0)).Check(); err != nil {
		return nil, err
	}
	return ks, nil
}

func (ks *KeyStore) binding(jobID *big.Int) seal.Binding {
	return seal.Binding{ChainID: ks.chainID, Contract: ks.contract, JobID: jobID, Provider: ks.provider}
}

type keyFile struct {
	Key string `json:"key"`
}

func (ks *KeyStore) path(jobID *big.Int) string {
	return filepath.Join(ks.dir, "job-"+jobID.String()+".key")
}

func parseJobID(id string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(strings.TrimPrefix(id, "v2-"), 10)
	if !ok || n.Sign() < 0 || n.BitLen() > 256 {
		return nil, fmt.Errorf("job %q: not a decimal job id", id)
	}
	return n, nil
}

// Make returns the key of job id, made and stored on first use.
func (ks *KeyStore) Make(id string) (seal.Key, seal.Binding, error) {
	jobID, err := parseJobID(id)
	if err != nil {
		return seal.Key{}, seal.Binding{}, err
	}
	if k, b, err := ks.SealKey(context.Background(), jobID); err == nil || !errors.Is(err, ErrUnknownJob) {
		return k, b, err
	}
	k, err := seal.NewKey()
	if err != nil {
		return seal.Key{}, seal.Binding{}, err
	}
	tmp, err := os.CreateTemp(ks.dir, ".key-*")
	if err != nil {
		return seal.Key{}, seal.Binding{}, fmt.Errorf("seal key store: %w", err)
	}
	defer os.Remove(tmp.Name())
	b, _ := json.Marshal(keyFile{Key: hex.EncodeToString(k[:])})
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return seal.Key{}, seal.Binding{}, fmt.Errorf("seal key store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return seal.Key{}, seal.Binding{}, fmt.Errorf("seal key store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return seal.Key{}, seal.Binding{}, fmt.Errorf("seal key store: %w", err)
	}
	// Link, not rename: if another call stored a key first, keep that one.
	if err := os.Link(tmp.Name(), ks.path(jobID)); err != nil && !errors.Is(err, os.ErrExist) {
		return seal.Key{}, seal.Binding{}, fmt.Errorf("seal key store: %w", err)
	}
	return ks.SealKey(context.Background(), jobID)
}

// SealKey returns the key of a job this provider sealed.
func (ks *KeyStore) SealKey(_ context.Context, jobID *big.Int) (seal.Key, seal.Binding, error) {
	raw, err := os.ReadFile(ks.path(jobID))
	if errors.Is(err, os.ErrNotExist) {
		return seal.Key{}, seal.Binding{}, fmt.Errorf("job %s: %w", jobID, ErrUnknownJob)
	}
	if err != nil {
		return seal.Key{}, seal.Binding{}, fmt.Errorf("seal key of job %s: %w", jobID, err)
	}
	var f keyFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return seal.Key{}, seal.Binding{}, fmt.Errorf("seal key of job %s: %w", jobID, err)
	}
	kb, err := hex.DecodeString(f.Key)
	if err != nil || len(kb) != seal.KeySize {
		return seal.Key{}, seal.Binding{}, fmt.Errorf("seal key of job %s: malformed key file", jobID)
	}
	var k seal.Key
	copy(k[:], kb)
	return k, ks.binding(jobID), nil
}

// Seal seals the tree dir for job id into the file dst with the job's key (made on first
// use) and returns what the provider submits: the sha256 of the ciphertext and
// keccak256(K), hex (jobs.Sealer).
func (ks *KeyStore) Seal(_ context.Context, id, dir, dst string) (resultHash, keyHash string, err error) {
	k, b, err := ks.Make(id)
	if err != nil {
		return "", "", err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	err = seal.SealTree(io.MultiWriter(f, h), dir, k, b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", fmt.Errorf("job %s: seal output: %w", id, err)
	}
	return hex.EncodeToString(h.Sum(nil)), k.Commitment().Hex(), nil
}

// Forget deletes a job's key once nobody needs it from this node (it is on chain, or
// the job ended without payment and the checkpoint must stay closed).
func (ks *KeyStore) Forget(id string) error {
	jobID, err := parseJobID(id)
	if err != nil {
		return err
	}
	if err := os.Remove(ks.path(jobID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
