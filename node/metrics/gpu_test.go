package metrics

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/runtime/gpu"
)

var quiet = testkit.Discard()

// mockRig is go-nvml's dgxa100 mock with fixed telemetry and predictable UUIDs.
func mockRig(t *testing.T) (*dgxa100.Server, *gpu.Inventory) {
	t.Helper()
	srv := dgxa100.New()
	for i, d := range srv.Devices {
		md := d.(*dgxa100.Device)
		md.UUID = "GPU-0000000" + string(rune('0'+i))
		temp := uint32(50 + i)
		md.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
			var p nvml.PciInfo
			copy(p.BusId[:], md.PciBusID)
			return p, nvml.SUCCESS
		}
		md.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 97, Memory: 31}, nvml.SUCCESS }
		md.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: 40 << 30, Used: 10 << 30, Free: 30 << 30}, nvml.SUCCESS
		}
		md.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 312000, nvml.SUCCESS }
		md.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return temp, nvml.SUCCESS }
		md.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
			if c == nvml.CLOCK_MEM {
				return 1215, nvml.SUCCESS
			}
			return 1410, nvml.SUCCESS
		}
		md.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
			return nvml.FEATURE_DISABLED, nvml.FEATURE_DISABLED, nvml.SUCCESS
		}
	}
	inv, err := gpu.New(srv, false)
	if err != nil {
		t.Fatal(err)
	}
	return srv, inv
}

func gather(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

func TestGPUCollectorDCGMNames(t *testing.T) {
	_, inv := mockRig(t)
	c := NewGPUCollector(inv, "rig1", quiet)
	want := `
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{Hostname="rig1",UUID="GPU-00000000",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"} 50
DCGM_FI_DEV_GPU_TEMP{Hostname="rig1",UUID="GPU-00000001",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"} 51
DCGM_FI_DEV_GPU_TEMP{Hostname="rig1",UUID="GPU-00000002",device="nvidia2",gpu="2",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:02:00.0"} 52
DCGM_FI_DEV_GPU_TEMP{Hostname="rig1",UUID="GPU-00000003",device="nvidia3",gpu="3",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:03:00.0"} 53
DCGM_FI_DEV_GPU_TEMP{Hostname="rig1",UUID="GPU-00000004",device="nvidia4",gpu="4",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:04:00.0"} 54
DCGM_FI_DEV_GPU_TEMP{Hostname="rig1",UUID="GPU-00000005",device="nvidia5",gpu="5",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:05:00.0"} 55
DCGM_FI_DEV_GPU_TEMP{Hostname="rig1",UUID="GPU-00000006",device="nvidia6",gpu="6",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:06:00.0"} 56
DCGM_FI_DEV_GPU_TEMP{Hostname="rig1",UUID="GPU-00000007",device="nvidia7",gpu="7",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:07:00.0"} 57
# HELP gpunode_collector_scrape_success 1 if the collector read every value at this scrape, 0 if any failed.
# TYPE gpunode_collector_scrape_success gauge
gpunode_collector_scrape_success{collector="gpu"} 1
# HELP gpunode_gpus Number of GPUs in the inventory.
# TYPE gpunode_gpus gauge
gpunode_gpus 8
# HELP gpunode_gpus_simulated 1 if the GPUs are a simulation (--simulate-gpus), not real hardware.
# TYPE gpunode_gpus_simulated gauge
gpunode_gpus_simulated 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "DCGM_FI_DEV_GPU_TEMP", "gpunode_collector_scrape_success", "gpunode_gpus", "gpunode_gpus_simulated"); err != nil {
		t.Fatal(err)
	}
	out := gather(t, c)
	for _, line := range []string{
		`DCGM_FI_DEV_GPU_UTIL{Hostname="rig1",UUID="GPU-00000003",device="nvidia3",gpu="3",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:03:00.0"} 97`,
		`DCGM_FI_DEV_MEM_COPY_UTIL{Hostname="rig1",UUID="GPU-00000003",device="nvidia3",gpu="3",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:03:00.0"} 31`,
		`DCGM_FI_DEV_FB_USED{Hostname="rig1",UUID="GPU-00000003",device="nvidia3",gpu="3",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:03:00.0"} 10240`,
		`DCGM_FI_DEV_FB_FREE{Hostname="rig1",UUID="GPU-00000003",device="nvidia3",gpu="3",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:03:00.0"} 30720`,
		`DCGM_FI_DEV_POWER_USAGE{Hostname="rig1",UUID="GPU-00000003",device="nvidia3",gpu="3",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:03:00.0"} 312`,
		`DCGM_FI_DEV_SM_CLOCK{Hostname="rig1",UUID="GPU-00000003",device="nvidia3",gpu="3",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:03:00.0"} 1410`,
		`DCGM_FI_DEV_MEM_CLOCK{Hostname="rig1",UUID="GPU-00000003",device="nvidia3",gpu="3",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:03:00.0"} 1215`,
		`DCGM_FI_DEV_XID_ERRORS{Hostname="rig1",UUID="GPU-00000003",device="nvidia3",gpu="3",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:03:00.0"} 0`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("scrape lacks %s", line)
		}
	}
}

