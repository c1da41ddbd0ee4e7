package api

import (
	"errors"
	"net/http"
)

// Class is the kind of a failed request, in the manner of containerd's errdefs: the
// daemon sends it with every error answer and the client restores it, so a caller
// asks errors.Is(err, api.ErrNotFound) instead of reading the message.
type Class string

// Error makes a class usable as the target of errors.Is.
func (c Class) Error() string { return string(c) }

// The error classes, each with the HTTP status it is sent with (Status).
var (
	// ErrInvalidArgument: the request is malformed or names something invalid (400).
	ErrInvalidArgument = Class("invalid_argument")
	// ErrForbidden: the daemon refuses to touch what the request names (403).
	ErrForbidden = Class("forbidden")
	// ErrNotFound: what the request names does not exist (404).
	ErrNotFound = Class("not_found")
	// ErrConflict: the request conflicts with the node's state — a benchmark is
	// already running, no key is unlocked, the contract refuses in this state (409).
	ErrConflict = Class("conflict")
	// ErrTooLarge: the request body is over the route's cap (413).
	ErrTooLarge = Class("too_large")
	// ErrFailedPrecondition: the request is well formed but cannot be applied — a
	// policy file that does not parse, a pool policy that does not verify (422).
	ErrFailedPrecondition = Class("failed_precondition")
	// ErrInternal: the daemon failed (500).
	ErrInternal = Class("internal")
	// ErrUnavailable: something the daemon depends on failed — the chain's RPC
	// endpoint, a peer, a remote pinning service (502).
	ErrUnavailable = Class("unavailable")
	// ErrStorageFull: the daemon has no room for what the request adds (507).
	ErrStorageFull = Class("storage_full")
)

// Classes lists every class, for tests and documentation.
var Classes = []Class{ErrInvalidArgument, ErrForbidden, ErrNotFound, ErrConflict, ErrTooLarge,
	ErrFailedPrecondition, ErrInternal, ErrUnavailable, ErrStorageFull}

var statuses = map[Class]int{
	ErrInvalidArgument:    http.StatusBadRequest,
	ErrForbidden:          http.StatusForbidden,
	ErrNotFound:           http.StatusNotFound,
	ErrConflict:           http.StatusConflict,
	ErrTooLarge:           http.StatusRequestEntityTooLarge,
	ErrFailedPrecondition: http.StatusUnprocessableEntity,
	ErrInternal:           http.StatusInternalServerError,
	ErrUnavailable:        http.StatusBadGateway,
	ErrStorageFull:        http.StatusInsufficientStorage,
}

// Status is the HTTP status a class is sent with; 500 for an unknown class.
func (c Class) Status() int {
	if s, ok := statuses[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ClassOfStatus is the class of an error answer that carries none (a proxy's, or an
// older daemon's): the class whose status it is, or ErrInternal.
func ClassOfStatus(status int) Class {
	for c, s := range statuses {
		if s == status {
			return c
		}
	}
	return ErrInternal
}

// Error is a failed request: its class, the HTTP status it was answered with, and the
// daemon's message. The client returns one for every error answer.
type Error struct {
	Class   Class
	Status  int
	Message string
	// err is the daemon-side cause, nil on the client side.
	err error
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, api.ErrNotFound) true for an Error of that class.
func (e *Error) Is(target error) bool {
	c, ok := target.(Class)
	return ok && c == e.Class
}

// Unwrap returns the daemon-side cause.
func (e *Error) Unwrap() error { return e.err }

// WithClass gives err a class (and the class's status), keeping its message and its
// chain. It is how the daemon's route table says what a subsystem's error means.
func WithClass(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: c, Status: c.Status(), Message: err.Error(), err: err}
}

// ClassOf returns err's class: the one it was given with WithClass or restored by
// the client, a Class in its chain, or ErrInternal.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) && e.Class != "" {
		return e.Class
	}
	var c Class
	if errors.As(err, &c) {
		return c
	}
	return ErrInternal
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Class Class  `json:"class,omitempty"`
}
