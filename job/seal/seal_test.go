package seal

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/internal/testenv"
)

func testBinding() Binding {
	return Binding{
		ChainID:  big.NewInt(1337),
		Contract: common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
		JobID:    big.NewInt(7),
		Provider: common.HexToAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
	}
}

func testKey(t testing.TB) Key {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sealBytes(t testing.TB, plain []byte, k Key, b Binding) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Seal(&buf, bytes.NewReader(plain), k, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func open(sealed []byte, k Key, b Binding, max int64) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(sealed), k, b, max)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	k, b := testKey(t), testBinding()
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 5} {
		plain := make([]byte, n)
		rand.Read(plain)
		sealed := sealBytes(t, plain, k, b)
		chunks := max(1, (n+ChunkSize-1)/ChunkSize)
		if want := HeaderSize + n + chunks*overhead; len(sealed) != want {
			t.Errorf("%d bytes sealed to %d, want %d", n, len(sealed), want)
		}
		if bytes.Contains(sealed, plain[:min(n, 64)]) && n >= 16 {
			t.Errorf("%d bytes: the plaintext shows in the sealed stream", n)
		}
		got, err := open(sealed, k, b, int64(n)+1)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: plaintext differs after a round trip", n)
		}
		h, err := ReadHeader(bytes.NewReader(sealed))
		if err != nil || !h.Binding.Equal(b) || h.Version != Version {
			t.Fatalf("header: %+v, %v", h, err)
		}
	}
}

func TestTwoSealsDiffer(t *testing.T) {
	k, b := testKey(t), testBinding()
	plain := []byte("the same checkpoint")
	if bytes.Equal(sealBytes(t, plain, k, b), sealBytes(t, plain, k, b)) {
		t.Fatal("two seals of the same plaintext under the same key are identical: the nonce prefix is not random")
	}
}

func TestStreamsThroughAPipe(t *testing.T) {
	k, b := testKey(t), testBinding()
	const n = 5*ChunkSize + 123
	plain := make([]byte, n)
	rand.Read(plain)
	pr, pw := io.Pipe()
	go func() {
		w, err := NewWriter(pw, k, b)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		// Small writes: the writer must chunk on its own.
		for p := plain; len(p) > 0; {
			c := min(len(p), 1000)
			if _, err := w.Write(p[:c]); err != nil {
				pw.CloseWithError(err)
				return
			}
			p = p[c:]
		}
		pw.CloseWithError(w.Close())
	}()
	r, err := NewReader(pr, k, b, n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("streamed round trip: %d bytes, err %v", len(got), err)
	}
}

