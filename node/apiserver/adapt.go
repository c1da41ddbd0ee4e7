package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/gpunode/gpunode/node/api"
)

// Params are a request's path values and query, for a route's function.
type Params struct{ r *http.Request }

// Path returns the path value name ("id" of /v1/jobs/{id}).
func (p Params) Path(name string) string { return p.r.PathValue(name) }

// Query returns the query parameter name.
func (p Params) Query(name string) string { return p.r.URL.Query().Get(name) }

// None is the request of a route that takes no body.
type None struct{}

// Handle adapts f: the JSON body (optional: an empty body leaves In zero; unknown fields
// are refused) is decoded into In, f is called, and Out is answered as JSON with 200, or
// f's error with the status of its class (api.ClassOf).
func Handle[In, Out any](f func(ctx context.Context, p Params, in In) (Out, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in In
		if err := decode(r, &in); err != nil {
			WriteError(w, err)
			return
		}
		out, err := f(r.Context(), Params{r}, in)
		if err != nil {
			WriteError(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, out)
	})
}

// Get adapts f for a route without a body.
func Get[Out any](f func(ctx context.Context, p Params) (Out, error)) http.Handler {
	return Handle(func(ctx context.Context, p Params, _ None) (Out, error) { return f(ctx, p) })
}

// Writer is the body of a streamed answer: it writes to w, which is flushed after every
// write. An error it returns cannot change the answer's status any more; it is logged.
type Writer func(w io.Writer) error

// Streamed adapts f for a route whose answer is a stream (a log, a tar archive,
// newline-delimited events): f decodes and checks the request and returns the writer,
// or an error answered as Handle does. log records the writer's errors.
func Streamed[In any](contentType string, log *slog.Logger, f func(ctx context.Context, p Params, in In) (Writer, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in In
		if err := decode(r, &in); err != nil {
			WriteError(w, err)
			return
		}
		write, err := f(r.Context(), Params{r}, in)
		if err != nil {
			WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusOK)
		if err := write(flushing{w}); err != nil && r.Context().Err() == nil {
			log.Warn("streamed answer cut short", "route", r.Pattern, "err", err)
		}
	})
}

// Uploaded adapts f for a route whose body is raw content (a tar archive), not JSON.
func Uploaded[Out any](f func(ctx context.Context, p Params, body io.Reader) (Out, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := f(r.Context(), Params{r}, r.Body)
		if err != nil {
			WriteError(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, out)
	})
}

type flushing struct{ w http.ResponseWriter }

func (f flushing) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if fl, ok := f.w.(http.Flusher); ok && err == nil {
		fl.Flush()
	}
	return n, err
}

// decode reads an optional JSON body into v.
func decode(r *http.Request, v any) error {
	if _, none := v.(*None); none {
		return nil
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &tooLarge):
		return api.WithClass(api.ErrTooLarge, fmt.Errorf("request body: over %d bytes", tooLarge.Limit))
	default:
		return api.WithClass(api.ErrInvalidArgument, fmt.Errorf("request body: %w", err))
	}
}

// WriteJSON writes v as a JSON answer with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes err as an error answer, with the status of its class. A body over
// its route's cap is api.ErrTooLarge whoever read it.
func WriteError(w http.ResponseWriter, err error) {
	c := api.ClassOf(err)
	var tooLarge *http.MaxBytesError
	if c == api.ErrInternal && errors.As(err, &tooLarge) {
		c = api.ErrTooLarge
	}
	WriteJSON(w, c.Status(), api.ErrorBody{Error: err.Error(), Class: c})
}
