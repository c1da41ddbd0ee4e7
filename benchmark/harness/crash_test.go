package harness

import (
	"testing"
)

// TestHarnessCrash: a harness that dies mid-run gives an error, not a partial score.
func TestHarnessCrash(t *testing.T) {
	b, err := New(Config{Device: "cpu", Python: "/bin/sh"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// /bin/sh runs harness.py as a shell script: garbage out, non-zero exit.
	if _, err := b.Capabilities(t.Context()); err == nil {
		t.Fatal("a harness that is not one was accepted")
	}
}
