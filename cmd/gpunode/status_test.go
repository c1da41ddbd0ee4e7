package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/node/api"
)

// TestPrintStatusGPUs: the rig owner sees the GPU path's versions against their patched
// minimums, a field the GPU does not report as n/a (not 0), a GPU out of service with
// its reason, and the MIG instances jobs get.
func TestPrintStatusGPUs(t *testing.T) {
	temp := uint32(61)
	used := uint64(2 << 30)
	st := api.Status{
		State: "running", GPUMode: "nvml", Driver: "550.54.15", CUDA: "12.4",
		GPURuntime: []api.Component{
			{Name: "nvidia-container-toolkit", Version: "1.17.8", Minimum: "1.17.8", OK: true},
			{Name: "runc", Version: "1.1.12", Minimum: "1.2.8, 1.3.3, 1.4.0-rc.3", Problem: "runc 1.1.12 is older than 1.2.8: upgrade runc"},
		},
		GPUs: []api.GPUStatus{
			{GPU: api.GPU{Index: 0, UUID: "GPU-a", Name: "NVIDIA GeForce RTX 4090", MemoryBytes: 24 << 30, Healthy: true},
				Sample: &api.GPUSample{TemperatureC: &temp, MemoryUsedBytes: &used, Unsupported: []string{"power"}}},
			{GPU: api.GPU{Index: 1, UUID: "GPU-b", Name: "NVIDIA A100", Problem: "fatal XID 79: reset the GPU"}, Error: "gpu 1: out of service"},
			{GPU: api.GPU{Index: 2, UUID: "GPU-c", Name: "NVIDIA A100", MIG: true, Healthy: true,
				Instances: []api.MIGInstance{{UUID: "MIG-1"}, {UUID: "MIG-2"}}}, Sample: &api.GPUSample{}},
		},
	}
	var buf bytes.Buffer
	if err := printStatus(&buf, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"nvidia-container-toolkit:  1.17.8 (patched from 1.17.8)",
		"runc:", "PROBLEM: runc 1.1.12 is older than 1.2.8",
		"61°C", "n/a", "OUT OF SERVICE: fatal XID 79", "[MIG MIG-1] [MIG MIG-2]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " 0 W") {
		t.Errorf("an unreported power draw shows as 0 W:\n%s", out)
	}
}
