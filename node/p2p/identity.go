package p2p

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/crypto/pb"

	"github.com/gpunode/gpunode/node/datadir"
)

// ErrCorruptIdentity means the identity key file exists but cannot be used. It is never
// replaced automatically: a new key would be a new peer ID, and every record, DHT entry
// and on-chain registration made under the old one would be orphaned.
var ErrCorruptIdentity = errors.New("identity key is corrupt")

// IdentityPath is where the node's libp2p key lives under its data directory.
func IdentityPath(dataDir string) string { return datadir.New(dataDir).Identity() }

// LoadIdentity reads the Ed25519 key at path, creating it (mode 0600) if absent.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return parseIdentity(path, b)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: generate: %w", path, err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	// Write to a temporary file and link it into place so that a crash never
	// leaves a half-written key, and a concurrent start never overwrites one.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".identity-*")
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(raw)
		if err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("identity key %s: write: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadIdentity(path)
		}
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	return key, nil
}

func parseIdentity(path string, b []byte) (crypto.PrivKey, error) {
	key, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v; restore it from a backup, or delete it to start over with a new peer ID", ErrCorruptIdentity, path, err)
	}
	if key.Type() != pb.KeyType_Ed25519 {
		return nil, fmt.Errorf("%w: %s holds a %s key, want Ed25519", ErrCorruptIdentity, path, key.Type())
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity key %s: mode %#o lets other users read the node's private key; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return key, nil
}

// SigningKey returns the identity at path (created if absent) as a standard Ed25519
// key, so what the node vouches for — its benchmark reports — is signed by the key its
// peer ID names.
func SigningKey(path string) (ed25519.PrivateKey, error) {
	k, err := LoadIdentity(path)
	if err != nil {
		return nil, err
	}
	raw, err := k.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("identity key %s: not an Ed25519 key: %w", path, ErrCorruptIdentity)
	}
	return ed25519.PrivateKey(raw), nil
}
