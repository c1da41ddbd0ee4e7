//go:build cgo && !noopenblas

package cpu

import (
	"strings"
	"testing"

	"github.com/gpunode/gpunode/internal/testenv"
)

// TestOpenBLASLoaded: the CPU backend's numbers in CI must come from OpenBLAS, as on rigs.
func TestOpenBLASLoaded(t *testing.T) {
	if !haveOpenBLAS || !strings.HasPrefix(blasName(), "openblas ") {
		t.Fatalf("libopenblas.so.0 not found (%s): it comes from Debian's libopenblas0 package (libopenblas-dev pulls it in); %s", blasName(), testenv.Setup)
	}
}
