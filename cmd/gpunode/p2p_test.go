package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/node/api"
)

func TestPrintMarket(t *testing.T) {
	var m api.P2PMarket
	err := json.Unmarshal([]byte(`{"records":[
		{"peer_id":"12D3KooWA","self":true,"gpus":[{"model":"NVIDIA A100","memory_mib":40960,"count":8}],
		 "total_gpus":8,"free_gpus":6,"score":1234.5,"price_per_gpu_hour":"1000","age_s":12},
		{"peer_id":"12D3KooWB","gpus":[],"total_gpus":0,"free_gpus":0,"score":3,"price_per_gpu_hour":"5","age_s":70}]}`), &m)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printMarket(&out, m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PEER", "12D3KooWA (self)", "8× NVIDIA A100", "1234.5", "6/8", "12s", "12D3KooWB", "none", "1m10s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("market table lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	printMarket(&out, api.P2PMarket{})
	if !strings.Contains(out.String(), "gpunode peers") {
		t.Errorf("empty market says %q", out.String())
	}
}
