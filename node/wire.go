package node

import (
	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/gpu"
)

// Conversions from the lower packages' types to the control API's wire types: runtime/…
// and benchmark/… do not know the API, so the daemon converts at the route table.

func apiGPU(d gpu.Device) api.GPU {
	g := api.GPU{Index: d.Index, UUID: d.UUID, Name: d.Name, PCIBusID: d.PCIBusID, MemoryBytes: d.MemoryBytes,
		ComputeCapability: d.ComputeCapability, MIG: d.MIG, ECC: d.ECC, Healthy: d.Healthy, Problem: d.Problem}
	for _, in := range d.Instances {
		g.Instances = append(g.Instances, api.MIGInstance(in))
	}
	return g
}

func apiImages(in []runtime.Image) []api.Image {
	out := make([]api.Image, 0, len(in))
	for _, im := range in {
		out = append(out, api.Image(im))
	}
	return out
}

func apiPruneReport(r runtime.PruneReport) api.PruneReport {
	return api.PruneReport{Removed: apiImages(r.Removed), FreedBytes: r.FreedBytes, TotalBytes: r.TotalBytes, CapBytes: r.CapBytes}
}

func apiBenchmarkSummary(s *benchmark.Summary) *api.BenchmarkSummary {
	if s == nil {
		return nil
	}
	out := &api.BenchmarkSummary{RigScore: s.RigScore, AllReduceBusBW: s.AllReduceBusBW, Profile: s.Profile, Backend: s.Backend,
		Harness: s.Harness, Fingerprint: s.Fingerprint, CreatedAt: s.CreatedAt, SHA256: s.SHA256}
	for _, d := range s.Devices {
		out.Devices = append(out.Devices, api.BenchmarkDevice{Device: d.Device, Score: d.Score})
	}
	return out
}
