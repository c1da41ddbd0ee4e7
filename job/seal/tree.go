package seal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gpunode/gpunode/internal/treetar"
)

// SealTree writes the directory tree dir to w as a tar archive sealed with k for b.
func SealTree(w io.Writer, dir string, k Key, b Binding) error {
	sw, err := NewWriter(w, k, b)
	if err != nil {
		return err
	}
	if err := treetar.Write(sw, dir); err != nil {
		return fmt.Errorf("seal %s: %w", dir, err)
	}
	return sw.Close()
}

// OpenTree opens a sealed tree archive from r into the existing empty directory dst,
// checking that it was made for want and reading at most limit bytes of archive. It
// reads the stream to its end, so that a truncated or tampered tail is an error too; on
// any error dst holds a partial tree the caller must discard.
func OpenTree(r io.Reader, dst string, k Key, want Binding, limit int64) error {
	sr, err := NewReader(r, k, want, limit)
	if err != nil {
		return err
	}
	if _, err := treetar.Extract(sr, dst, limit); err != nil {
		// The archive's own error hides the stream's: an authentication failure shows
		// up in tar as a read error.
		if serr := sr.err; serr != nil {
			return serr
		}
		if errors.Is(err, treetar.ErrTooLarge) {
			return fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return fmt.Errorf("sealed checkpoint: %w", err)
	}
	// tar stops at its end marker; the rest of the stream must still authenticate.
	_, err = io.Copy(io.Discard, sr)
	return err
}

// ErrHashMismatch means a sealed checkpoint is not the one whose hash is on chain.
var ErrHashMismatch = errors.New("sealed checkpoint does not match its hash on chain")

// OpenFile opens the sealed checkpoint in the file path, or in the file FileName of the
// directory path, into the existing empty directory dst: it checks the ciphertext's
// sha256 against resultHash (hex, as submitted on chain), then opens it with k for want.
func OpenFile(path, dst string, k Key, want Binding, resultHash string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, FileName)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), strings.TrimPrefix(strings.ToLower(resultHash), "0x"); got != want {
		return fmt.Errorf("%w: %s hashes to %s, the chain says %s", ErrHashMismatch, path, got, want)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return OpenTree(f, dst, k, want, max(n, 1))
}
