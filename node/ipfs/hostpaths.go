package ipfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrHostPathRefused means a control-API request named a host path the daemon will not
// read or write for it: outside the operator's ipfs.host_paths, or the node's own state.
var ErrHostPathRefused = errors.New("host path refused")

// Protect names the node's own state (keys, password files, data directory): no
// host-path route reads or writes them, even inside a listed folder. The IPFS folder
// itself is always protected.
func (n *Node) Protect(paths ...string) {
	n.hostMu.Lock()
	defer n.hostMu.Unlock()
	for _, p := range paths {
		if p != "" {
			n.protected = append(n.protected, p)
		}
	}
}

// hostPath checks a path that a control-API route would read (add) or write (get)
// for its caller, and returns it with its symlinks resolved, which is what the route
// must use. The path, once resolved, must lie in a folder of ipfs.host_paths; it must
// not be nor lie in nor (for a folder) hold the node's own state. A path that does not
// exist yet is resolved through its nearest existing parent.
func (n *Node) hostPath(p string) (string, error) {
	if len(n.cfg.HostPaths) == 0 {
		return "", fmt.Errorf("%s: %w: the daemon reads and writes host paths only in folders listed in ipfs.host_paths (none are); use `gpunode ipfs add`/`get`, which stream the content through the socket", p, ErrHostPathRefused)
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%s: %w: must be absolute", p, ErrHostPathRefused)
	}
	real, err := resolve(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	listed := false
	for _, d := range n.cfg.HostPaths {
		if rd, err := resolve(d); err == nil && within(real, rd) {
			listed = true
			break
		}
	}
	if !listed {
		return "", fmt.Errorf("%s (%s): %w: not in a folder of ipfs.host_paths %v", p, real, ErrHostPathRefused, n.cfg.HostPaths)
	}
	n.hostMu.Lock()
	protected := append([]string{n.dir}, n.protected...)
	n.hostMu.Unlock()
	for _, s := range protected {
		rs, err := resolve(s)
		if err != nil {
			continue
		}
		if within(real, rs) || within(rs, real) {
			return "", fmt.Errorf("%s: %w: it is or holds the node's own state (%s)", p, ErrHostPathRefused, s)
		}
	}
	return real, nil
}

// resolve follows the symlinks of p, or of its nearest existing parent when p does
// not exist yet.
func resolve(p string) (string, error) {
	p = filepath.Clean(p)
	var rest []string
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// within reports whether p is dir or lies under it (both clean and absolute).
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
}
