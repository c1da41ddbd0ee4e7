package testenv

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// AttackLogEnv names the file where Attack appends one line per attack tried; the
// test script sets it and prints the tally (scripts/test.sh, scripts/attacks.sh).
const AttackLogEnv = "GPUNODE_ATTACK_LOG"

var attackMu sync.Mutex

// Attack records that the calling test plays an attacker against the node: area is
// what was attacked (runtime, ipfs, api, validator, treetar), name the attack. The
// attack counts as blocked if the test passes: its assertions are what the node lost
// (nothing). Without AttackLogEnv set it records nothing.
func Attack(t testing.TB, area, name string) {
	t.Helper()
	path := os.Getenv(AttackLogEnv)
	if path == "" {
		return
	}
	t.Cleanup(func() {
		outcome := "blocked"
		if t.Failed() {
			outcome = "LOST"
		} else if t.Skipped() {
			outcome = "skipped"
		}
		clean := func(s string) string { return strings.NewReplacer("\t", " ", "\n", " ").Replace(s) }
		attackMu.Lock()
		defer attackMu.Unlock()
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Logf("attack log: %v", err)
			return
		}
		defer f.Close()
		// One write per line: O_APPEND keeps lines of concurrent test processes whole.
		fmt.Fprintf(f, "%s\t%s\t%s\t%s\n", outcome, clean(area), clean(name), clean(t.Name()))
	})
}
