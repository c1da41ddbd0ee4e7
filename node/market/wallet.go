package market

import (
	"bufio"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/google/uuid"
)

// ErrNoAccount means the keystore holds no key for the address asked for.
var ErrNoAccount = errors.New("no such account in the keystore")

// maxKeyFile bounds a keystore file read from disk (real ones are about 500 bytes).
const maxKeyFile = 64 << 10

// Wallet is a folder of keys in go-ethereum's encrypted JSON keystore format (v3, scrypt),
// so that geth, clef and other Ethereum tools open the same files.
type Wallet struct {
	dir            string
	scryptN, scryP int
}

// NewWallet opens (without creating) the keystore folder dir. light selects cheap scrypt
// parameters, for tests and the dev chain only.
func NewWallet(dir string, light bool) *Wallet {
	w := &Wallet{dir: dir, scryptN: keystore.StandardScryptN, scryP: keystore.StandardScryptP}
	if light {
		w.scryptN, w.scryP = keystore.LightScryptN, keystore.LightScryptP
	}
	return w
}

// Dir is the keystore folder.
func (w *Wallet) Dir() string { return w.dir }

// New creates a random key encrypted with password and returns its address.
func (w *Wallet) New(password string) (common.Address, error) {
	k, err := crypto.GenerateKey()
	if err != nil {
		return common.Address{}, fmt.Errorf("wallet: generate key: %w", err)
	}
	return w.store(k, password)
}

// ImportKeyJSON imports a keystore file (from geth or any v3 keystore), decrypting it with
// password and storing it re-encrypted with newPassword.
func (w *Wallet) ImportKeyJSON(keyJSON []byte, password, newPassword string) (common.Address, error) {
	k, err := keystore.DecryptKey(keyJSON, password)
	if err != nil {
		return common.Address{}, fmt.Errorf("wallet: import: %w", err)
	}
	return w.store(k.PrivateKey, newPassword)
}

// ImportHex imports a raw hex private key.
func (w *Wallet) ImportHex(hexKey, password string) (common.Address, error) {
	k, err := crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(hexKey), "0x"))
	if err != nil {
		return common.Address{}, fmt.Errorf("wallet: import: invalid private key: %w", err)
	}
	return w.store(k, password)
}

func (w *Wallet) store(k *ecdsa.PrivateKey, password string) (common.Address, error) {
	addr := crypto.PubkeyToAddress(k.PublicKey)
	if _, err := w.find(addr); err == nil {
		return addr, fmt.Errorf("wallet: %s is already in %s", addr, w.dir)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return common.Address{}, err
	}
	blob, err := keystore.EncryptKey(&keystore.Key{Id: id, Address: addr, PrivateKey: k}, password, w.scryptN, w.scryP)
	if err != nil {
		return common.Address{}, fmt.Errorf("wallet: encrypt: %w", err)
	}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return common.Address{}, fmt.Errorf("wallet: %w", err)
	}
	// geth's file name, so geth's keystore recognises the file.
	name := filepath.Join(w.dir, keyFileName(addr))
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, blob, 0o600); err != nil {
		return common.Address{}, fmt.Errorf("wallet: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return common.Address{}, fmt.Errorf("wallet: %w", err)
	}
	return addr, nil
}

// keyFileName is geth's name for a key file: UTC--<time>--<address>.
func keyFileName(a common.Address) string {
	return "UTC--" + time.Now().UTC().Format("2006-01-02T15-04-05.000000000Z") + "--" + strings.ToLower(a.Hex()[2:])
}

// List returns the addresses of every key in the folder, sorted.
func (w *Wallet) List() ([]common.Address, error) {
	files, err := w.files()
	if err != nil {
		return nil, err
	}
	out := make([]common.Address, 0, len(files))
	for a := range files {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cmp(out[j]) < 0 })
	return out, nil
}

// files maps every address in the folder to its file; unreadable files are skipped.
func (w *Wallet) files() (map[common.Address]string, error) {
	entries, err := os.ReadDir(w.dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[common.Address]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("wallet: %w", err)
	}
	out := map[common.Address]string{}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		p := filepath.Join(w.dir, e.Name())
		b, err := readLimited(p, maxKeyFile)
		if err != nil {
			continue
		}
		a, err := KeyFileAddress(b)
		if err != nil {
			continue
		}
		out[a] = p
	}
	return out, nil
}

func (w *Wallet) find(a common.Address) (string, error) {
	files, err := w.files()
	if err != nil {
		return "", err
	}
	p, ok := files[a]
	if !ok {
		return "", fmt.Errorf("wallet %s: %s: %w", w.dir, a, ErrNoAccount)
	}
	return p, nil
}

// Unlock decrypts the key of addr.
func (w *Wallet) Unlock(addr common.Address, password string) (*ecdsa.PrivateKey, error) {
	p, err := w.find(addr)
	if err != nil {
		return nil, err
	}
	b, err := readLimited(p, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("wallet: %w", err)
	}
	k, err := keystore.DecryptKey(b, password)
	if err != nil {
		return nil, fmt.Errorf("wallet: unlock %s: %w", addr, err)
	}
	return k.PrivateKey, nil
}

// KeyFileAddress reads the address field of a keystore file without decrypting it.
func KeyFileAddress(b []byte) (common.Address, error) {
	var f struct {
		Address string `json:"address"`
		Crypto  any    `json:"crypto"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return common.Address{}, fmt.Errorf("keystore file: %w", err)
	}
	if f.Version != 3 || f.Crypto == nil {
		return common.Address{}, errors.New("keystore file: not a version 3 key")
	}
	if !common.IsHexAddress(f.Address) {
		return common.Address{}, fmt.Errorf("keystore file: bad address %q", f.Address)
	}
	return common.HexToAddress(f.Address), nil
}

func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, limit)
	}
	return b, nil
}

// PasswordSource says where a password comes from, in order: a file, an environment
// variable, or an interactive prompt.
type PasswordSource struct {
	// File holds the password on its first line.
	File string
	// Env names an environment variable holding the password.
	Env string
	// Prompt, when set, is shown on Out and the password read from In (a line).
	Prompt string
	In     io.Reader
	Out    io.Writer
}

// ErrNoPassword means no password source was given.
var ErrNoPassword = errors.New("no password: give --password-file, set the environment variable, or run in a terminal")

// Read returns the password from the first source that is set.
func (s PasswordSource) Read() (string, error) {
	if s.File != "" {
		b, err := readLimited(s.File, 4096)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	}
	if s.Env != "" {
		if v, ok := os.LookupEnv(s.Env); ok {
			return v, nil
		}
	}
	if s.Prompt != "" && s.In != nil {
		if s.Out != nil {
			fmt.Fprint(s.Out, s.Prompt)
		}
		line, err := bufio.NewReader(io.LimitReader(s.In, 4096)).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("password prompt: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	return "", ErrNoPassword
}
