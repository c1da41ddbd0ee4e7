//go:build integration

package devchain_test

import (
	"bytes"
	"context"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/devchain"
	"github.com/gpunode/gpunode/internal/testenv"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestDevchainProcess runs `gpunode devchain` as a process and checks over JSON-RPC that
// the contracts it wrote down are deployed and that it mines on its own.
func TestDevchainProcess(t *testing.T) {
	bin := testenv.Binary(t)
	out := filepath.Join(t.TempDir(), "devchain.json")
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "devchain", "--listen", listen, "--out", out, "--block-period", "200ms")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	var dep devchain.Deployment
	for i := 0; ; i++ {
		var err error
		if dep, err = devchain.ReadDeployment(out); err == nil {
			break
		}
		if i > 600 {
			t.Fatalf("no deployment file after 60s: %v\n%s", err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dep.RPCURL != "http://"+listen {
		t.Fatalf("rpc_url %q, want http://%s", dep.RPCURL, listen)
	}
	c, err := ethclient.DialContext(ctx, dep.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, err := c.ChainID(ctx)
	if err != nil || id.Uint64() != dep.ChainID {
		t.Fatalf("chain id %v %v, file says %d\n%s", id, err, dep.ChainID, stderr.String())
	}
	for _, a := range []struct {
		name string
		addr [20]byte
	}{{"job market", dep.JobMarket}, {"job market v2", dep.JobMarketV2}, {"token", dep.Token}} {
		code, err := c.CodeAt(ctx, a.addr, nil)
		if err != nil || len(code) == 0 {
			t.Fatalf("%s at %x has no code (%v)", a.name, a.addr, err)
		}
	}
	m := bindings.NewJobMarket()
	res, err := c.CallContract(ctx, ethereum.CallMsg{To: &dep.JobMarket, Data: m.PackJobCount()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.UnpackJobCount(res); err != nil || n.Sign() != 0 {
		t.Fatalf("jobCount %v %v", n, err)
	}
	bal, err := c.BalanceAt(ctx, dep.Accounts[0].Address, nil)
	if err != nil || bal.Cmp(big.NewInt(0)) <= 0 {
		t.Fatalf("dev account balance %v %v", bal, err)
	}
	first, err := c.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		n, err := c.BlockNumber(ctx)
		if err == nil && n > first {
			break
		}
		if i > 100 {
			t.Fatalf("no new block in 10s (head %d)", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
