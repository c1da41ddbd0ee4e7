package market

import (
	"strings"
	"testing"

	"github.com/gpunode/gpunode/node/api"
)

func TestJobParams(t *testing.T) {
	good := api.PostJobRequest{
		ManifestCID: "bafy", ManifestHash: strings.Repeat("ab", 32), Threshold: 900000,
		Validators: []string{"0x00000000000000000000000000000000000000a1", "0x00000000000000000000000000000000000000a2"},
		Quorum:     2, RewardWei: "1000", ValidatorFeeWei: "10", AcceptWithinSeconds: 60, RunWindowSeconds: 3600, AttestWindowSeconds: 600,
	}
	p, err := jobParams(good)
	if err != nil {
		t.Fatal(err)
	}
	if p.Reward.String() != "1000" || p.ValidatorFee.String() != "10" || p.Bond.Sign() != 0 || len(p.Validators) != 2 || p.ManifestHash[0] != 0xab || p.Threshold != 900000 {
		t.Errorf("params %+v", p)
	}
	tests := []struct {
		name string
		mut  func(*api.PostJobRequest)
		want string
	}{
		{"negative reward", func(r *api.PostJobRequest) { r.RewardWei = "-1" }, "reward_wei"},
		{"reward not a number", func(r *api.PostJobRequest) { r.RewardWei = "1e18" }, "reward_wei"},
		{"short hash", func(r *api.PostJobRequest) { r.ManifestHash = "abcd" }, "manifest_hash"},
		{"no cid", func(r *api.PostJobRequest) { r.ManifestCID = "" }, "manifest_cid"},
		{"bad validator", func(r *api.PostJobRequest) { r.Validators = []string{"alice"} }, `validator "alice"`},
		{"quorum above validators", func(r *api.PostJobRequest) { r.Quorum = 3 }, "quorum 3"},
		{"no quorum", func(r *api.PostJobRequest) { r.Quorum = 0 }, "quorum 0"},
		{"bad token", func(r *api.PostJobRequest) { r.Token = "usdc" }, `token "usdc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := good
			req.Validators = append([]string(nil), good.Validators...)
			tt.mut(&req)
			if _, err := jobParams(req); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to name %s", err, tt.want)
			}
		})
	}
}
