// Package api is the node's local control API as its callers see it: the wire types of
// every /v1/… route (one request and one answer type per route, used by the daemon and
// the client alike), the error classes every error answer carries, and the typed client
// the CLI uses. The daemon serves it as JSON over HTTP on a unix socket that only the
// node's owner and group may open (node/apiserver, with the route table in
// node/routes.go).
//
// Layering: api is a leaf. It imports the standard library and, as the wire encoding of
// the IPFS upload and download routes, internal/treetar — nothing else: no runtime, no
// GPU (cgo), no node/… package. The packages below the daemon (runtime/…, benchmark/…,
// contracts/…, job, internal/…) never import node/…, this package included; the daemon
// converts their types to these at the route table. A test (layering_test.go) enforces
// both rules.
package api

import "errors"

// Config configures the control API.
type Config struct {
	// Socket is the unix socket path. Its directory is created if missing.
	Socket string `toml:"socket"`
}

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/gpunode/api.sock"

// SocketFlagUsage is the help text of every command's --api-socket flag.
const SocketFlagUsage = "unix socket of the daemon's control API (gpunode daemon: overrides api.socket)"

// Default returns the default API configuration.
func Default() Config { return Config{Socket: DefaultSocket} }

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	if c.Socket == "" {
		return []error{errors.New("socket: must not be empty")}
	}
	return nil
}
