package treetar

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
)

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.MkdirAll(filepath.Join(src, "empty"), 0o755)
	os.WriteFile(filepath.Join(src, "top.txt"), []byte("top"), 0o644)
	os.WriteFile(filepath.Join(src, "a", "b", "deep.bin"), bytes.Repeat([]byte{7}, 100_000), 0o755)
	os.Symlink("top.txt", filepath.Join(src, "link"))

	var buf bytes.Buffer
	if err := Write(&buf, src); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	tops, err := Extract(bytes.NewReader(buf.Bytes()), dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tops, ",") != "a,empty,link,top.txt" {
		t.Errorf("top-level entries %v", tops)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a", "b", "deep.bin")); len(b) != 100_000 || b[99_999] != 7 {
		t.Error("deep file differs")
	}
	if fi, _ := os.Stat(filepath.Join(dst, "a", "b", "deep.bin")); fi.Mode().Perm()&0o100 == 0 {
		t.Error("executable bit lost")
	}
	if tgt, err := os.Readlink(filepath.Join(dst, "link")); err != nil || tgt != "top.txt" {
		t.Errorf("symlink %q %v", tgt, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty dir: %v", err)
	}

	// A single file travels as one entry named after it.
	buf.Reset()
	if err := Write(&buf, filepath.Join(src, "top.txt")); err != nil {
		t.Fatal(err)
	}
	dst = t.TempDir()
	if tops, err := Extract(&buf, dst, 0); err != nil || strings.Join(tops, ",") != "top.txt" {
		t.Fatalf("file: %v %v", tops, err)
	}
}

func archive(t *testing.T, entries ...*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestExtractRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []*tar.Header
		max     int64
		want    string
	}{
		{"parent", []*tar.Header{{Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}, 0, "not a relative path"},
		{"absolute", []*tar.Header{{Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}, 0, "not a relative path"},
		{"device", []*tar.Header{{Name: "dev", Typeflag: tar.TypeChar, Mode: 0o644}}, 0, "not a file, directory or symlink"},
		{"hard link", []*tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, 0, "not a file, directory or symlink"},
		{"too large", []*tar.Header{{Name: "a", Typeflag: tar.TypeReg, Size: 10, Mode: 0o644}, {Name: "b", Typeflag: tar.TypeReg, Size: 10, Mode: 0o644}}, 15, "larger than allowed"},
		{"twice", []*tar.Header{{Name: "a", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}, {Name: "a", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}, 0, "exists"},
		// A symlink then a file under it: the symlink is made last, so the file lands in
		// a real directory, and the link then cannot be made over it.
		{"write through a symlink", []*tar.Header{{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "x"}, {Name: "d/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}, 0, "under the symlink"},
		{"absolute link", []*tar.Header{{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}}, 0, "leaves the tree"},
		{"climbing link", []*tar.Header{{Name: "a/d", Typeflag: tar.TypeSymlink, Linkname: "../../evil"}}, 0, "leaves the tree"},
		// A link to the root, then a link made through it that climbs one level more
		// than it seems to.
		{"link through a link", []*tar.Header{{Name: "x", Typeflag: tar.TypeSymlink, Linkname: "."}, {Name: "x/l", Typeflag: tar.TypeSymlink, Linkname: "../evil"}}, 0, "under the symlink"},
		{"link through an absolute link", []*tar.Header{{Name: "a", Typeflag: tar.TypeSymlink, Linkname: "."}, {Name: "a/b", Typeflag: tar.TypeSymlink, Linkname: "c"}}, 0, "under the symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.Attack(t, "treetar", tc.name)
			dst := t.TempDir()
			_, err := Extract(bytes.NewReader(archive(t, tc.entries...)), dst, tc.max)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
			if tc.name == "too large" && !errors.Is(err, ErrTooLarge) {
				t.Errorf("not ErrTooLarge: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(dst), "evil")); err == nil {
				t.Error("a file was written outside the destination")
			}
		})
	}
}

// FuzzExtract: whatever the archive, nothing is written outside the destination and
// no symlink made in it resolves outside it. The seeds are link chains: links through
// links, links to links that climb, a link to the root used as a directory.
func FuzzExtract(f *testing.F) {
	type e struct{ name, link string } // link "" is a 2-byte file
	for _, seed := range [][]e{
		{{"a/b", ""}, {"l", "../x"}},
		{{"a", "/etc"}, {"a/b", "x"}},
		{{"x", "."}, {"x/l", "../secret"}},
		{{"d1/d2/s", "../.."}, {"L", "d1/d2/s/../../secret"}},
		{{"d1/d2/s", "../.."}, {"L", "d1/d2/s"}, {"M", "L/../secret"}},
		{{"a", "b"}, {"b", "c"}, {"c", ".."}},
		{{"a/b/c", "../../.."}, {"a/b/d", "c/secret"}},
		{{"up", ".."}, {"up/secret", ""}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, x := range seed {
			if x.link != "" {
				tw.WriteHeader(&tar.Header{Name: x.name, Typeflag: tar.TypeSymlink, Linkname: x.link})
				continue
			}
			tw.WriteHeader(&tar.Header{Name: x.name, Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
			tw.Write([]byte("hi"))
		}
		tw.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parent, err := os.MkdirTemp("", "treetar-fuzz-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		dst := filepath.Join(parent, "dst")
		os.Mkdir(dst, 0o755)
		os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o600)
		Extract(bytes.NewReader(b), dst, 1<<20)
		entries, _ := os.ReadDir(parent)
		if len(entries) != 2 {
			t.Fatalf("extract wrote beside its destination: %v", entries)
		}
		realDst, _ := filepath.EvalSymlinks(dst)
		filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			target, _ := os.Readlink(p)
			if filepath.IsAbs(target) {
				t.Errorf("symlink %s -> %s is absolute", p, target)
			}
			// A link that resolves must resolve inside; one that does not must not
			// point outside once its target exists.
			if r, err := filepath.EvalSymlinks(p); err == nil {
				if rel, err := filepath.Rel(realDst, r); err != nil || !filepath.IsLocal(rel) && rel != "." {
					t.Errorf("symlink %s -> %s resolves to %s, outside the destination", p, target, r)
				}
			}
			return nil
		})
	})
}
