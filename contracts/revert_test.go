package contracts_test

import (
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/contracts"
)

// FuzzDecodeRevert: revert data comes from whatever RPC endpoint the node talks to.
func FuzzDecodeRevert(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		if r := contracts.DecodeRevert(b); r != nil && r.Name == "" {
			t.Fatal("decoded a revert without a name")
		}
	})
}

func TestDecodeRevert(t *testing.T) {
	for _, tc := range []struct {
		hex  string
		want string
	}{
		{"0x35d90805", "AlreadyAttested"},
		{hexutil.Encode(crypto.Keccak256([]byte("WrongReveal()"))[:4]), "WrongReveal"}, // JobMarketV2
		{hexutil.Encode(crypto.Keccak256([]byte("StakeLocked(uint40)"))[:4]) + "0000000000000000000000000000000000000000000000000000000000000007", "StakeLocked"},
		{"0x08c379a0000000000000000000000000000000000000000000000000000000000000002000000000000000000000000000000000000000000000000000000000000000026869000000000000000000000000000000000000000000000000000000000000", "Error"},
		{"0xdeadbeef", ""},
		{"0x01", ""},
	} {
		r := contracts.DecodeRevert(common.FromHex(tc.hex))
		got := ""
		if r != nil {
			got = r.Name
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.hex, got, tc.want)
		}
	}
}
