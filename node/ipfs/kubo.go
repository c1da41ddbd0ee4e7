package ipfs

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"
)

// kuboClient speaks the kubo RPC API (/api/v0, every call a POST).
type kuboClient struct {
	base string
	http *http.Client
}

func newKuboClient(base string) *kuboClient {
	return &kuboClient{base: strings.TrimRight(base, "/"), http: &http.Client{}}
}

func (k *kuboClient) call(ctx context.Context, cmd string, args url.Values, body io.Reader, contentType string) (*http.Response, error) {
	u := k.base + "/api/v0/" + cmd
	if len(args) > 0 {
		u += "?" + args.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubo %s: %w", cmd, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct{ Message string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && e.Message != "" {
			return nil, fmt.Errorf("kubo %s: %s", cmd, e.Message)
		}
		return nil, fmt.Errorf("kubo %s: %s", cmd, resp.Status)
	}
	return resp, nil
}

func (k *kuboClient) callJSON(ctx context.Context, cmd string, args url.Values, out any) error {
	resp, err := k.call(ctx, cmd, args, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return err
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("kubo %s: decode answer: %w", cmd, err)
	}
	return nil
}

// add uploads path (file or directory, hidden files included) with the same import
// settings as the embedded importer, pinned.
func (k *kuboClient) add(ctx context.Context, p string) (cid.Cid, error) {
	info, err := os.Lstat(p)
	if err != nil {
		return cid.Undef, err
	}
	nd, err := files.NewSerialFileWithOptions(p, info, files.SerialFileOptions{})
	if err != nil {
		return cid.Undef, fmt.Errorf("kubo add %s: %w", p, err)
	}
	defer nd.Close()
	dir := files.NewSliceDirectory([]files.DirEntry{files.FileEntry(filepath.Base(p), nd)})
	mfr := files.NewMultiFileReader(dir, true, false)
	args := url.Values{
		"cid-version": {"1"}, "raw-leaves": {"true"}, "pin": {"true"},
		"hidden": {"true"}, "quieter": {"true"}, "progress": {"false"},
	}
	resp, err := k.call(ctx, "add", args, mfr, "multipart/form-data; boundary="+mfr.Boundary())
	if err != nil {
		return cid.Undef, err
	}
	defer resp.Body.Close()
	var last struct{ Name, Hash string }
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Name, Hash, Message string
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return cid.Undef, fmt.Errorf("kubo add: decode answer: %w", err)
		}
		if line.Message != "" && line.Hash == "" {
			return cid.Undef, fmt.Errorf("kubo add: %s", line.Message)
		}
		if line.Hash != "" {
			last.Name, last.Hash = line.Name, line.Hash
		}
	}
	if err := sc.Err(); err != nil {
		return cid.Undef, fmt.Errorf("kubo add: %w", err)
	}
	if last.Hash == "" {
		return cid.Undef, errors.New("kubo add: no CID in answer")
	}
	return cid.Decode(last.Hash)
}

// get writes the content c as a read-only directory at final, from kubo's tar stream.
func (k *kuboClient) get(ctx context.Context, c cid.Cid, final string, maxBytes int64) error {
	resp, err := k.call(ctx, "get", url.Values{"arg": {c.String()}}, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp := final + ".partial"
	if err := removeTree(tmp); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	// kubo's tar has one top entry named after the CID: a directory for a directory
	// CID (its entries become ours), a file otherwise (kept as <cid>).
	if err := extractTar(resp.Body, tmp, c.String(), maxBytes); err != nil {
		removeTree(tmp)
		return err
	}
	if err := makeReadOnly(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// extractTar writes a tar stream (untrusted) under dst. Entries under top/ lose that
// prefix; an entry named top itself is a file kept as dst/top. Absolute paths, ".."
// components, links pointing out, devices and more than maxBytes are rejected.
func extractTar(r io.Reader, dst, top string, maxBytes int64) error {
	tr := tar.NewReader(r)
	var total int64
	// Symlinks extracted so far: no later entry may go through one, or a link to
	// /etc followed by a file under it would write outside dst.
	links := make(map[string]bool)
	for entries := 0; ; entries++ {
		if entries > 1_000_000 {
			return errors.New("tar: too many entries")
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == top && h.Typeflag == tar.TypeDir {
			continue
		}
		if name != top {
			rel, ok := strings.CutPrefix(name, top+"/")
			if !ok {
				return fmt.Errorf("tar: entry %q outside %s", h.Name, top)
			}
			name = rel
		}
		if !fs.ValidPath(name) || name == "." {
			return fmt.Errorf("tar: invalid entry name %q", h.Name)
		}
		for p := path.Dir(name); p != "."; p = path.Dir(p) {
			if links[p] {
				return fmt.Errorf("tar: entry %q goes through a symlink", h.Name)
			}
		}
		if links[name] {
			return fmt.Errorf("tar: entry %q replaces a symlink", h.Name)
		}
		out := filepath.Join(dst, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if h.Size < 0 || total+h.Size > maxBytes {
				return fmt.Errorf("%w (%d bytes)", ErrTooLarge, maxBytes)
			}
			total += h.Size
			if err := writeTarFile(tr, out, h.Size); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, out); err != nil {
				return err
			}
			links[name] = true
		default:
			return fmt.Errorf("tar: entry %q has unsupported type %q", h.Name, h.Typeflag)
		}
	}
}

func writeTarFile(r io.Reader, out string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	// O_EXCL: a symlink planted by an earlier entry is never followed.
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return fmt.Errorf("tar: %w", err)
	}
	return f.Close()
}

func (k *kuboClient) pins(ctx context.Context) ([]Pin, error) {
	var out struct {
		Keys map[string]struct{ Type, Name string }
	}
	if err := k.callJSON(ctx, "pin/ls", url.Values{"type": {"recursive"}, "names": {"true"}}, &out); err != nil {
		return nil, err
	}
	list := make([]Pin, 0, len(out.Keys))
	for c, v := range out.Keys {
		list = append(list, Pin{CID: c, Name: v.Name, Kind: PinCheckpoint})
	}
	sortPins(list)
	return list, nil
}

func (k *kuboClient) pinAdd(ctx context.Context, c cid.Cid) error {
	return k.callJSON(ctx, "pin/add", url.Values{"arg": {c.String()}}, nil)
}

func (k *kuboClient) pinRm(ctx context.Context, c cid.Cid) error {
	return k.callJSON(ctx, "pin/rm", url.Values{"arg": {c.String()}}, nil)
}

func (k *kuboClient) gc(ctx context.Context) error {
	return k.callJSON(ctx, "repo/gc", nil, nil)
}

// addrs returns kubo's peer ID and listen addresses, as origins for remote pins.
func (k *kuboClient) addrs(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out struct{ Addresses []string }
	if err := k.callJSON(ctx, "id", nil, &out); err != nil {
		return nil, err
	}
	return out.Addresses, nil
}
