package capacity

import (
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
)

var now = time.Unix(1_800_000_000, 0)

type signer struct {
	key lcrypto.PrivKey
	id  peer.ID
	eth *ecdsa.PrivateKey
}

func newSigner(t testing.TB) signer {
	t.Helper()
	k, _, err := lcrypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	eth, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return signer{k, id, eth}
}

func (s signer) record(t testing.TB) *Record {
	t.Helper()
	addr, sig, err := Bind(s.id, s.eth)
	if err != nil {
		t.Fatal(err)
	}
	return &Record{
		Version: Version, PeerID: s.id.String(), Seq: 7, Timestamp: now.Unix(),
		EthAddress: addr, EthSignature: sig,
		Capacity: Capacity{
			GPUs:            []GPU{{Model: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, Count: 8}},
			Score:           Score{Overall: 1234.5},
			PricePerGPUHour: "1000000000000000",
			FreeGPUs:        6,
			JobKinds:        []string{"train"},
			SoftwareVersion: "test",
		},
	}
}

func (s signer) seal(t testing.TB, r *Record) []byte {
	t.Helper()
	b, err := Seal(r, s.key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// otherRecord has the capacity payload type but signs under another domain.
type otherRecord struct {
	Record
	domain string
}

func (o *otherRecord) Domain() string { return o.domain }

func TestOpen(t *testing.T) {
	s, other := newSigner(t), newSigner(t)
	const maxAge, skew = 10 * time.Minute, time.Minute

	good := s.seal(t, s.record(t))
	rec, err := Open(good, now, maxAge, skew)
	if err != nil {
		t.Fatalf("good record refused: %v", err)
	}
	if rec.PeerID != s.id.String() || rec.Capacity.FreeGPUs != 6 || rec.TotalGPUs() != 8 {
		t.Fatalf("decoded %+v", rec)
	}

	tests := []struct {
		name string
		data func() []byte
		want Reason
	}{
		{"too large", func() []byte { return make([]byte, MaxSize+1) }, ReasonTooLarge},
		{"garbage", func() []byte { return []byte("not a protobuf \xff\xff") }, ReasonMalformed},
		{"bad signature", func() []byte {
			b := append([]byte(nil), good...)
			b[len(b)-1] ^= 1 // the signature is the last field
			return b
		}, ReasonBadSignature},
		{"peer record domain", func() []byte {
			r := &otherRecord{Record: *s.record(t), domain: "libp2p-routing-state"}
			env, err := record.Seal(r, s.key)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := env.Marshal()
			return b
		}, ReasonWrongDomain},
		{"other payload type", func() []byte {
			rec := &peer.PeerRecord{PeerID: s.id, Seq: 1}
			env, err := record.Seal(rec, s.key)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := env.Marshal()
			return b
		}, ReasonWrongDomain},
		{"unknown field", func() []byte {
			return sealRaw(t, s.key, []byte(`{"v":1,"extra":true}`))
		}, ReasonMalformed},
		{"free > total", func() []byte {
			r := s.record(t)
			r.Capacity.FreeGPUs = 9
			return s.seal(t, r)
		}, ReasonMalformed},
		{"signed by another peer", func() []byte {
			return other.seal(t, s.record(t))
		}, ReasonPeerMismatch},
		{"binding for another peer", func() []byte {
			r := s.record(t)
			r.EthAddress, r.EthSignature, _ = Bind(other.id, s.eth)
			return s.seal(t, r)
		}, ReasonBadBinding},
		{"binding claims another address", func() []byte {
			r := s.record(t)
			r.EthAddress = crypto.PubkeyToAddress(other.eth.PublicKey).Hex()
			return s.seal(t, r)
		}, ReasonBadBinding},
		{"too old", func() []byte {
			r := s.record(t)
			r.Timestamp = now.Add(-maxAge - time.Second).Unix()
			return s.seal(t, r)
		}, ReasonTooOld},
		{"future", func() []byte {
			r := s.record(t)
			r.Timestamp = now.Add(skew + time.Minute).Unix()
			return s.seal(t, r)
		}, ReasonFuture},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.data(), now, maxAge, skew)
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

func sealRaw(t testing.TB, key lcrypto.PrivKey, payload []byte) []byte {
	t.Helper()
	env, err := record.Seal(rawRecord(payload), key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type rawRecord []byte

func (rawRecord) Domain() string                   { return Domain }
func (rawRecord) Codec() []byte                    { return PayloadType }
func (r rawRecord) MarshalRecord() ([]byte, error) { return r, nil }
func (r rawRecord) UnmarshalRecord([]byte) error   { return nil }

func TestSealRefusesOversize(t *testing.T) {
	s := newSigner(t)
	r := s.record(t)
	r.Capacity.SoftwareVersion = strings.Repeat("x", MaxSize)
	if _, err := Seal(r, s.key); err == nil {
		t.Fatal("oversize record sealed")
	}
}

// TestWriteSeeds keeps testdata/fuzz/FuzzOpen in sync with the encoder when run with
// GPUNODE_WRITE_SEEDS=1; normally it only checks that the seeds exist.
func TestWriteSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	if os.Getenv("GPUNODE_WRITE_SEEDS") == "" {
		if ents, _ := os.ReadDir(dir); len(ents) == 0 {
			t.Fatalf("no seed corpus in %s: run GPUNODE_WRITE_SEEDS=1 go test -run TestWriteSeeds", dir)
		}
		return
	}
	s := newSigner(t)
	good := s.seal(t, s.record(t))
	r := s.record(t)
	r.EthAddress, r.EthSignature, _ = Bind(newSigner(t).id, s.eth)
	attested := s.record(t)
	attested.Capacity.Attestations = append(attested.Capacity.Attestations, attestation(t, s, 1.5))
	seeds := map[string][]byte{
		"attested":    s.seal(t, attested),
		"good":        good,
		"bad_binding": s.seal(t, r),
		"garbage":     []byte("\x0a\x02\x08\x01"),
		"json":        sealRaw(t, s.key, []byte(`{"v":1,"peer_id":"x","gpus":[{}]}`)),
	}
	os.MkdirAll(dir, 0o755)
	for name, b := range seeds {
		content := "go test fuzz v1\n[]byte(" + quote(b) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func quote(b []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, c := range b {
		sb.WriteString(`\x`)
		sb.WriteByte("0123456789abcdef"[c>>4])
		sb.WriteByte("0123456789abcdef"[c&15])
	}
	sb.WriteByte('"')
	return sb.String()
}

// FuzzOpen: Open must never panic, and what it accepts must survive a re-seal and
// re-open unchanged in the fields that matter.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Open(data, now, 100*365*24*time.Hour, 100*365*24*time.Hour)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		if err := rec.Check(); err != nil {
			t.Fatalf("accepted record fails Check: %v", err)
		}
		if _, err := peer.Decode(rec.PeerID); err != nil {
			t.Fatal(err)
		}
	})
}
