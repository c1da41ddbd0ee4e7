package pool

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"sort"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// Payout is one member's claim in an epoch of the PoolPayouts contract, with its proof.
type Payout struct {
	Member common.Address `json:"member"`
	Wei    *big.Int       `json:"wei"`
	Proof  []common.Hash  `json:"proof"`
}

// Epoch is a published split: the members' amounts under one Merkle root, bound to one
// contract and one epoch number.
type Epoch struct {
	Contract common.Address `json:"contract"`
	Number   uint64         `json:"number"`
	Root     common.Hash    `json:"root"`
	Total    *big.Int       `json:"total_wei"`
	Payouts  []Payout       `json:"payouts"` // by member address, ascending
}

var leafArgs = func() abi.Arguments {
	addr, _ := abi.NewType("address", "", nil)
	u256, _ := abi.NewType("uint256", "", nil)
	return abi.Arguments{{Type: addr}, {Type: u256}, {Type: addr}, {Type: u256}}
}()

// Leaf is the contract's leaf of a member's amount: keccak256(bytes.concat(keccak256(
// abi.encode(contract, epoch, member, amount)))).
func Leaf(contract common.Address, epoch uint64, member common.Address, amount *big.Int) common.Hash {
	enc, err := leafArgs.Pack(contract, new(big.Int).SetUint64(epoch), member, amount)
	if err != nil {
		panic(err) // fixed types
	}
	return crypto.Keccak256Hash(crypto.Keccak256(enc))
}

// hashPair is OpenZeppelin's commutative pair hash: the smaller first.
func hashPair(a, b common.Hash) common.Hash {
	if bytes.Compare(a[:], b[:]) > 0 {
		a, b = b, a
	}
	return crypto.Keccak256Hash(a[:], b[:])
}

// NewEpoch builds the Merkle tree over the amounts owed (zero amounts left out) and the
// proof of each member's leaf.
func NewEpoch(contract common.Address, number uint64, owed map[common.Address]*big.Int) (Epoch, error) {
	e := Epoch{Contract: contract, Number: number, Total: new(big.Int)}
	for m, amt := range owed {
		if amt == nil || amt.Sign() < 0 {
			return Epoch{}, fmt.Errorf("epoch %d: member %s: bad amount %v", number, m, amt)
		}
		if amt.Sign() == 0 {
			continue
		}
		e.Payouts = append(e.Payouts, Payout{Member: m, Wei: new(big.Int).Set(amt)})
		e.Total.Add(e.Total, amt)
	}
	if len(e.Payouts) == 0 {
		return Epoch{}, fmt.Errorf("epoch %d: nothing owed", number)
	}
	sort.Slice(e.Payouts, func(i, j int) bool { return e.Payouts[i].Member.Cmp(e.Payouts[j].Member) < 0 })
	leaves := make([]common.Hash, len(e.Payouts))
	for i, p := range e.Payouts {
		leaves[i] = Leaf(contract, number, p.Member, p.Wei)
	}
	// Each level pairs neighbours; an odd one out goes up as it is. idx tracks where
	// each payout's node is on the current level.
	idx := make([]int, len(leaves))
	for i := range idx {
		idx[i] = i
	}
	level := leaves
	for len(level) > 1 {
		next := make([]common.Hash, 0, (len(level)+1)/2)
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
				continue
			}
			next = append(next, hashPair(level[i], level[i+1]))
		}
		for p := range e.Payouts {
			i := idx[p]
			if sib := i ^ 1; sib < len(level) {
				e.Payouts[p].Proof = append(e.Payouts[p].Proof, level[sib])
			}
			idx[p] = i / 2
		}
		level = next
	}
	e.Root = level[0]
	return e, nil
}

// Verify checks a payout's proof against the epoch's root, as the contract does.
func (e Epoch) Verify(p Payout) bool {
	h := Leaf(e.Contract, e.Number, p.Member, p.Wei)
	for _, s := range p.Proof {
		h = hashPair(h, s)
	}
	return h == e.Root
}

// Payout returns a member's payout in the epoch.
func (e Epoch) Payout(member common.Address) (Payout, error) {
	for _, p := range e.Payouts {
		if p.Member == member {
			return p, nil
		}
	}
	return Payout{}, errors.New("member " + member.Hex() + " has nothing in epoch " + fmt.Sprint(e.Number))
}
