package treehash

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSum: equal trees hash alike, a changed file changes the hash, and a tree holding
// anything but directories and regular files is refused.
func TestSum(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		os.MkdirAll(filepath.Join(d, "x"), 0o755)
		os.WriteFile(filepath.Join(d, "x", "f"), []byte("1"), 0o644)
	}
	ha, _ := Sum(a)
	hb, _ := Sum(b)
	if ha != hb || len(ha) != 64 {
		t.Fatalf("same trees hash %s and %s", ha, hb)
	}
	os.WriteFile(filepath.Join(b, "x", "f"), []byte("2"), 0o644)
	if hc, _ := Sum(b); hc == ha {
		t.Error("changed content, same hash")
	}
	os.Symlink("/etc", filepath.Join(b, "l"))
	if _, err := Sum(b); err == nil {
		t.Error("tree with a symlink hashed")
	}
}

// TestSumKnown pins the hash of a small tree: the format is part of the protocol (the
// chain holds these hashes), so a change here breaks every node that checks one.
func TestSumKnown(t *testing.T) {
	d := t.TempDir()
	os.MkdirAll(filepath.Join(d, "a"), 0o755)
	os.WriteFile(filepath.Join(d, "a", "w.bin"), []byte("weights"), 0o644)
	got, err := Sum(d)
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of "d .\nd a\nf a/w.bin 7 <sha256(weights)>\n"
	const want = "e83fba9e8e8a1086ead50195e837784e2896f8960d97888a7553d82d8863af49"
	if got != want {
		t.Errorf("Sum = %s, want %s", got, want)
	}
}
