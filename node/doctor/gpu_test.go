package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"

	"github.com/gpunode/gpunode/runtime/gpu"
)

// want checks a result's verdict, and that its detail and fix say what they must.
func want(t *testing.T, res Result, status Status, detail, fix string) {
	t.Helper()
	if res.Status != status {
		t.Errorf("%s: status %s, want %s (detail %q, fix %q)", res.Name, res.Status, status, res.Detail, res.Fix)
	}
	if !strings.Contains(res.Detail, detail) {
		t.Errorf("%s: detail %q does not say %q", res.Name, res.Detail, detail)
	}
	if fix == "" && res.Fix != "" && status == OK {
		t.Errorf("%s: ok with a fix %q", res.Name, res.Fix)
	}
	if !strings.Contains(res.Fix, fix) {
		t.Errorf("%s: fix %q does not say %q", res.Name, res.Fix, fix)
	}
}

// rig is go-nvml's mock of an 8×A100 server, with persistence mode as given per GPU
// (nil: not supported) and GPU lost at index lost (-1: none).
func rig(t *testing.T, persistence func(i int) (nvml.EnableState, nvml.Return), lost int) *gpu.Inventory {
	t.Helper()
	srv := dgxa100.New()
	for i, d := range srv.Devices {
		md := d.(*dgxa100.Device)
		md.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return persistence(i) }
	}
	if lost >= 0 {
		devices := srv.Devices
		srv.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
			if i == lost {
				return nil, nvml.ERROR_GPU_IS_LOST
			}
			return devices[i], nvml.SUCCESS
		}
	}
	inv, err := gpu.New(srv, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inv.Close() })
	return inv
}

func allOn(int) (nvml.EnableState, nvml.Return) { return nvml.FEATURE_ENABLED, nvml.SUCCESS }

// openError is how gpu.New fails on a driver whose nvmlInit returns ret.
func openError(t *testing.T, ret nvml.Return) error {
	t.Helper()
	srv := dgxa100.New()
	srv.InitFunc = func() nvml.Return { return ret }
	_, err := gpu.New(srv, false)
	if err == nil {
		t.Fatalf("gpu.New with init %v: no error", ret)
	}
	return err
}

func TestNVIDIA(t *testing.T) {
	// This machine has no NVIDIA driver: the real NVML fails to load.
	_, noDriver := gpu.New(nvml.New(), false)
	if !errors.Is(noDriver, gpu.ErrNoDriver) {
		t.Fatalf("real NVML here: %v, want ErrNoDriver (this test expects a machine without an NVIDIA driver)", noDriver)
	}
	for _, tc := range []struct {
		name        string
		inv         *gpu.Inventory
		err         error
		status      Status
		detail, fix string
	}{
		{"dgxa100", rig(t, allOn, -1), nil, OK, "8× Mock NVIDIA A100-SXM4-40GB", ""},
		{"no driver here", nil, noDriver, Warn, "running CPU-only", FixNoDriver},
		{"driver upgraded without reboot", nil, openError(t, nvml.ERROR_LIB_RM_VERSION_MISMATCH), Fail, "differ in version", FixDriverMismatch},
		{"module not loaded", nil, openError(t, nvml.ERROR_DRIVER_NOT_LOADED), Fail, "not loaded", FixDriverNotLoaded},
		{"no permission", nil, openError(t, nvml.ERROR_NO_PERMISSION), Fail, "no permission", FixNoPermission},
		{"a GPU fell off the bus", rig(t, allOn, 3), nil, Fail, "1 of 8 GPUs out of service: gpu 3", FixUnhealthyGPU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g GPUs
			if tc.inv != nil {
				g = tc.inv
			}
			want(t, NVIDIA(g, tc.err), tc.status, tc.detail, tc.fix)
		})
	}
}

func TestPersistence(t *testing.T) {
	_, noDriver := gpu.New(nvml.New(), false)
	for _, tc := range []struct {
		name        string
		inv         *gpu.Inventory
		err         error
		status      Status
		detail, fix string
	}{
		{"on everywhere", rig(t, allOn, -1), nil, OK, "on for 8 of 8 GPUs", ""},
		{"off on two", rig(t, func(i int) (nvml.EnableState, nvml.Return) {
			if i == 2 || i == 5 {
				return nvml.FEATURE_DISABLED, nvml.SUCCESS
			}
			return nvml.FEATURE_ENABLED, nvml.SUCCESS
		}, -1), nil, Warn, "off on GPU 2, 5", FixPersistence},
		{"unreadable", rig(t, func(int) (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }, -1), nil, Warn, "unreadable", FixPersistence},
		{"not supported", rig(t, func(int) (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }, -1), nil, Skip, "not supported", ""},
		{"cpu-only", nil, noDriver, Skip, "CPU-only", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g GPUs
			if tc.inv != nil {
				g = tc.inv
			}
			want(t, Persistence(g, tc.err), tc.status, tc.detail, tc.fix)
		})
	}
}

