//go:build integration

package docker_test

import (
	"testing"

	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
)

func TestConformance(t *testing.T) {
	img := probeImage(t)
	conformance.Run(t, conformance.Harness{
		Open: func(t testing.TB, o conformance.Options) (runtime.Runtime, func()) {
			rt := openRuntime(t, testConfig(o))
			return rt, func() { rt.Close() }
		},
		Image:     img,
		HostAddrs: bridgeGateway(t, engine(t)),
	})
}
