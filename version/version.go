// Package version holds the build's version, set by the linker from git.
package version

import "runtime/debug"

// Version is set at build time with -ldflags "-X github.com/gpunode/gpunode/version.Version=…".
var Version = "dev"

// Get returns the version, falling back to the module version for `go install` builds.
func Get() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}
