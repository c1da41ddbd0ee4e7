package devchain_test

import (
	"context"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
)

// TestRegisterValidator stakes two dev accounts as v2 validators over JSON-RPC, as the
// e2e does, and checks the registry; a stake under the minimum is refused.
func TestRegisterValidator(t *testing.T) {
	dep := devchain.StartTest(t, 50*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := ethclient.DialContext(ctx, dep.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 1; i <= 2; i++ {
		if err := devchain.RegisterValidator(ctx, c, dep.JobMarketV2, devchain.DevKey(i), "12D3KooWValidator"+strconv.Itoa(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	m := bindings.NewJobMarketV2()
	call := func(data []byte) []byte {
		out, err := c.CallContract(ctx, ethereum.CallMsg{To: &dep.JobMarketV2, Data: data}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if n, err := m.UnpackPoolSize(call(m.PackPoolSize())); err != nil || n.Int64() != 2 {
		t.Fatalf("pool size %v %v, want 2", n, err)
	}
	v, err := m.UnpackValidatorOf(call(m.PackValidatorOf(dep.Accounts[1].Address)))
	if err != nil || v.Stake.Cmp(devchain.DevRegistry().MinStake) != 0 || v.PoolIndex == 0 {
		t.Fatalf("validator record %+v %v", v, err)
	}
	err = devchain.RegisterValidator(ctx, c, dep.JobMarketV2, devchain.DevKey(3), "12D3KooWValidator3", big.NewInt(1))
	if !contracts.IsRevert(err, "BadParams") {
		t.Fatalf("a stake of 1 wei: got %v, want BadParams", err)
	}
	if err := devchain.RegisterValidator(ctx, c, [20]byte{}, devchain.DevKey(3), "x", nil); err == nil {
		t.Fatal("registered against no market")
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := devchain.Default().Validate(); len(errs) != 0 {
		t.Fatalf("default invalid: %v", errs)
	}
	bad := devchain.Config{Listen: "0.0.0.0:8545", BlockPeriod: 0, Accounts: 0}
	if errs := bad.Validate(); len(errs) != 4 {
		t.Fatalf("want 4 problems, got %v", errs)
	}
}

func FuzzParseDeployment(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := devchain.ParseDeployment(b)
		if err == nil && (d.ChainID == 0 || d.RPCURL == "") {
			t.Fatalf("accepted an incomplete deployment %+v", d)
		}
	})
}

// TestParseDeploymentV2: a file written before v2 still reads (no v2 address), and a v2
// file carries the v2 market.
func TestParseDeploymentV2(t *testing.T) {
	for file, wantV2 := range map[string]bool{"testdata/good.json": false, "testdata/good-v2.json": true} {
		d, err := devchain.ReadDeployment(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got := d.JobMarketV2 != [20]byte{}; got != wantV2 {
			t.Errorf("%s: JobMarketV2 %s, want set=%v", file, d.JobMarketV2, wantV2)
		}
	}
}
