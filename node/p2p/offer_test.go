package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const testCID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"

func goodOffer() Offer {
	return Offer{Version: OfferVersion, ID: "o-1", ManifestCID: testCID, GPUs: 2,
		PricePerGPUHour: "2000000", MaxDurationSeconds: 3600, ExpiresAt: time.Now().Add(time.Hour).Unix()}
}

func TestOfferProtocol(t *testing.T) {
	var seen []peer.ID
	pool := startNode(t, 0, nil)
	rig := startNode(t, 1, pool.Addrs(), func(_ *Config, d *Deps) {
		d.Offers = func(_ context.Context, from peer.ID, o Offer) Decision {
			seen = append(seen, from)
			if o.MaxDurationSeconds > 7200 {
				return Decision{Reason: "runs longer than the policy allows"}
			}
			return Decision{Accepted: true, Reason: "ok"}
		}
	})
	rig.rig.setFree(4) // rig asks 1000001 wei
	if !waitFor(10*time.Second, func() bool { return pool.Connected(rig.ID()) }) {
		t.Fatal("pool did not connect to rig")
	}
	tests := []struct {
		name   string
		edit   func(*Offer)
		accept bool
		reason string
	}{
		{"acceptable", func(*Offer) {}, true, "ok"},
		{"too many GPUs", func(o *Offer) { o.GPUs = 5 }, false, "needs 5 GPUs, 4 free"},
		{"price below ask", func(o *Offer) { o.PricePerGPUHour = "999" }, false, "below the ask"},
		{"expired", func(o *Offer) { o.ExpiresAt = time.Now().Add(-time.Minute).Unix() }, false, "expired"},
		{"handler declines", func(o *Offer) { o.MaxDurationSeconds = 9000 }, false, "longer than the policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := goodOffer()
			tt.edit(&o)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			d, err := pool.SendOffer(ctx, rig.ID(), o)
			if err != nil {
				t.Fatal(err)
			}
			if d.Accepted != tt.accept || !strings.Contains(d.Reason, tt.reason) || d.ID != o.ID {
				t.Fatalf("decision %+v, want accepted=%v reason containing %q", d, tt.accept, tt.reason)
			}
		})
	}
	if len(seen) != 2 || seen[0] != pool.ID() {
		t.Errorf("handler saw %v, want the pool twice", seen)
	}
	if got := testutil.ToFloat64(rig.metrics.offers.WithLabelValues("accepted")); got != 1 {
		t.Errorf("accepted offers metric %v, want 1", got)
	}

	// A malformed offer is answered with a decline naming the problem.
	s, err := pool.Host().NewStream(t.Context(), rig.ID(), OfferProtocol)
	if err != nil {
		t.Fatal(err)
	}
	s.Write(append(binary.AppendUvarint(nil, 2), '{', '}'))
	s.CloseWrite()
	b, err := readFrame(s, MaxOfferSize)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"accepted":false`) || !strings.Contains(string(b), "version") {
		t.Errorf("malformed offer answered %s", b)
	}
	s.Close()

	// A sender that never finishes its offer is cut off at the offer timeout.
	s, err = pool.Host().NewStream(t.Context(), rig.ID(), OfferProtocol)
	if err != nil {
		t.Fatal(err)
	}
	s.Write(binary.AppendUvarint(nil, 100))
	start := time.Now()
	b, err = readFrame(s, MaxOfferSize)
	if took := time.Since(start); took > 2*time.Duration(loopbackConfig().OfferTimeout) {
		t.Errorf("stalled offer held the stream for %s", took)
	}
	// Either the stream is cut or the answer is a decline; never an acceptance.
	if err == nil && !strings.Contains(string(b), `"accepted":false`) {
		t.Errorf("stalled offer answered %s", b)
	}
}

func TestDecodeOffer(t *testing.T) {
	for name, in := range map[string]string{
		"unknown field": `{"v":1,"id":"a","manifest_cid":"` + testCID + `","gpus":1,"price_per_gpu_hour":"1","max_duration_s":1,"expires_at":1,"x":1}`,
		"bad cid":       `{"v":1,"id":"a","manifest_cid":"Qm","gpus":1,"price_per_gpu_hour":"1","max_duration_s":1,"expires_at":1}`,
		"bad price":     `{"v":1,"id":"a","manifest_cid":"` + testCID + `","gpus":1,"price_per_gpu_hour":"-1","max_duration_s":1,"expires_at":1}`,
		"negative gpus": `{"v":1,"id":"a","manifest_cid":"` + testCID + `","gpus":-1,"price_per_gpu_hour":"1","max_duration_s":1,"expires_at":1}`,
		"trailing":      `{"v":1,"id":"a","manifest_cid":"` + testCID + `","gpus":1,"price_per_gpu_hour":"1","max_duration_s":1,"expires_at":1}{}`,
		"too large":     strings.Repeat(" ", MaxOfferSize+1),
	} {
		if _, err := DecodeOffer([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := DecodeOffer([]byte(`{"v":1,"id":"a","manifest_cid":"` + testCID + `","gpus":1,"price_per_gpu_hour":"1","max_duration_s":1,"expires_at":1}`)); err != nil {
		t.Errorf("good offer refused: %v", err)
	}
}

// TestWriteOfferSeeds regenerates testdata/fuzz/FuzzReadOffer with GPUNODE_WRITE_SEEDS=1.
func TestWriteOfferSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReadOffer")
	if os.Getenv("GPUNODE_WRITE_SEEDS") == "" {
		if ents, _ := os.ReadDir(dir); len(ents) == 0 {
			t.Fatalf("no seed corpus in %s: run GPUNODE_WRITE_SEEDS=1 go test -run TestWriteOfferSeeds", dir)
		}
		return
	}
	var good bytes.Buffer
	writeFrame(&good, goodOffer())
	seeds := map[string][]byte{
		"good":      good.Bytes(),
		"huge_len":  binary.AppendUvarint(nil, 1<<40),
		"short":     append(binary.AppendUvarint(nil, 10), "{}"...),
		"not_json":  append(binary.AppendUvarint(nil, 3), "abc"...),
		"empty_obj": append(binary.AppendUvarint(nil, 2), "{}"...),
	}
	os.MkdirAll(dir, 0o755)
	for name, b := range seeds {
		var sb strings.Builder
		sb.WriteString("go test fuzz v1\n[]byte(\"")
		for _, c := range b {
			sb.WriteString(`\x`)
			sb.WriteByte("0123456789abcdef"[c>>4])
			sb.WriteByte("0123456789abcdef"[c&15])
		}
		sb.WriteString("\")\n")
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzReadOffer: framing and decoding never panic, never read past the frame bound,
// and whatever decodes passes Check and survives a re-encode.
func FuzzReadOffer(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		o, err := ReadOffer(r)
		if consumed := len(data) - r.Len(); consumed > MaxOfferSize+binary.MaxVarintLen64+16 {
			t.Fatalf("read %d bytes for one offer", consumed)
		}
		if err != nil {
			return
		}
		if err := o.Check(); err != nil {
			t.Fatalf("decoded offer fails Check: %v", err)
		}
		var buf bytes.Buffer
		if err := writeFrame(&buf, o); err != nil {
			t.Fatal(err)
		}
		o2, err := ReadOffer(&buf)
		if err != nil || o2 != o {
			t.Fatalf("re-encoded offer differs: %+v %v", o2, err)
		}
	})
}
