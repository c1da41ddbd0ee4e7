package docker

import (
	"strings"
	"testing"
)

// TestCheckVersion holds the minimum-version table to the version strings the tools of
// patched and unpatched releases print.
func TestCheckVersion(t *testing.T) {
	tests := []struct {
		component, output string
		want              string // version found
		ok                bool
		says              string // in the error
	}{
		// nvidia-ctk --version and nvidia-container-cli --version output.
		{"nvidia-container-toolkit", "NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80a9b9d0db00d9b1d73c0128c8962c55f4d", "1.17.8", true, ""},
		{"nvidia-container-toolkit", "NVIDIA Container Toolkit CLI version 1.18.0\ncommit: 1b2e3d4", "1.18.0", true, ""},
		{"nvidia-container-toolkit", "cli-version: 1.17.7\nlib-version: 1.17.7\nbuild date: 2025-05-16", "1.17.7", false, "CVE-2025-23266"},
		{"nvidia-container-toolkit", "NVIDIA Container Toolkit CLI version 1.17.4\ncommit: 9b37d6e", "1.17.4", false, "upgrade nvidia-container-toolkit to 1.17.8"},
		{"nvidia-container-toolkit", "NVIDIA Container Toolkit CLI version 1.16.1", "1.16.1", false, "CVE-2024-0132"},
		{"nvidia-container-toolkit", "cli-version: 1.14.6", "1.14.6", false, "restart dockerd"},
		// runc as the engine reports it (docker version's runc component).
		{"runc", "1.2.8", "1.2.8", true, ""},
		{"runc", "1.3.3", "1.3.3", true, ""},
		{"runc", "v1.4.0", "1.4.0", true, ""},
		{"runc", "1.4.0-rc.3", "1.4.0-rc.3", true, ""},
		{"runc", "1.5.1", "1.5.1", true, ""},
		{"runc", "1.4.0-rc.2", "1.4.0-rc.2", false, "1.4.0-rc.3"},
		{"runc", "1.3.2", "1.3.2", false, "to 1.3.3"},
		{"runc", "1.3.0", "1.3.0", false, "CVE-2025-31133"},
		{"runc", "1.2.5", "1.2.5", false, "to 1.2.8"},
		{"runc", "1.1.12", "1.1.12", false, "CVE-2025-52565"},
		{"runc", "1.1.5+ds1", "1.1.5", false, "CVE-2024-21626"},
		// No version at all.
		{"runc", "", "", false, "no version"},
		{"nvidia-container-toolkit", "command not found", "", false, "no version"},
	}
	for _, tt := range tests {
		t.Run(tt.component+" "+firstLine(tt.output), func(t *testing.T) {
			v, err := CheckVersion(tt.component, tt.output)
			if v != tt.want {
				t.Errorf("version %q, want %q", v, tt.want)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

// FuzzCheckVersion: whatever a tool prints, the check answers without panicking, and
// never accepts output that has no version in it.
func FuzzCheckVersion(f *testing.F) {
	for _, s := range []string{"NVIDIA Container Toolkit CLI version 1.17.8", "1.4.0-rc.3", "1.1.5+ds1", "", "9999999999.1.1", "1.2.3-rc.x.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []string{"runc", "nvidia-container-toolkit"} {
			v, err := CheckVersion(c, s)
			if err == nil && !versionRE.MatchString(s) {
				t.Errorf("%s accepted %q as %q", c, s, v)
			}
		}
	})
}
