package docker

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCeiling(t *testing.T) {
	for _, tc := range []struct{ ask, limit, want int64 }{
		{0, 100, 100}, {50, 100, 50}, {100, 100, 100}, {500, 100, 100}, {50, 0, 50}, {0, 0, 0},
	} {
		if got := ceiling(tc.ask, tc.limit); got != tc.want {
			t.Errorf("ceiling(%d, %d) = %d, want %d", tc.ask, tc.limit, got, tc.want)
		}
	}
	if got := ceiling(48*time.Hour, 24*time.Hour); got != 24*time.Hour {
		t.Errorf("run time ceiling = %s", got)
	}
	if got := ceiling(2.5, 2.0); got != 2 {
		t.Errorf("cpu ceiling = %v", got)
	}
}

func TestHostCaps(t *testing.T) {
	c := HostCaps(Config{})
	if c.CPUs < 1 || c.MemoryBytes < 6<<20 {
		t.Errorf("host caps: %v CPUs, %d bytes; want both non-zero", c.CPUs, c.MemoryBytes)
	}
	if c := HostCaps(Config{CPUs: 0.5, MemoryBytes: 64 << 20}); c.CPUs != 0.5 || c.MemoryBytes != 64<<20 {
		t.Errorf("operator's caps replaced: %+v", c)
	}
	for _, tc := range []struct{ total, want int64 }{
		{24 << 30, 24<<30 - (24<<30)/10}, // a tenth is more than 2 GiB
		{8 << 30, 6 << 30},               // 2 GiB reserved
		{3 << 30, 3 << 29},               // never less than half
		{4 << 20, 6 << 20},               // never below Docker's minimum
	} {
		if got := memoryCap(tc.total); got != tc.want {
			t.Errorf("memoryCap(%d) = %d, want %d", tc.total, got, tc.want)
		}
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"good": "MemFree:  1000 kB\nMemTotal:       24576000 kB\n",
		"none": "MemFree: 1 kB\n",
		"bad":  "MemTotal: lots kB\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		n, err := memTotal(p)
		switch name {
		case "good":
			if err != nil || n != 24576000<<10 {
				t.Errorf("memTotal(%s) = %d, %v", name, n, err)
			}
		default:
			if err == nil {
				t.Errorf("memTotal(%s) = %d, want an error", name, n)
			}
		}
	}
}
