//go:build !challengecheat

package capcheck

import "github.com/gpunode/gpunode/benchmark/challenge"

// Prover is the prover the daemon answers with: p itself. A build with the test-only tag
// challengecheat swaps in a cheating one (cheat.go) for the process-level tests.
func Prover(p challenge.Backend) challenge.Backend { return p }
