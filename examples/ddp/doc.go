// Package ddp is the example multi-rig trainer: train.py, a PyTorch
// DistributedDataParallel job (gloo on CPU, NCCL on GPUs) that runs on one rig or across
// rigs from the standard rendezvous environment, and writes rank 0's checkpoint. Script
// is its source, for tests and tools that build an image around it.
package ddp

import _ "embed"

// Script is train.py.
//
//go:embed train.py
var Script []byte
