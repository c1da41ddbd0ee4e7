package pool

import (
	"errors"
	"math"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

var (
	alice = common.HexToAddress("0x00000000000000000000000000000000000000a1")
	bob   = common.HexToAddress("0x00000000000000000000000000000000000000b2")
	carol = common.HexToAddress("0x00000000000000000000000000000000000000c3")
)

func wei(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return v
}

func TestDivide(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reward string
		fee    uint32
		works  []Work
		want   map[common.Address]string
		feeWei string
	}{
		{"one member takes all but the fee", "1000000", 500,
			[]Work{{alice, 3600, 10}}, map[common.Address]string{alice: "950000"}, "50000"},
		{"GPU-seconds times score", "1000000", 0,
			// alice: 100 s × 30 = 3000; bob: 200 s × 10 = 2000 (twice the time, a third of the score)
			[]Work{{alice, 100, 30}, {bob, 200, 10}}, map[common.Address]string{alice: "600000", bob: "400000"}, "0"},
		{"records of one member add up", "900", 0,
			[]Work{{alice, 1, 1}, {bob, 1, 1}, {alice, 1, 1}}, map[common.Address]string{alice: "600", bob: "300"}, "0"},
		{"rounding goes to the pool", "100", 0,
			[]Work{{alice, 1, 1}, {bob, 1, 1}, {carol, 1, 1}}, map[common.Address]string{alice: "33", bob: "33", carol: "33"}, "1"},
		{"fee rounds down, remainder of shares to the pool", "1001", 1000,
			// fee 100.1 → 100; 901 between two: 450 each, 1 left → fee 101
			[]Work{{alice, 5, 2}, {bob, 10, 1}}, map[common.Address]string{alice: "450", bob: "450"}, "101"},
		{"whole reward as fee", "777", MaxBPS,
			[]Work{{alice, 5, 2}}, map[common.Address]string{alice: "0"}, "777"},
		{"a member with no work gets nothing", "10", 0,
			[]Work{{alice, 5, 2}, {bob, 0, 50}}, map[common.Address]string{alice: "10"}, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Divide(wei(tc.reward), tc.fee, tc.works)
			if err != nil {
				t.Fatal(err)
			}
			if s.Fee.String() != tc.feeWei {
				t.Errorf("fee %s, want %s", s.Fee, tc.feeWei)
			}
			if len(s.Shares) != len(tc.want) {
				t.Fatalf("shares %+v, want %v", s.Shares, tc.want)
			}
			for _, sh := range s.Shares {
				if sh.Wei.String() != tc.want[sh.Member] {
					t.Errorf("%s gets %s, want %s", sh.Member, sh.Wei, tc.want[sh.Member])
				}
			}
			checkInvariants(t, s, tc.works)
		})
	}
}

func TestDivideRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reward *big.Int
		fee    uint32
		works  []Work
		want   error
	}{
		{"nil reward", nil, 0, []Work{{alice, 1, 1}}, ErrBadReward},
		{"negative reward", big.NewInt(-1), 0, []Work{{alice, 1, 1}}, ErrBadReward},
		{"fee above 100 %", big.NewInt(1), MaxBPS + 1, []Work{{alice, 1, 1}}, ErrBadReward},
		{"no work at all", big.NewInt(1), 0, nil, ErrNoWork},
		{"only zero work", big.NewInt(1), 0, []Work{{alice, 0, 5}}, ErrNoWork},
		{"no address", big.NewInt(1), 0, []Work{{common.Address{}, 1, 1}}, ErrBadWork},
		{"negative seconds", big.NewInt(1), 0, []Work{{alice, -1, 1}}, ErrBadWork},
		{"NaN score", big.NewInt(1), 0, []Work{{alice, 1, math.NaN()}}, ErrBadWork},
		{"infinite seconds", big.NewInt(1), 0, []Work{{alice, math.Inf(1), 1}}, ErrBadWork},
		{"implausible score", big.NewInt(1), 0, []Work{{alice, 1, 1e13}}, ErrBadWork},
		{"too many records", big.NewInt(1), 0, make([]Work, MaxMembers+1), ErrBadWork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Divide(tc.reward, tc.fee, tc.works); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// checkInvariants: the fee and the shares add up to the reward; only members that
// worked get a share; nobody gets a negative amount.
func checkInvariants(t *testing.T, s Split, works []Work) {
	t.Helper()
	sum := new(big.Int).Set(s.Fee)
	named := map[common.Address]bool{}
	for _, w := range works {
		named[w.Member] = true
	}
	for _, sh := range s.Shares {
		if sh.Wei.Sign() < 0 || sh.Weight.Sign() <= 0 || !named[sh.Member] {
			t.Fatalf("bad share %+v", sh)
		}
		sum.Add(sum, sh.Wei)
	}
	if sum.Cmp(s.Reward) != 0 {
		t.Fatalf("fee + shares = %s, reward %s", sum, s.Reward)
	}
	if s.Fee.Sign() < 0 {
		t.Fatalf("negative fee %s", s.Fee)
	}
}

// FuzzDivide: member reports are untrusted; whatever they say, Divide either refuses
// with a clear error or pays out exactly the reward.
func FuzzDivide(f *testing.F) {
	f.Add(uint64(1_000_000), uint32(500), 3600.0, 10.5, 1800.0, 21.0)
	f.Add(uint64(1), uint32(0), 0.001, 0.001, 1e6, 1e3)
	f.Add(uint64(0), uint32(MaxBPS), 1.0, 1.0, 1.0, 1.0)
	f.Add(uint64(math.MaxUint64), uint32(1), 1e11, 1e11, 0.0, 0.0)
	f.Fuzz(func(t *testing.T, reward uint64, fee uint32, s1, sc1, s2, sc2 float64) {
		works := []Work{{alice, s1, sc1}, {bob, s2, sc2}}
		r := new(big.Int).Mul(new(big.Int).SetUint64(reward), big.NewInt(1e9))
		s, err := Divide(r, fee, works)
		if err != nil {
			if !errors.Is(err, ErrBadWork) && !errors.Is(err, ErrNoWork) && !errors.Is(err, ErrBadReward) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		checkInvariants(t, s, works)
		// Proportionality: a share is rest × weight / total rounded down.
		rest := new(big.Int).Sub(r, new(big.Int).Quo(new(big.Int).Mul(r, big.NewInt(int64(fee))), big.NewInt(MaxBPS)))
		total := new(big.Int)
		for _, sh := range s.Shares {
			total.Add(total, sh.Weight)
		}
		for _, sh := range s.Shares {
			want := new(big.Int).Quo(new(big.Int).Mul(rest, sh.Weight), total)
			if want.Cmp(sh.Wei) != 0 {
				t.Fatalf("%s gets %s, want %s", sh.Member, sh.Wei, want)
			}
		}
	})
}
