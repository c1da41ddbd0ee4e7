package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

var testStart = time.Unix(1_700_000_000, 0)

func TestServeMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, inv := mockRig(t)
	reg := NewRegistry(testStart)
	reg.MustRegister(NewGPUCollector(inv, "rig1", quiet))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, reg, quiet) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"gpunode_build_info{", "gpunode_start_time_seconds 1.7e+09", "gpunode_uptime_seconds", "DCGM_FI_DEV_POWER_USAGE{"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := (Config{Listen: "9400"}).Validate(); len(errs) != 1 {
		t.Errorf("listen without host: %v", errs)
	}
	if errs := Default().Validate(); len(errs) != 0 {
		t.Errorf("default: %v", errs)
	}
}