func TestRefusesWhatIsNotItsOwn(t *testing.T) {
	k, b := testKey(t), testBinding()
	plain := make([]byte, 2*ChunkSize+100)
	rand.Read(plain)
	sealed := sealBytes(t, plain, k, b)
	chunk := ChunkSize + overhead
	other := func(f func(*Binding)) Binding {
		o := testBinding()
		f(&o)
		return o
	}
	mut := func(f func(s []byte) []byte) []byte { return f(append([]byte(nil), sealed...)) }
	cases := []struct {
		name   string
		sealed []byte
		key    Key
		want   Binding
		err    error
	}{
		{"wrong key", sealed, testKey(t), b, ErrWrongKey},
		{"other chain", sealed, k, other(func(o *Binding) { o.ChainID = big.NewInt(1) }), ErrBinding},
		{"other contract", sealed, k, other(func(o *Binding) { o.Contract[0] ^= 1 }), ErrBinding},
		{"other job", sealed, k, other(func(o *Binding) { o.JobID = big.NewInt(8) }), ErrBinding},
		{"other provider", sealed, k, other(func(o *Binding) { o.Provider[19] ^= 1 }), ErrBinding},
		{"header binding rewritten", mut(func(s []byte) []byte { s[91]++; return s }), k,
			other(func(o *Binding) { o.JobID = big.NewInt(8) }), ErrWrongKey},
		{"nonce prefix changed", mut(func(s []byte) []byte { s[120] ^= 1; return s }), k, b, ErrWrongKey},
		{"bad magic", mut(func(s []byte) []byte { s[0] = 'X'; return s }), k, b, ErrFormat},
		{"future version", mut(func(s []byte) []byte { s[7] = 2; return s }), k, b, ErrFormat},
		{"other chunk size", mut(func(s []byte) []byte { s[112] = 20; return s }), k, b, ErrFormat},
		{"short header", sealed[:HeaderSize-1], k, b, ErrFormat},
		{"no chunk at all", sealed[:HeaderSize], k, b, ErrCorrupt},
		{"bit flipped in a chunk", mut(func(s []byte) []byte { s[HeaderSize+chunk+5] ^= 0x80; return s }), k, b, ErrCorrupt},
		{"tag flipped", mut(func(s []byte) []byte { s[len(s)-1] ^= 1; return s }), k, b, ErrCorrupt},
		{"last chunk dropped", sealed[:HeaderSize+2*chunk], k, b, ErrCorrupt},
		{"cut inside a chunk", sealed[:HeaderSize+chunk+100], k, b, ErrCorrupt},
		{"trailing bytes", append(append([]byte(nil), sealed...), 0), k, b, ErrCorrupt},
		{"chunks swapped", mut(func(s []byte) []byte {
			c0 := append([]byte(nil), s[HeaderSize:HeaderSize+chunk]...)
			copy(s[HeaderSize:], s[HeaderSize+chunk:HeaderSize+2*chunk])
			copy(s[HeaderSize+chunk:], c0)
			return s
		}), k, b, ErrCorrupt},
		{"larger than allowed", sealed, k, b, ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testenv.Attack(t, "seal", c.name)
			limit := int64(len(plain))
			if c.err == ErrTooLarge {
				limit = ChunkSize
			}
			got, err := open(c.sealed, c.key, c.want, limit)
			if !errors.Is(err, c.err) {
				t.Fatalf("got error %v, want %v", err, c.err)
			}
			// What a reader returned before failing came from chunks that authenticated.
			if !bytes.HasPrefix(plain, got) {
				t.Fatal("the reader returned bytes that are not the plaintext's")
			}
		})
	}
}

// A provider that learned another job's key (it was released on payment) still cannot
// pass that checkpoint off as its own job's: the chunks authenticate the original header.
func TestCopiedCheckpointCannotBeRebound(t *testing.T) {
	testenv.Attack(t, "seal", "rebind a paid job's checkpoint to another job")
	k, b := testKey(t), testBinding()
	sealed := sealBytes(t, []byte("someone else's model"), k, b)
	mine := testBinding()
	mine.JobID = big.NewInt(99)
	mine.Provider = common.HexToAddress("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")
	forged := append([]byte(nil), sealed...)
	copy(forged[8:112], mine.bytes())
	copy(forged[128:160], keyCheck(k, forged[:128]))
	if _, err := open(forged, k, mine, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("rebound checkpoint: got %v, want %v", err, ErrCorrupt)
	}
}

func TestNewReaderNeedsALimit(t *testing.T) {
	k, b := testKey(t), testBinding()
	if _, err := NewReader(bytes.NewReader(sealBytes(t, nil, k, b)), k, b, 0); err == nil {
		t.Fatal("a reader without a limit was made")
	}
	if _, err := NewWriter(io.Discard, k, Binding{}); err == nil {
		t.Fatal("a writer for an empty binding was made")
	}
}

func TestCommitment(t *testing.T) {
	k := testKey(t)
	c := k.Commitment()
	if c != crypto.Keccak256Hash(k[:]) {
		t.Fatal("commitment is not keccak256(K)")
	}
	if !k.Matches(c) {
		t.Fatal("a key does not match its own commitment")
	}
	if testKey(t).Matches(c) {
		t.Fatal("another key matches the commitment")
	}
}

