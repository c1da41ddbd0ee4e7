package job

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUploadFiles: local inputs, relative to the manifest's folder or absolute, are
// uploaded in order and replaced by their CIDs; the result decodes; a missing file or a
// failed upload is an error naming the input.
func TestUploadFiles(t *testing.T) {
	b, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "train.csv"), []byte("1,2"), 0o644)
	abs := filepath.Join(t.TempDir(), "heldout.csv")
	os.WriteFile(abs, []byte("3,4"), 0o644)
	load := func() *Manifest {
		m, err := Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		m.Inputs = append(m.Inputs, Input{File: "train.csv", Path: "/train"})
		m.Evaluation.Inputs = []Input{{File: abs, Path: "/heldout"}}
		return m
	}
	var added []string
	cids := []string{"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzda", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdb"}
	m := load()
	raw, err := m.UploadFiles(dir, func(file, p string) (string, error) {
		if want := map[string]string{"train.csv": filepath.Join(dir, "train.csv"), abs: abs}[file]; want != p {
			t.Errorf("input %s at %s, want %s", file, p, want)
		}
		added = append(added, p)
		return cids[len(added)-1], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 2 || added[0] != filepath.Join(dir, "train.csv") || added[1] != abs {
		t.Errorf("uploaded %v", added)
	}
	back, err := Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.LocalFiles()) != 0 || back.Inputs[2].CID != cids[0] || back.Evaluation.Inputs[0].CID != cids[1] {
		t.Errorf("posted manifest %+v", back)
	}

	m = load()
	m.Inputs[2].File = "absent.csv"
	if _, err := m.UploadFiles(dir, func(string, string) (string, error) { return cids[0], nil }); err == nil || !strings.Contains(err.Error(), "inputs[2].file") {
		t.Errorf("missing file: %v", err)
	}
	m = load()
	if _, err := m.UploadFiles(dir, func(string, string) (string, error) { return "", errors.New("ipfs down") }); err == nil || !strings.Contains(err.Error(), "add input train.csv") {
		t.Errorf("failed upload: %v", err)
	}
	m = load()
	if _, err := m.UploadFiles(dir, func(string, string) (string, error) { return "not a cid", nil }); err == nil {
		t.Error("a manifest with an invalid CID was returned for posting")
	}
	if got := PostedPath("/x/job.json"); got != "/x/job.posted.json" {
		t.Errorf("PostedPath = %s", got)
	}
}
