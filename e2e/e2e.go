// Package e2e holds the tests that run gpunode as a process, against real components
// (Prometheus, systemd's verifier), the way an operator runs it.
package e2e
