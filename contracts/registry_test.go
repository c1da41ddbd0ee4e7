package contracts_test

import (
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
)

// TestProviderRegistry: registration keeps the peer ID and report hashes on chain and
// the strings in the event; re-registering updates them; bad lengths are refused.
func TestProviderRegistry(t *testing.T) {
	c := newChain(t)
	report := crypto.Keccak256Hash([]byte("report v2"))
	r := c.mustSend(c.outsider, c.market, nil, market.PackRegisterProvider("12D3KooWNew", "bafyreportv2", report))
	ev, err := market.UnpackProviderRegisteredEvent(r.Logs[0])
	if err != nil {
		t.Fatal(err)
	}
	if ev.Provider != c.outsider.addr || ev.PeerId != "12D3KooWNew" || ev.ReportCID != "bafyreportv2" || ev.ReportHash != report {
		t.Fatalf("event %+v", ev)
	}
	p, err := market.UnpackProviders(c.call(c.market, market.PackProviders(c.outsider.addr)))
	if err != nil {
		t.Fatal(err)
	}
	if p.PeerIdHash != crypto.Keccak256Hash([]byte("12D3KooWNew")) || p.ReportHash != report || p.RegisteredAt.Sign() == 0 {
		t.Fatalf("stored %+v", p)
	}
	// Now registered, the outsider may accept.
	id := c.post(c.params([20]byte{}, 2))
	c.mustSend(c.outsider, c.market, bond, market.PackAcceptJob(id, c.valAddrs))

	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	c.mustRevert("BadParams", c.outsider, c.market, nil, market.PackRegisterProvider("", "bafy", report))
	c.mustRevert("BadParams", c.outsider, c.market, nil, market.PackRegisterProvider(string(long), "bafy", report))
}
