package pool

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

func members(n int) map[common.Address]*big.Int {
	out := map[common.Address]*big.Int{}
	for i := 1; i <= n; i++ {
		out[common.BigToAddress(big.NewInt(int64(1000+i)))] = big.NewInt(int64(i * 1000))
	}
	return out
}

// Every payout of trees of every shape up to 33 leaves proves against the root, and
// nothing else does: another amount, another epoch, another contract, another member.
func TestEpochProofs(t *testing.T) {
	contract := common.HexToAddress("0x00000000000000000000000000000000000c0de1")
	for n := 1; n <= 33; n++ {
		e, err := NewEpoch(contract, 3, members(n))
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Payouts) != n {
			t.Fatalf("%d payouts for %d members", len(e.Payouts), n)
		}
		sum := new(big.Int)
		for _, p := range e.Payouts {
			sum.Add(sum, p.Wei)
			if !e.Verify(p) {
				t.Fatalf("n=%d: payout of %s does not verify", n, p.Member)
			}
			more := p
			more.Wei = new(big.Int).Add(p.Wei, big.NewInt(1))
			if e.Verify(more) {
				t.Fatalf("n=%d: a raised amount verifies", n)
			}
			other := e
			other.Number = 4
			if other.Verify(p) {
				t.Fatalf("n=%d: the proof verifies in another epoch", n)
			}
			other = e
			other.Contract = common.HexToAddress("0x00000000000000000000000000000000000c0de2")
			if other.Verify(p) {
				t.Fatalf("n=%d: the proof verifies for another contract", n)
			}
			if n > 1 {
				stolen := p
				stolen.Member = common.HexToAddress("0x00000000000000000000000000000000000bad00")
				if e.Verify(stolen) {
					t.Fatalf("n=%d: another member can use the proof", n)
				}
			}
		}
		if sum.Cmp(e.Total) != 0 {
			t.Fatalf("total %s, payouts add up to %s", e.Total, sum)
		}
	}
}

func TestNewEpochRefuses(t *testing.T) {
	if _, err := NewEpoch(common.Address{}, 0, map[common.Address]*big.Int{alice: big.NewInt(0)}); err == nil {
		t.Fatal("an epoch of nothing owed was built")
	}
	if _, err := NewEpoch(common.Address{}, 0, map[common.Address]*big.Int{alice: big.NewInt(-5)}); err == nil {
		t.Fatal("an epoch with a negative amount was built")
	}
}

// FuzzVerify: a proof handed to a member is untrusted; checking it never panics and only
// the real one passes.
func FuzzVerify(f *testing.F) {
	f.Add([]byte{}, uint64(1))
	f.Add(make([]byte, 64), uint64(1000))
	f.Fuzz(func(t *testing.T, proof []byte, amount uint64) {
		e, err := NewEpoch(common.Address{1}, 0, members(5))
		if err != nil {
			t.Fatal(err)
		}
		p := Payout{Member: e.Payouts[0].Member, Wei: new(big.Int).SetUint64(amount)}
		for len(proof) >= 32 && len(p.Proof) < 64 {
			p.Proof = append(p.Proof, common.BytesToHash(proof[:32]))
			proof = proof[32:]
		}
		if e.Verify(p) && (p.Wei.Cmp(e.Payouts[0].Wei) != 0 || len(p.Proof) != len(e.Payouts[0].Proof)) {
			t.Fatalf("forged payout %+v verifies", p)
		}
	})
}
