package treetar

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"write through a symlink", []*tar.Header{{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "d/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}, 0, "exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
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

// FuzzExtract: whatever the archive, nothing is written outside the destination.
func FuzzExtract(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	tw.Write([]byte("hi"))
	tw.WriteHeader(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../x"})
	tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		parent, err := os.MkdirTemp("", "treetar-fuzz-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		dst := filepath.Join(parent, "dst")
		os.Mkdir(dst, 0o755)
		Extract(bytes.NewReader(b), dst, 1<<20)
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 {
			t.Fatalf("extract wrote beside its destination: %v", entries)
		}
	})
}
