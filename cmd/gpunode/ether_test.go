package main

import (
	"testing"
)

func TestEtherOf(t *testing.T) {
	for wei, want := range map[string]string{
		"0": "0.000000 ETH", "1000000000000000000": "1.000000 ETH", "1250000000000000000": "1.250000 ETH", "x": "x wei",
	} {
		if got := etherOf(wei); got != want {
			t.Errorf("etherOf(%s) = %q, want %q", wei, got, want)
		}
	}
}
