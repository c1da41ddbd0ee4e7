//go:build tools

// Package nfpm pins the nfpm version `make deb` builds (scripts/deb.sh).
package nfpm

import _ "github.com/goreleaser/nfpm/v2/cmd/nfpm"