// TestGPUCollectorFailureMatrix: a field a GPU does not support is left out of its
// series, as dcgm-exporter does, without counting an error; a field whose reading failed
// is left out and counted; a lost GPU keeps only gpunode_gpu_healthy 0. The other GPUs
// and fields stay.
func TestGPUCollectorFailureMatrix(t *testing.T) {
	tests := []struct {
		name     string
		breakRig func(*dgxa100.Server)
		gone     map[string][]string // metric → gpu indexes whose series must be gone
		errors   []string            // gpu indexes whose sample errors are counted
		lost     []string            // gpu indexes reported unhealthy
	}{
		{"healthy", func(*dgxa100.Server) {}, nil, nil, nil},
		{"one gpu lost", func(s *dgxa100.Server) {
			d := s.Devices[6].(*dgxa100.Device)
			d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST }
		}, map[string][]string{"DCGM_FI_DEV_GPU_TEMP": {"6"}, "DCGM_FI_DEV_GPU_UTIL": {"6"}, "DCGM_FI_DEV_MEM_COPY_UTIL": {"6"},
			"DCGM_FI_DEV_FB_USED": {"6"}, "DCGM_FI_DEV_POWER_USAGE": {"6"}, "DCGM_FI_DEV_SM_CLOCK": {"6"}, "DCGM_FI_DEV_MEM_CLOCK": {"6"}, "DCGM_FI_DEV_XID_ERRORS": {"6"}}, []string{"6"}, []string{"6"}},
		{"nvml error mid-way through a sample", func(s *dgxa100.Server) {
			s.Devices[2].(*dgxa100.Device).GetClockInfoFunc = func(nvml.ClockType) (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
		}, map[string][]string{"DCGM_FI_DEV_SM_CLOCK": {"2"}, "DCGM_FI_DEV_MEM_CLOCK": {"2"}}, []string{"2"}, nil},
		{"a failing and an unsupported field", func(s *dgxa100.Server) {
			s.Devices[0].(*dgxa100.Device).GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_TIMEOUT }
			s.Devices[7].(*dgxa100.Device).GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		}, map[string][]string{"DCGM_FI_DEV_GPU_TEMP": {"0"}, "DCGM_FI_DEV_POWER_USAGE": {"7"}}, []string{"0"}, nil},
		{"utilization unsupported everywhere (MIG)", func(s *dgxa100.Server) {
			for _, d := range s.Devices {
				d.(*dgxa100.Device).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
			}
		}, map[string][]string{"DCGM_FI_DEV_GPU_UTIL": {"0", "1", "2", "3", "4", "5", "6", "7"}, "DCGM_FI_DEV_MEM_COPY_UTIL": {"0", "1", "2", "3", "4", "5", "6", "7"}}, nil, nil},
		{"every gpu failing one field", func(s *dgxa100.Server) {
			for _, d := range s.Devices {
				d.(*dgxa100.Device).GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_DRIVER_NOT_LOADED }
			}
		}, map[string][]string{"DCGM_FI_DEV_FB_USED": {"0", "1", "2", "3", "4", "5", "6", "7"}}, []string{"0", "1", "2", "3", "4", "5", "6", "7"}, nil},
	}
	metrics := []string{"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_FB_USED",
		"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_XID_ERRORS"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, inv := mockRig(t)
			c := NewGPUCollector(inv, "rig1", quiet)
			tt.breakRig(srv)
			out := gather(t, c) // the pedantic registry fails the test on an inconsistent scrape
			for _, m := range metrics {
				for i := 0; i < 8; i++ {
					g := string(rune('0' + i))
					has := strings.Contains(out, m+`{Hostname="rig1",UUID="GPU-0000000`+g+`"`)
					if has == slices.Contains(tt.gone[m], g) {
						t.Errorf("%s of gpu %s: present = %v, want %v", m, g, has, !has)
					}
				}
			}
			for i := 0; i < 8; i++ {
				g := string(rune('0' + i))
				want := "1"
				if slices.Contains(tt.lost, g) {
					want = "0"
				}
				if !strings.Contains(out, `gpunode_gpu_healthy{gpu="`+g+`",gpu_uuid="GPU-0000000`+g+`"} `+want+"\n") {
					t.Errorf("gpu %s: healthy is not %s", g, want)
				}
				errs := "0"
				if slices.Contains(tt.errors, g) {
					errs = "1"
				}
				if !strings.Contains(out, `gpunode_gpu_sample_errors_total{gpu="`+g+`"} `+errs+"\n") {
					t.Errorf("gpu %s: sample errors not %s", g, errs)
				}
			}
			wantSuccess := "1"
			if len(tt.errors) > 0 {
				wantSuccess = "0"
			}
			if !strings.Contains(out, `gpunode_collector_scrape_success{collector="gpu"} `+wantSuccess+"\n") {
				t.Errorf("scrape success is not %s:\n%s", wantSuccess, out)
			}
		})
	}
}
