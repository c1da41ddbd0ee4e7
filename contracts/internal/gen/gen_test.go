//go:build integration

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
)

// TestGeneratedFilesAreFresh regenerates the artifacts and bindings into a temporary
// folder and compares them with the committed ones: a change to a .sol file, the
// compiler or abigen without `make contracts` fails here.
func TestGeneratedFilesAreFresh(t *testing.T) {
	testenv.LookPath(t, "node", "nodejs")
	dir := filepath.Join(testenv.RepoRoot(t), "contracts")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "solc", "package.json")); err != nil {
		t.Fatalf("solc-js is not installed in contracts/node_modules (scripts/setup.d/30-contracts.sh runs npm ci there): %s", testenv.Setup)
	}
	out := t.TempDir()
	if err := generate(t.Context(), dir, out); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, pattern := range []string{"build/*", "bindings/*.go", "bindings/mocks/*.go"} {
		m, _ := filepath.Glob(filepath.Join(out, pattern))
		for _, f := range m {
			rel, _ := filepath.Rel(out, f)
			files = append(files, rel)
		}
	}
	if len(files) < 5 {
		t.Fatalf("generator wrote only %v", files)
	}
	for _, rel := range files {
		want, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("contracts/%s is not committed; run `make contracts`", rel)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("contracts/%s is stale; run `make contracts` and commit the result", rel)
		}
	}
	// Nothing committed that the generator no longer produces.
	for _, pattern := range []string{"build/*", "bindings/*.go", "bindings/mocks/*.go"} {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, f := range m {
			rel, _ := filepath.Rel(dir, f)
			if _, err := os.Stat(filepath.Join(out, rel)); err != nil {
				t.Errorf("contracts/%s is committed but no longer generated; delete it", rel)
			}
		}
	}
}