func TestWrapKey(t *testing.T) {
	k, b := testKey(t), testBinding()
	priv, _ := crypto.GenerateKey()
	other, _ := crypto.GenerateKey()
	w, err := WrapKey(k, &priv.PublicKey, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != WrappedKeySize || bytes.Contains(w, k[:]) {
		t.Fatalf("wrapped key: %d bytes (want %d) or holds the key in clear", len(w), WrappedKeySize)
	}
	got, err := UnwrapKey(w, priv, b)
	if err != nil || got != k {
		t.Fatalf("unwrap: %v", err)
	}
	testenv.Attack(t, "seal", "unwrap a key wrapped to someone else")
	if _, err := UnwrapKey(w, other, b); err == nil {
		t.Fatal("another private key unwrapped the key")
	}
	ob := testBinding()
	ob.JobID = big.NewInt(8)
	if _, err := UnwrapKey(w, priv, ob); err == nil {
		t.Fatal("the key unwrapped for another job")
	}
	if _, err := UnwrapKey(w[:len(w)-1], priv, b); err == nil {
		t.Fatal("a short wrapped key was accepted")
	}
	if _, err := WrapKey(k, nil, b); err == nil {
		t.Fatal("wrapped to a nil key")
	}
}

func TestTree(t *testing.T) {
	k, b := testKey(t), testBinding()
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	big := make([]byte, 3*ChunkSize)
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "model.pt"), big, 0o644)
	os.WriteFile(filepath.Join(src, "sub", "meta.json"), []byte(`{"epochs":3}`), 0o644)
	var buf bytes.Buffer
	if err := SealTree(&buf, src, k, b); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := OpenTree(bytes.NewReader(buf.Bytes()), dst, k, b, 1<<20); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model.pt", "sub/meta.json"} {
		want, _ := os.ReadFile(filepath.Join(src, f))
		got, err := os.ReadFile(filepath.Join(dst, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s differs after the round trip: %v", f, err)
		}
	}
	testenv.Attack(t, "seal", "tamper with a sealed tree's tail")
	// The tar archive ends before the stream does: a flipped bit in the last chunk
	// (past tar's end marker) must still fail.
	bad := append([]byte(nil), buf.Bytes()...)
	bad[len(bad)-overhead-1] ^= 1
	if err := OpenTree(bytes.NewReader(bad), t.TempDir(), k, b, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tampered tail: got %v, want %v", err, ErrCorrupt)
	}
	if err := OpenTree(bytes.NewReader(buf.Bytes()), t.TempDir(), k, b, ChunkSize); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: got %v, want %v", err, ErrTooLarge)
	}
}

func FuzzReader(f *testing.F) {
	k := Key{1, 2, 3}
	b := testBinding()
	for _, n := range []int{0, 10, ChunkSize + 1} {
		var buf bytes.Buffer
		Seal(&buf, bytes.NewReader(make([]byte, n)), k, b)
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:len(buf.Bytes())-1])
	}
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 2 * ChunkSize
		r, err := NewReader(bytes.NewReader(in), k, b, limit)
		if err != nil {
			return
		}
		got, err := io.ReadAll(r)
		if int64(len(got)) > limit {
			t.Fatalf("%d bytes read past the limit of %d", len(got), limit)
		}
		if err == nil {
			// A stream that opens is exactly a header and its chunks: nothing skipped.
			chunks := max(1, (len(got)+ChunkSize-1)/ChunkSize)
			if len(in) != HeaderSize+len(got)+chunks*overhead {
				t.Fatalf("opened %d bytes of plaintext from a %d-byte stream", len(got), len(in))
			}
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	var buf bytes.Buffer
	Seal(&buf, bytes.NewReader(nil), Key{}, testBinding())
	f.Add(buf.Bytes())
	f.Add([]byte("GPNSEAL\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ReadHeader(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(in) < HeaderSize || h.Version != Version || h.Binding.Check() != nil {
			t.Fatalf("accepted header %+v from %d bytes", h, len(in))
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	k, bd := testKey(b), testBinding()
	plain := make([]byte, 8<<20)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if err := Seal(io.Discard, bytes.NewReader(plain), k, bd); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k, bd := testKey(b), testBinding()
	plain := make([]byte, 8<<20)
	sealed := sealBytes(b, plain, k, bd)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(sealed), k, bd, int64(len(plain)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOpenFile(t *testing.T) {
	k, b := testKey(t), testBinding()
	src, pub := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "model.pt"), []byte("weights"), 0o644)
	f, _ := os.Create(filepath.Join(pub, FileName))
	h := sha256.New()
	if err := SealTree(io.MultiWriter(f, h), src, k, b); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum := "0x" + hex.EncodeToString(h.Sum(nil))
	dst := t.TempDir()
	if err := OpenFile(pub, dst, k, b, sum); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "model.pt")); string(got) != "weights" {
		t.Fatalf("opened %q", got)
	}
	if err := OpenFile(pub, t.TempDir(), k, b, strings.Repeat("00", 32)); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("other hash: %v, want %v", err, ErrHashMismatch)
	}
}
