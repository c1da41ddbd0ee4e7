package policy

import (
	"os"
	"testing"
)

// BenchmarkEvaluate measures a decision under an empty policy, the strict test policy
// without its CEL rule, and with it, in one run; compare ns/op across the three.
func BenchmarkEvaluate(b *testing.B) {
	strict, err := os.ReadFile("testdata/strict.toml")
	if err != nil {
		b.Fatal(err)
	}
	withRule, err := Parse(strict)
	if err != nil {
		b.Fatal(err)
	}
	noRule, _ := Parse(strict)
	noRule.programs = nil
	r := probes(b)[0]
	for _, c := range []struct {
		name string
		set  *Set
	}{
		{"default", &Set{}},
		{"strict-no-cel", &Set{Local: noRule}},
		{"strict-with-cel", &Set{Local: withRule}},
		{"pool-and-local", &Set{Pool: withRule, Local: withRule}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if d := c.set.Evaluate(r, Offer); !d.Allow {
					b.Fatalf("denied: %v", d.Reasons())
				}
			}
		})
	}
}
