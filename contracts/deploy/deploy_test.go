package deploy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

// TestWriteRead: a deployment written is read back the same, from a file only its owner
// may read (it holds the dev keys).
func TestWriteRead(t *testing.T) {
	d := Deployment{Version: 1, ChainID: 1337, RPCURL: "http://127.0.0.1:8545", JobMarket: common.HexToAddress("0x01"),
		JobMarketV2: common.HexToAddress("0x02"), Token: common.HexToAddress("0x03"), DeployBlock: 4,
		Accounts: []Account{{Address: common.HexToAddress("0x05"), PrivateKey: "0x06"}}}
	path := filepath.Join(t.TempDir(), "sub", "devchain.json")
	if err := Write(path, d); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.RPCURL != d.RPCURL || got.JobMarketV2 != d.JobMarketV2 || got.DeployBlock != 4 || len(got.Accounts) != 1 || got.Accounts[0] != d.Accounts[0] {
		t.Errorf("read back %+v, wrote %+v", got, d)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v %v, want 0600", fi.Mode(), err)
	}
}

// TestParseRefuses: unknown fields, other versions, missing fields and oversized files
// are refused, each saying what is wrong.
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ doc, words string }{
		{`{"version":1,"chain_id":1,"rpc_url":"x","job_market":"0x0000000000000000000000000000000000000001","extra":1}`, "unknown field"},
		{`{"version":2,"chain_id":1,"rpc_url":"x","job_market":"0x0000000000000000000000000000000000000001"}`, "version 2"},
		{`{"version":1,"rpc_url":"x","job_market":"0x0000000000000000000000000000000000000001"}`, "chain_id"},
		{`{"version":1,"chain_id":1,"job_market":"0x0000000000000000000000000000000000000001"}`, "rpc_url"},
		{`{"version":1,"chain_id":1,"rpc_url":"x"}`, "job_market"},
		{`{"version":1,` + strings.Repeat(" ", maxBytes) + `}`, "larger than"},
	} {
		if _, err := Parse([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.words) {
			t.Errorf("%.60s: %v, want an error saying %q", c.doc, err, c.words)
		}
	}
	if _, err := Read(filepath.Join(t.TempDir(), "absent.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err == nil && (d.Version != 1 || d.ChainID == 0 || d.RPCURL == "" || d.JobMarket == (common.Address{})) {
			t.Fatalf("accepted an incomplete deployment %+v", d)
		}
	})
}
