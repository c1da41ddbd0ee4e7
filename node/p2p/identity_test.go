package p2p

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
)

func TestIdentityCreatedOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p2p", "identity.key")
	k1, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity key mode %#o, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("second load returned a different key")
	}
	if k1.Type() != 1 { // Ed25519
		t.Fatalf("key type %v, want Ed25519", k1.Type())
	}
}

func TestIdentityRefusesBadFiles(t *testing.T) {
	secp, _, _ := lcrypto.GenerateSecp256k1Key(nil)
	secpRaw, _ := lcrypto.MarshalPrivateKey(secp)
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		corrupt bool
		want    string
	}{
		{"garbage", []byte("not a key"), 0o600, true, "corrupt"},
		{"empty", nil, 0o600, true, "corrupt"},
		{"truncated", nil, 0o600, true, "corrupt"}, // filled below
		{"wrong key type", secpRaw, 0o600, true, "want Ed25519"},
		{"readable by others", nil, 0o644, false, "chmod 600"},
	}
	good, _, _ := lcrypto.GenerateEd25519Key(nil)
	goodRaw, _ := lcrypto.MarshalPrivateKey(good)
	tests[2].content = goodRaw[:len(goodRaw)/2]
	tests[4].content = goodRaw
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity.key")
			if err := os.WriteFile(path, tt.content, tt.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tt.mode)
			_, err := LoadIdentity(path)
			if err == nil {
				t.Fatal("bad identity file accepted")
			}
			if errors.Is(err, ErrCorruptIdentity) != tt.corrupt {
				t.Errorf("errors.Is(err, ErrCorruptIdentity) = %v, want %v (%v)", !tt.corrupt, tt.corrupt, err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not say %q and name the file", err, tt.want)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tt.content) {
				t.Error("the bad identity file was replaced")
			}
		})
	}
}

// TestRestartKeepsPeerID: the same data directory gives the same peer ID; a corrupt key
// stops the network from starting instead of minting a new identity.
func TestRestartKeepsPeerID(t *testing.T) {
	dir := t.TempDir()
	eth, _ := crypto.GenerateKey()
	deps := Deps{DataDir: dir, EthKey: eth, Snapshot: newRig(0).snapshot}
	start := func() (*Network, error) { return New(t.Context(), loopbackConfig(), deps) }
	n1, err := start()
	if err != nil {
		t.Fatal(err)
	}
	id := n1.ID()
	n1.Close()
	n2, err := start()
	if err != nil {
		t.Fatal(err)
	}
	if n2.ID() != id {
		t.Fatalf("peer ID changed across restart: %s then %s", id, n2.ID())
	}
	if !n2.PrivateKey().GetPublic().Equals(n1.PrivateKey().GetPublic()) {
		t.Fatal("PrivateKey differs across restart")
	}
	n2.Close()

	if err := os.WriteFile(IdentityPath(dir), []byte("\x08\x01\x12\x03bad"), 0o600); err != nil {
		t.Fatal(err)
	}
	n3, err := start()
	if err == nil {
		n3.Close()
		t.Fatal("network started with a corrupt identity key")
	}
	if !errors.Is(err, ErrCorruptIdentity) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("error %v does not say the identity key is corrupt", err)
	}
}