// toolOutputs stands in for the toolkit's and runc's version output.
type toolOutputs map[string]string

func (o toolOutputs) ComponentVersion(_ context.Context, component string) (string, error) {
	out, found := o[component]
	if !found {
		return "", errors.New(component + ": version unknown (exec: \"nvidia-ctk\": executable file not found in $PATH)")
	}
	return out, nil
}

var someGPUs = []string{"GPU-b8ea3855-276c-c9cb-b366-c6fa655957c5"}

func TestToolkit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		out         toolOutputs
		gpus        []string
		status      Status
		detail, fix string
	}{
		{"patched", toolOutputs{"nvidia-container-toolkit": "NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80a9b9d0db00d9b1d73c0128c8962c55f4d\n"}, someGPUs, OK, "1.17.8 (patched)", ""},
		{"newer", toolOutputs{"nvidia-container-toolkit": "NVIDIA Container Toolkit CLI version 1.18.0\n"}, someGPUs, OK, "1.18.0", ""},
		{"CVE-2025-23266", toolOutputs{"nvidia-container-toolkit": "NVIDIA Container Toolkit CLI version 1.17.7\n"}, someGPUs, Fail, "1.17.7 is older than 1.17.8", "upgrade nvidia-container-toolkit to 1.17.8 or later"},
		{"old cli", toolOutputs{"nvidia-container-toolkit": "cli-version: 1.14.1\nlib-version: 1.14.1\n"}, someGPUs, Fail, "CVE-2024-0132", "upgrade nvidia-container-toolkit"},
		{"garbage", toolOutputs{"nvidia-container-toolkit": "command not understood"}, someGPUs, Fail, "no version", "upgrade nvidia-container-toolkit"},
		{"not installed", toolOutputs{}, someGPUs, Fail, "version unknown", FixToolkitMissing},
		{"cpu-only", toolOutputs{}, nil, Skip, "CPU-only", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, Toolkit(t.Context(), tc.out, tc.gpus), tc.status, tc.detail, tc.fix)
		})
	}
}

func TestRunc(t *testing.T) {
	for _, tc := range []struct {
		name        string
		out         toolOutputs
		gpus        []string
		engine      error
		status      Status
		detail, fix string
	}{
		{"patched 1.2", toolOutputs{"runc": "1.2.8"}, someGPUs, nil, OK, "runc 1.2.8 (patched)", ""},
		{"patched 1.3", toolOutputs{"runc": "1.3.3"}, someGPUs, nil, OK, "runc 1.3.3", ""},
		{"1.3 unpatched on a GPU rig", toolOutputs{"runc": "1.3.2"}, someGPUs, nil, Fail, "older than 1.3.3", "upgrade runc to 1.2.8, 1.3.3 on 1.3.x"},
		{"debian 12 on a GPU rig", toolOutputs{"runc": "1.1.5+ds1"}, someGPUs, nil, Fail, "CVE-2024-21626", "upgrade runc"},
		{"debian 12 CPU-only", toolOutputs{"runc": "1.1.5+ds1"}, nil, nil, Warn, "older than 1.2.8", "upgrade runc"},
		{"engine silent on runc", toolOutputs{}, someGPUs, nil, Fail, "version unknown", "upgrade runc"},
		{"engine down", toolOutputs{"runc": "1.2.8"}, nil, errors.New("down"), Skip, "does not answer", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, Runc(t.Context(), tc.out, tc.gpus, tc.engine), tc.status, tc.detail, tc.fix)
		})
	}
}

func TestCDISpec(t *testing.T) {
	withSpec, empty, other := t.TempDir(), t.TempDir(), t.TempDir()
	spec := "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n"
	if err := os.WriteFile(filepath.Join(withSpec, "nvidia.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(other, "vendor.yaml"), []byte("kind: vendor.com/device\n"), 0o644)
	want(t, CDISpec([]string{empty, withSpec}, someGPUs), OK, filepath.Join(withSpec, "nvidia.yaml"), "")
	want(t, CDISpec([]string{empty, other, filepath.Join(empty, "none")}, someGPUs), Warn, "no NVIDIA CDI spec", FixCDISpec)
	want(t, CDISpec([]string{withSpec}, nil), Skip, "CPU-only", "")
}
