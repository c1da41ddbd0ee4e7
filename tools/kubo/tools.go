//go:build tools

// Package kubo pins the kubo version built for tests; see scripts/setup.d/40-kubo.sh.
package kubo

import _ "github.com/ipfs/kubo/cmd/ipfs"
