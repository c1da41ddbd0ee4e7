// Package datadir is the layout of a node's data directory: every file and folder the
// daemon and the CLI keep there is named by one method of Layout, so that a path is
// joined in one place and two commands never disagree on where a thing lives.
package datadir

import "path/filepath"

// Layout is a node's data directory.
type Layout struct {
	// Root is the data directory itself (the configuration's data_dir).
	Root string
}

// New returns the layout of the data directory root.
func New(root string) Layout { return Layout{Root: root} }

func (l Layout) join(elem ...string) string {
	return filepath.Join(append([]string{l.Root}, elem...)...)
}

// Resolve anchors a configured path: an absolute one stays, a relative one is taken under
// the data directory.
func (l Layout) Resolve(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return l.join(path)
}

// State is the node's state database: jobs, duties, the ledger.
func (l Layout) State() string { return l.join("state.db") }

// Jobs holds the job machine's per-job folders.
func (l Layout) Jobs() string { return l.join("jobs") }

// Validator holds the validator's per-duty folders.
func (l Layout) Validator() string { return l.join("validator") }

// SealKeys holds the keys of the checkpoints the node sealed as a JobMarketV2 provider.
func (l Layout) SealKeys() string { return l.join("sealkeys") }

// RuntimeState is the container runtime's default state folder.
func (l Layout) RuntimeState() string { return l.join("runtime", "jobs") }

// RuntimeLogs is the container runtime's default log folder.
func (l Layout) RuntimeLogs() string { return l.join("runtime", "logs") }

// Idle holds the operator's idle workload's run folders.
func (l Layout) Idle() string { return l.join("idle") }

// PoolPolicy is the default file of the pool's signed policy.
func (l Layout) PoolPolicy() string { return l.join("pool-policy.signed") }

// Identity is the node's libp2p identity key (its peer ID), which also signs its
// benchmark reports.
func (l Layout) Identity() string { return l.join("p2p", "identity.key") }

// BindingKey is the secp256k1 key the capacity record binds to the peer ID while the
// node has no unlocked market key.
func (l Layout) BindingKey() string { return l.join("p2p", "eth.key") }

// Keystore is the default keystore of the node's market account.
func (l Layout) Keystore() string { return l.join("keystore") }

// ChainCursor is the chain watcher's default cursor file.
func (l Layout) ChainCursor() string { return l.join("chain-cursor.json") }

// Devchain is the deployment file `gpunode devchain` writes, read when no chain is
// configured.
func (l Layout) Devchain() string { return l.join("devchain.json") }

// Benchmark is the benchmark's state folder, shared by the daemon and `gpunode bench`.
func (l Layout) Benchmark() string { return l.join("benchmark") }

// BenchmarkReport is the last signed benchmark report.
func (l Layout) BenchmarkReport() string { return l.join("benchmark", "last-report.json") }

// Harness holds the GPU benchmark harness's run folders: under the data directory, since
// dockerd must be able to mount them (under the unit's PrivateTmp= the node's /tmp is a
// private one dockerd does not see).
func (l Layout) Harness() string { return l.join("benchmark", "harness") }

// BenchRuntimeState and BenchRuntimeLogs are the runtime folders of the containers
// `gpunode bench` runs by itself, apart from the daemon's.
func (l Layout) BenchRuntimeState() string { return l.join("benchmark", "runtime", "jobs") }

// BenchRuntimeLogs: see BenchRuntimeState.
func (l Layout) BenchRuntimeLogs() string { return l.join("benchmark", "runtime", "logs") }

// DoctorReport is where `gpunode doctor` keeps its last report, served by the daemon.
func (l Layout) DoctorReport() string { return l.join("doctor.json") }

// PoolPayouts is where a pool coordinator keeps the address of the PoolPayouts contract
// it deployed on its first start.
func (l Layout) PoolPayouts() string { return l.join("pool-payouts.json") }
