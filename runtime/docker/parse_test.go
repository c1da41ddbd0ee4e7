package docker

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/runtime"
)

func TestParseImageRef(t *testing.T) {
	dg := "sha256:" + strings.Repeat("a1", 32)
	for _, tc := range []struct {
		in       string
		allowTag bool
		want     string
		err      error
	}{
		{"ghcr.io/lab/train@" + dg, false, "ghcr.io/lab/train@" + dg, nil},
		{"train@" + dg, false, "docker.io/library/train@" + dg, nil},
		{"127.0.0.1:5000/lab/train:v1@" + dg, false, "127.0.0.1:5000/lab/train@" + dg, nil},
		{dg, false, dg, nil},
		{"ghcr.io/lab/train:v1", false, "", runtime.ErrTagNotAllowed},
		{"ghcr.io/lab/train", false, "", runtime.ErrTagNotAllowed},
		{"ghcr.io/lab/train:v1", true, "ghcr.io/lab/train:v1", nil},
		{"ghcr.io/lab/train", true, "ghcr.io/lab/train:latest", nil},
		{"lab/UPPER@" + dg, false, "", errAny},
		{"train@sha256:short", false, "", errAny},
		{"", false, "", errAny},
	} {
		got, err := ParseImageRef(tc.in, tc.allowTag)
		switch {
		case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err), tc.err == nil && err != nil:
			t.Errorf("ParseImageRef(%q, %v) error = %v, want %v", tc.in, tc.allowTag, err, tc.err)
		case err == nil && got.String() != tc.want:
			t.Errorf("ParseImageRef(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

var errAny = errors.New("any error")

func FuzzParseImageRef(f *testing.F) {
	for _, s := range seeds(f, "imageref") {
		f.Add(string(s), false)
	}
	f.Fuzz(func(t *testing.T, s string, allowTag bool) {
		r, err := ParseImageRef(s, allowTag)
		if err != nil {
			return
		}
		if r.LocalID == "" && r.Digest == "" && !allowTag {
			t.Fatalf("%q: accepted without a digest", s)
		}
		// What we hand the engine must parse back to the same reference.
		r2, err := ParseImageRef(r.String(), true)
		if err != nil || r2 != r {
			t.Fatalf("%q -> %s -> %+v, %v", s, r, r2, err)
		}
	})
}

func TestParsePullStream(t *testing.T) {
	b, err := os.ReadFile("testdata/pull-stream.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	var last runtime.PullProgress
	var n int
	if err := ParsePullStream(bytes.NewReader(b), func(p runtime.PullProgress) { last = p; n++ }); err != nil {
		t.Fatal(err)
	}
	want := runtime.PullProgress{Status: "Pull complete", Layers: 2, LayersDone: 2, BytesDone: 262441 + 50, BytesTotal: 262441 + 50}
	if last != want || n < 4 {
		t.Errorf("last progress = %+v after %d events, want %+v", last, n, want)
	}
	err = ParsePullStream(strings.NewReader(`{"status":"Pulling fs layer","id":"a"}`+"\n"+`{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}`), nil)
	if err == nil || !errors.Is(mapPullError(err), runtime.ErrImageNotFound) {
		t.Errorf("error line: %v", err)
	}
}

func FuzzParsePullStream(f *testing.F) {
	for _, s := range seeds(f, "pullstream") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ParsePullStream(bytes.NewReader(b), func(p runtime.PullProgress) {
			if p.LayersDone > p.Layers || p.Layers > maxLayers {
				t.Fatalf("progress %+v", p)
			}
		})
	})
}

func TestParseDockerConfig(t *testing.T) {
	f, err := ParseDockerConfig([]byte(`{"auths":{"r.example":{"auth":"dXNlcjpwYTpzcw=="}},"credHelpers":{"ghcr.io":"gh"},"credsStore":"pass","psFormat":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if a := f.Auths["r.example"]; a.Username != "user" || a.Password != "pa:ss" {
		t.Errorf("auth = %+v", a)
	}
	for _, bad := range []string{
		`{"auths":{"r":{"auth":"!!"}}}`,
		`{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}`,
		`{"credsStore":"../../bin/sh"}`,
		`{"credHelpers":{"r":"a b"}}`,
		`[`,
	} {
		if _, err := ParseDockerConfig([]byte(bad)); err == nil {
			t.Errorf("ParseDockerConfig(%s) accepted", bad)
		}
	}
}

func FuzzParseDockerConfig(f *testing.F) {
	for _, s := range seeds(f, "dockerconfig") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseDockerConfig(b)
		if err != nil {
			return
		}
		for _, h := range append([]string{cfg.CredsStore}, values(cfg.CredHelpers)...) {
			if h != "" && !helperRe.MatchString(h) {
				t.Fatalf("helper %q accepted", h)
			}
		}
	})
}

func seeds(f *testing.F, name string) [][]byte {
	paths, _ := filepath.Glob(filepath.Join("testdata", "seed", name, "*"))
	if len(paths) == 0 {
		f.Fatalf("no seeds in testdata/seed/%s", name)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestCheckDataset(t *testing.T) {
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed")
	os.MkdirAll(filepath.Join(allowed, "ds", "sub"), 0o755)
	os.MkdirAll(filepath.Join(root, "secret"), 0o755)
	os.Symlink(filepath.Join(allowed, "ds"), filepath.Join(allowed, "inside-link"))
	os.Symlink(filepath.Join(root, "secret"), filepath.Join(allowed, "outside-link"))
	os.Symlink("../secret", filepath.Join(allowed, "ds", "rel-out"))
	allow := []string{allowed}
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{filepath.Join(allowed, "ds"), true},
		{filepath.Join(allowed, "ds", "sub"), true},
		{filepath.Join(allowed, "inside-link"), true},
		{filepath.Join(allowed, "inside-link", "sub"), true},
		{filepath.Join(allowed, "outside-link"), false},
		{filepath.Join(allowed, "ds", "rel-out"), false},
		{filepath.Join(root, "secret"), false},
		{filepath.Join(allowed, "missing"), false},
		{"relative/path", false},
		{allowed + "-sibling", false},
	} {
		real, err := CheckDataset(tc.path, allow)
		if tc.ok != (err == nil) {
			t.Errorf("CheckDataset(%s) = %q, %v; want ok=%v", tc.path, real, err, tc.ok)
		}
		if err != nil && !errors.Is(err, runtime.ErrDatasetRefused) {
			t.Errorf("CheckDataset(%s): %v is not ErrDatasetRefused", tc.path, err)
		}
	}
	if _, err := CheckDataset("/var/run", []string{"/"}); err == nil {
		t.Error("a dataset holding the Docker socket was accepted")
	}
}

func TestCappedWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &cappedWriter{w: &buf, max: 10}
	for _, s := range []string{"12345", "67890abc", "more"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := buf.String(); got != "1234567890\n[gpunode: log truncated at 10 bytes]\n" {
		t.Errorf("got %q", got)
	}
}
