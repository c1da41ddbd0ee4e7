// Package treetar moves a file or a directory tree through a byte stream as a tar
// archive. The CLI and the daemon use it to pass content over the control socket, since
// the daemon may not see the user's files (systemd gives it no /home and its own /tmp).
package treetar

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Write writes path to w as a tar archive: a directory as its entries (names relative to
// it), a regular file as one entry named after it. Directories, regular files and
// symlinks are written; anything else is an error.
func Write(w io.Writer, root string) error {
	info, err := os.Lstat(root)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if !info.IsDir() {
		if err := writeEntry(tw, root, filepath.Base(root), info); err != nil {
			return err
		}
		return tw.Close()
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return writeEntry(tw, p, filepath.ToSlash(rel), info)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, p, name string, info fs.FileInfo) error {
	var link string
	switch {
	case info.IsDir(), info.Mode().IsRegular():
	case info.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		link = t
	default:
		return fmt.Errorf("%s: not a file, directory or symlink", p)
	}
	h, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	h.Name = name
	h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// ErrTooLarge means an archive holds more file content than Extract was allowed.
var ErrTooLarge = errors.New("archive larger than allowed")

// Extract unpacks a tar archive from r into the existing directory dst and returns the
// names of its top-level entries. It refuses names that would leave dst, entries other
// than directories, regular files and symlinks, entries that already exist, and more
// than maxBytes of file content (0: no cap). Symlinks are made last, so no entry is
// written through one.
func Extract(r io.Reader, dst string, maxBytes int64) ([]string, error) {
	tr := tar.NewReader(r)
	type symlink struct{ at, target string }
	var links []symlink
	var total int64
	top := map[string]bool{}
	var tops []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return tops, fmt.Errorf("archive: %w", err)
		}
		name := path.Clean(strings.TrimSuffix(h.Name, "/"))
		if !filepath.IsLocal(name) || name == "." {
			return tops, fmt.Errorf("archive entry %q: not a relative path inside the tree", h.Name)
		}
		if first, _, _ := strings.Cut(name, "/"); !top[first] {
			top[first] = true
			tops = append(tops, first)
		}
		out := filepath.Join(dst, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(out, 0o755); err != nil {
				return tops, err
			}
		case tar.TypeReg:
			total += h.Size
			if maxBytes > 0 && total > maxBytes {
				return tops, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return tops, err
			}
			mode := os.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return tops, err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return tops, err
			}
		case tar.TypeSymlink:
			links = append(links, symlink{out, h.Linkname})
		default:
			return tops, fmt.Errorf("archive entry %q: type %q is not a file, directory or symlink", h.Name, h.Typeflag)
		}
	}
	for _, l := range links {
		if err := os.MkdirAll(filepath.Dir(l.at), 0o755); err != nil {
			return tops, err
		}
		if err := os.Symlink(l.target, l.at); err != nil {
			return tops, err
		}
	}
	return tops, nil
}
