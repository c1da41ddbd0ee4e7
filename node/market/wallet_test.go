package market

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestWalletFilesOpenInGeth: a key made by the wallet decrypts with go-ethereum's
// keystore, and geth's keystore sees it as an account.
func TestWalletFilesOpenInGeth(t *testing.T) {
	dir := t.TempDir()
	w := NewWallet(dir, true)
	addr, err := w.New("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "UTC--*"))
	if len(files) != 1 {
		t.Fatalf("key files %v", files)
	}
	if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(files[0])
	k, err := keystore.DecryptKey(b, "s3cret")
	if err != nil {
		t.Fatalf("geth cannot decrypt: %v", err)
	}
	if k.Address != addr || crypto.PubkeyToAddress(k.PrivateKey.PublicKey) != addr {
		t.Fatalf("geth decrypted %s, want %s", k.Address, addr)
	}
	if _, err := keystore.DecryptKey(b, "wrong"); err == nil {
		t.Fatal("wrong password decrypted")
	}
	ks := keystore.NewKeyStore(dir, keystore.LightScryptN, keystore.LightScryptP)
	if !ks.HasAddress(addr) {
		t.Fatalf("geth's keystore does not list %s", addr)
	}
	if _, err := w.Unlock(addr, "wrong"); err == nil {
		t.Fatal("unlock with a wrong password")
	}
	if got, err := w.Unlock(addr, "s3cret"); err != nil || crypto.PubkeyToAddress(got.PublicKey) != addr {
		t.Fatalf("unlock: %v", err)
	}
}

// TestWalletImportsGethKeys: a key created by geth's keystore imports and unlocks.
func TestWalletImportsGethKeys(t *testing.T) {
	gethDir := t.TempDir()
	ks := keystore.NewKeyStore(gethDir, keystore.LightScryptN, keystore.LightScryptP)
	acc, err := ks.NewAccount("geth-pass")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(acc.URL.Path)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWallet(t.TempDir(), true)
	if _, err := w.ImportKeyJSON(b, "bad", "new-pass"); err == nil {
		t.Fatal("import with a wrong password succeeded")
	}
	addr, err := w.ImportKeyJSON(b, "geth-pass", "new-pass")
	if err != nil {
		t.Fatal(err)
	}
	if addr != acc.Address {
		t.Fatalf("imported %s, want %s", addr, acc.Address)
	}
	if _, err := w.ImportKeyJSON(b, "geth-pass", "x"); err == nil {
		t.Fatal("second import of the same key succeeded")
	}
	list, err := w.List()
	if err != nil || len(list) != 1 || list[0] != acc.Address {
		t.Fatalf("list %v %v", list, err)
	}
	if _, err := w.Unlock(addr, "new-pass"); err != nil {
		t.Fatal(err)
	}
	// A raw hex key imports too.
	k, _ := crypto.GenerateKey()
	hexAddr, err := w.ImportHex("0x"+hex.EncodeToString(crypto.FromECDSA(k)), "p")
	if err != nil || hexAddr != crypto.PubkeyToAddress(k.PublicKey) {
		t.Fatalf("import hex: %s %v", hexAddr, err)
	}
}

func TestPasswordSource(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(f, []byte("from-file\nignored\n"), 0o600)
	t.Setenv("GPUNODE_TEST_PW", "from-env")
	for _, tc := range []struct {
		name string
		src  PasswordSource
		want string
	}{
		{"file wins", PasswordSource{File: f, Env: "GPUNODE_TEST_PW"}, "from-file"},
		{"env", PasswordSource{Env: "GPUNODE_TEST_PW"}, "from-env"},
		{"prompt", PasswordSource{Env: "GPUNODE_UNSET_PW", Prompt: "pw: ", In: strings.NewReader("typed\n")}, "typed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.src.Read()
			if err != nil || got != tc.want {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
	if _, err := (PasswordSource{}).Read(); err == nil {
		t.Fatal("no source gave a password")
	}
}

func FuzzKeyFileAddress(f *testing.F) {
	for _, s := range []string{
		`{"address":"0x0000000000000000000000000000000000000001","crypto":{},"version":3}`,
		`{"address":"zz","crypto":{},"version":3}`, `{}`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = KeyFileAddress(b)
	})
}
