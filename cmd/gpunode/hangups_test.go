package main

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestHangupsReload: SIGHUP to the daemon's process becomes a reload, and ends nothing.
func TestHangupsReload(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reload := hangups(ctx) // subscribed on return: a SIGHUP no longer kills the test
	for range 3 {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-reload:
	case <-time.After(10 * time.Second):
		t.Fatal("no reload after SIGHUP")
	}
	if ctx.Err() != nil {
		t.Fatal("SIGHUP cancelled the daemon's context")
	}
}
