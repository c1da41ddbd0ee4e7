package apiserver

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/node/api"
)

// FuzzDecode: a request body comes from any local user of the socket. Decoding never
// panics, and a body it refuses is an invalid_argument or too_large error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"ref":"x@sha256:00","allow_tag":true}`, `{"bogus":1}`, `[`, `null`,
		`{"manifest":{"version":1},"price_wei":12345678901234567890123}`, strings.Repeat(`{"a":`, 100)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{new(api.PullRequest), new(api.PolicyCheckRequest), new(api.PostJobRequest), new(api.OfferRequest), new(None)} {
			r := httptest.NewRequest(http.MethodPost, "/v1/x", strings.NewReader(string(body)))
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 1<<10)
			err := decode(r, v)
			if err != nil && !errors.Is(err, api.ErrInvalidArgument) && !errors.Is(err, api.ErrTooLarge) {
				t.Fatalf("decode %q into %T: %v has class %s", body, v, err, api.ClassOf(err))
			}
		}
	})
}
