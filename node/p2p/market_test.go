package p2p

import (
	"testing"
	"time"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// sealedRecord is a valid signed record of a fresh peer.
func sealedRecord(t *testing.T, seq uint64, now time.Time) (peer.ID, *capacity.Record, []byte) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	eth, err := ethcrypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	addr, sig, err := capacity.Bind(id, eth)
	if err != nil {
		t.Fatal(err)
	}
	rec := &capacity.Record{Version: capacity.Version, PeerID: id.String(), Seq: seq, Timestamp: now.Unix(),
		EthAddress: addr, EthSignature: sig, Capacity: newRig(0).cap}
	env, err := capacity.Seal(rec, key)
	if err != nil {
		t.Fatal(err)
	}
	return id, rec, env
}

// TestMarketAdmit: a record newer than the one held replaces it; an older or equal one
// is stale, except that a record held from market sync is passed on once when its
// gossip copy arrives (and never again: a replay is not relayed); a new peer past
// max_records is dropped; holds recognises exactly the envelopes held.
func TestMarketAdmit(t *testing.T) {
	now := time.Now()
	m := newMarket(time.Minute, 2)
	a, recA, envA := sealedRecord(t, 5, now)

	if got := m.admit(a, recA, envA, now, false); got != admitted {
		t.Fatalf("first record of a peer from sync: %v, want admitted", got)
	}
	if !m.holds(envA) {
		t.Error("holds does not know an envelope just admitted")
	}
	tampered := append([]byte(nil), envA...)
	tampered[len(tampered)-1] ^= 1
	if m.holds(tampered) {
		t.Error("holds recognises an envelope that differs in one byte")
	}
	if got := m.admit(a, recA, envA, now, true); got != admitRelay {
		t.Errorf("gossip copy of a record held from sync: %v, want admitRelay", got)
	}
	if got := m.admit(a, recA, envA, now, true); got != admitStale {
		t.Errorf("second gossip copy (a replay): %v, want admitStale", got)
	}
	older := *recA
	older.Seq = 4
	if got := m.admit(a, &older, envA, now, true); got != admitStale {
		t.Errorf("older record: %v, want admitStale", got)
	}
	_, recA6, envA6 := sealedRecord(t, 6, now)
	recA6.PeerID = a.String()
	if got := m.admit(a, recA6, envA6, now, true); got != admitted {
		t.Errorf("newer record: %v, want admitted", got)
	}
	if m.holds(envA) || !m.holds(envA6) {
		t.Error("holds still knows the replaced envelope, or not its replacement")
	}
	// Equal seq, other envelope: an equivocating peer is not relayed.
	if got := m.admit(a, recA6, envA, now, true); got != admitStale {
		t.Errorf("same seq, other envelope: %v, want admitStale", got)
	}

	b, recB, envB := sealedRecord(t, 1, now)
	if got := m.admit(b, recB, envB, now, true); got != admitted {
		t.Fatalf("second peer: %v", got)
	}
	c, recC, envC := sealedRecord(t, 1, now)
	if got := m.admit(c, recC, envC, now, true); got != admitFull {
		t.Errorf("third peer past max_records 2: %v, want admitFull", got)
	}
	// Once the others expire, there is room again, and the expired envelopes are
	// forgotten.
	later := now.Add(2 * time.Minute)
	recC.Timestamp = later.Unix()
	if got := m.admit(c, recC, envC, later, true); got != admitted {
		t.Errorf("third peer after the others expired: %v, want admitted", got)
	}
	if m.holds(envB) {
		t.Error("holds still knows an expired envelope")
	}
}
