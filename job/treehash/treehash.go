// Package treehash is the protocol's hash of a published directory tree: the hash a
// provider submits on chain with its output (the checkpoint), that validators and the
// sponsor check after fetching the tree from IPFS. It is independent of how the tree was
// stored or transferred: only the paths, the kinds (directory, regular file), the sizes
// and the contents count.
package treehash

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Sum is the tree hash of dir: sha256 over the sorted lines "d PATH" for each directory and
// "f PATH SIZE SHA256" for each regular file, paths relative to dir with slashes.
// Anything else in the tree is an error: a published output holds only these two kinds.
func Sum(dir string) (string, error) {
	var lines []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case info.IsDir():
			lines = append(lines, "d "+rel)
		case info.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("f %s %d %x", rel, info.Size(), h.Sum(nil)))
		default:
			return fmt.Errorf("%s: %s in a published tree", rel, kind(info.Mode()))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		io.WriteString(h, l+"\n")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}
