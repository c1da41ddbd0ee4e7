package challenge

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"runtime"
	"sync"
)

// The Merkle tree over C's rows (PROTOCOL.md, "Commitment"): a leaf is
// SHA-256(0x00 ‖ row index u32 LE ‖ the row's n fp32 values LE), an inner node
// SHA-256(0x01 ‖ left ‖ right); n is a power of two, so the tree is complete.

// leafHash hashes row i.
func leafHash(i uint32, row []float32) [32]byte {
	h := sha256.New()
	var buf [4096]byte
	buf[0] = 0
	binary.LittleEndian.PutUint32(buf[1:5], i)
	h.Write(buf[:5])
	for len(row) > 0 {
		k := min(len(row), len(buf)/4)
		for j, v := range row[:k] {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
		}
		h.Write(buf[:4*k])
		row = row[k:]
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func nodeHash(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// tree is a complete Merkle tree; levels[0] are the leaves, the last level the root.
type tree struct {
	levels [][][32]byte
}

// newTree hashes the n rows of c (row-major n×n) and builds the tree.
func newTree(c []float32, n int) *tree {
	leaves := make([][32]byte, n)
	parallelRows(n, func(r0, r1 int) {
		for i := r0; i < r1; i++ {
			leaves[i] = leafHash(uint32(i), c[i*n:(i+1)*n])
		}
	})
	t := &tree{levels: [][][32]byte{leaves}}
	for lv := leaves; len(lv) > 1; {
		up := make([][32]byte, len(lv)/2)
		for i := range up {
			up[i] = nodeHash(lv[2*i], lv[2*i+1])
		}
		t.levels = append(t.levels, up)
		lv = up
	}
	return t
}

func (t *tree) root() [32]byte { return t.levels[len(t.levels)-1][0] }

// proof returns leaf i's siblings from the bottom up.
func (t *tree) proof(i int) [][32]byte {
	p := make([][32]byte, 0, len(t.levels)-1)
	for _, lv := range t.levels[:len(t.levels)-1] {
		p = append(p, lv[i^1])
		i /= 2
	}
	return p
}

// verifyProof checks that row i with the given values is leaf i under root.
func verifyProof(root [32]byte, i uint32, row []float32, proof [][32]byte) bool {
	h := leafHash(i, row)
	idx := i
	for _, s := range proof {
		if idx&1 == 0 {
			h = nodeHash(h, s)
		} else {
			h = nodeHash(s, h)
		}
		idx >>= 1
	}
	return idx == 0 && h == root
}

// parallelRows runs fn over [0, n) split into one range per CPU.
func parallelRows(n int, fn func(r0, r1 int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		fn(0, n)
		return
	}
	chunk := (n + w - 1) / w
	var wg sync.WaitGroup
	for r0 := 0; r0 < n; r0 += chunk {
		r1 := min(n, r0+chunk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(r0, r1)
		}()
	}
	wg.Wait()
}
