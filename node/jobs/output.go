package jobs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Stage copies a finished job's output directory to dst for publishing, keeping only
// directories and regular files that have a single link. Symlinks, hard links, devices,
// sockets and pipes are left out and listed: a job could otherwise publish host files
// (a dataset, /etc/passwd) through a link it planted in its output. Files are opened
// without following links, and the total size is capped at maxBytes.
func Stage(src, dst string, maxBytes int64) (skipped []string, err error) {
	var total int64
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case info.IsDir():
			return os.MkdirAll(target, 0o755)
		case !info.Mode().IsRegular():
			skipped = append(skipped, fmt.Sprintf("%s (%s)", rel, kind(info.Mode())))
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			skipped = append(skipped, fmt.Sprintf("%s (hard link)", rel))
			return nil
		}
		total += info.Size()
		if maxBytes > 0 && total > maxBytes {
			return fmt.Errorf("output is larger than its cap of %d bytes", maxBytes)
		}
		return copyFile(path, target)
	})
	return skipped, err
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

func copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
