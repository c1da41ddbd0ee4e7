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

// ErrLinkEscapes means a symlink in an archive points, or would be made, outside the
// tree being extracted.
var ErrLinkEscapes = errors.New("symlink leaves the tree")

// Extract unpacks a tar archive from r into the existing directory dst and returns the
// names of its top-level entries. It refuses names that would leave dst, entries other
// than directories, regular files and symlinks, entries that already exist, entries
// under a symlink of the archive, symlinks whose target is absolute or climbs out of
// dst, and more than maxBytes of file content (0: no cap). Every entry is made through
// an os.Root on dst, which refuses to follow any link out of it; symlinks are made
// last, so no entry is written through one.
func Extract(r io.Reader, dst string, maxBytes int64) ([]string, error) {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	type symlink struct{ at, target string }
	var links []symlink
	isLink := map[string]bool{}
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
		for p := path.Dir(name); p != "."; p = path.Dir(p) {
			if isLink[p] {
				return tops, fmt.Errorf("archive entry %q: under the symlink %q: %w", h.Name, p, ErrLinkEscapes)
			}
		}
		if first, _, _ := strings.Cut(name, "/"); !top[first] {
			top[first] = true
			tops = append(tops, first)
		}
		out := filepath.FromSlash(name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(out, 0o755); err != nil {
				return tops, err
			}
		case tar.TypeReg:
			total += h.Size
			if maxBytes > 0 && total > maxBytes {
				return tops, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
			}
			if err := root.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return tops, err
			}
			mode := os.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			f, err := root.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
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
			target, err := localTarget(name, h.Linkname)
			if err != nil {
				return tops, fmt.Errorf("archive entry %q: %w", h.Name, err)
			}
			isLink[name] = true
			links = append(links, symlink{out, target})
		default:
			return tops, fmt.Errorf("archive entry %q: type %q is not a file, directory or symlink", h.Name, h.Typeflag)
		}
	}
	for _, l := range links {
		if err := root.MkdirAll(filepath.Dir(l.at), 0o755); err != nil {
			return tops, err
		}
		// The leading ".." of a target climb real directories only, also when dst
		// held links before.
		for p := filepath.Dir(l.at); p != "."; p = filepath.Dir(p) {
			if fi, err := root.Lstat(p); err != nil || !fi.IsDir() {
				return tops, fmt.Errorf("symlink %q: parent %q is not a directory: %w", l.at, p, ErrLinkEscapes)
			}
		}
		if err := root.Symlink(l.target, l.at); err != nil {
			return tops, err
		}
	}
	return tops, nil
}

// localTarget returns the target for a symlink at name (slash-separated, relative to
// the tree's root) that stays inside the tree, or an error. The target is cleaned, so
// that any ".." comes first: a link's parents are real directories (no entry lies under
// a link), the leading ".." climb through them, and the rest only descends, through
// links that each stay inside in turn. Uncleaned, "s/../.." would climb from wherever
// the link s points, which may be above the link's own directory.
func localTarget(name, target string) (string, error) {
	if target == "" || path.IsAbs(target) {
		return "", fmt.Errorf("target %q: %w", target, ErrLinkEscapes)
	}
	t := path.Clean(target)
	if !filepath.IsLocal(filepath.FromSlash(path.Join(path.Dir(name), t))) {
		return "", fmt.Errorf("target %q: %w", target, ErrLinkEscapes)
	}
	return filepath.FromSlash(t), nil
}
