package ipfs

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzExtractTar feeds arbitrary tar streams (kubo's answer to `get` is untrusted)
// to extractTar: it must never write outside its directory.
func FuzzExtractTar(f *testing.F) {
	const top = "bafkqaaa"
	f.Add(tarOf(f, map[string]string{top + "/a": "x", top + "/d/b": "yy"}))
	f.Add(tarOf(f, map[string]string{top: "file"}))
	f.Add(tarOf(f, map[string]string{top + "/../escape": "x"}))
	f.Add(tarOf(f, map[string]string{"/etc/passwd": "x"}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dst := filepath.Join(root, "out")
		os.Mkdir(dst, 0o755)
		_ = extractTar(bytes.NewReader(data), dst, top, 1<<20)
		entries, _ := os.ReadDir(root)
		if len(entries) != 1 {
			t.Fatalf("extractTar wrote outside its directory: %v", entries)
		}
	})
}

func tarOf(t testing.TB, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

func TestExtractTarRejectsEscapes(t *testing.T) {
	for _, name := range []string{"bafkqaaa/../x", "/abs", "other/x"} {
		dst := t.TempDir()
		err := extractTar(bytes.NewReader(tarOf(t, map[string]string{name: "x"})), dst, "bafkqaaa", 1<<20)
		if err == nil {
			t.Errorf("entry %q accepted", name)
		}
	}
	// A symlink pointing out, then a file "inside" it.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	outside := t.TempDir()
	tw.WriteHeader(&tar.Header{Name: "bafkqaaa/l", Typeflag: tar.TypeSymlink, Linkname: outside})
	tw.WriteHeader(&tar.Header{Name: "bafkqaaa/l/planted", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	if err := extractTar(&buf, t.TempDir(), "bafkqaaa", 1<<20); err == nil {
		t.Error("entry through a symlink accepted")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Error("a file was written outside through a symlink")
	}
	dst := t.TempDir()
	big := strings.Repeat("x", 100)
	if err := extractTar(bytes.NewReader(tarOf(t, map[string]string{"bafkqaaa/big": big})), dst, "bafkqaaa", 10); err == nil {
		t.Error("entry over the size cap accepted")
	}
}

// FuzzDecodePinStatus feeds arbitrary answers of a Pinning Service (untrusted).
func FuzzDecodePinStatus(f *testing.F) {
	f.Add([]byte(`{"requestid":"r1","status":"pinned","created":"2026-01-01T00:00:00Z","pin":{"cid":"bafkqaaa"},"delegates":[]}`))
	f.Add([]byte(`{"requestid":"","status":"nope"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodePinStatus(bytes.NewReader(data))
		if err == nil && (st.RequestID == "" || !pinStatuses[st.Status]) {
			t.Fatalf("accepted invalid status %+v", st)
		}
	})
}
