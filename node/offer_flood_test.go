package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// rpcCounter is a JSON-RPC proxy on loopback that counts the calls passing through it by
// method; "lookup" counts the eth_getLogs calls that look one job up by its id (topics
// [null, id]), as opposed to the watcher's scans.
type rpcCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func countRPC(t *testing.T, upstream string) (*rpcCounter, string) {
	t.Helper()
	c := &rpcCounter{calls: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var batch []rpcCall
		var one rpcCall
		if json.Unmarshal(body, &batch) != nil && json.Unmarshal(body, &one) == nil {
			batch = []rpcCall{one}
		}
		c.mu.Lock()
		for _, b := range batch {
			c.calls[b.Method]++
			if b.Method == "eth_getLogs" && len(b.Params) == 1 && len(b.Params[0].Topics) == 2 && b.Params[0].Topics[0] == nil {
				c.calls["lookup"]++
			}
		}
		c.mu.Unlock()
		resp, err := http.Post(upstream, "application/json", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c, "http://" + ln.Addr().String()
}

type rpcCall struct {
	Method string
	Params []struct {
		Topics []any `json:"topics"`
	}
}

func (c *rpcCounter) get(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if method == "" {
		n := 0
		for _, v := range c.calls {
			n += v
		}
		return n
	}
	return c.calls[method]
}

// offerNetwork starts a p2p network on loopback for a test.
func offerNetwork(t *testing.T, bootstrap []string, edit func(*p2p.Config), offers p2p.OfferHandler) *p2p.Network {
	t.Helper()
	cfg := p2p.Default()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS, cfg.AutoNAT, cfg.Relay, cfg.HolePunching, cfg.NATPortMap = false, false, false, false, false
	cfg.DHTMode, cfg.BootstrapPeers = "server", bootstrap
	cfg.RepublishInterval, cfg.RecordTTL = configfile.Duration(time.Minute), configfile.Duration(10*time.Minute)
	if edit != nil {
		edit(&cfg)
	}
	key, err := ethcrypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func(context.Context) (capacity.Capacity, error) {
		return capacity.Capacity{PricePerGPUHour: "0", SoftwareVersion: "test"}, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	nw, err := p2p.New(ctx, cfg, p2p.Deps{DataDir: t.TempDir(), EthKey: key, Snapshot: snapshot, Offers: offers, Log: quietLog()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { nw.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return nw
}

// TestOfferFloodChainCalls: a peer sends 1,000 offers in a burst to a provider on a dev
// chain, naming a posted job with a forged manifest or jobs that do not exist. At most
// the provider's offer bucket is evaluated, the rest is refused with the reason, and the
// chain calls the provider makes stay within one lookup per evaluated offer — counted on
// the wire to the chain. The same job offered again costs no lookup at all.
func TestOfferFloodChainCalls(t *testing.T) {
	dep := startDevchain(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}
	counter, proxy := countRPC(t, dep.RPCURL)
	proxied := dep
	proxied.RPCURL = proxy
	provider := newChainNode(t, proxied, 1, content, nodeOpts{market: func(c *market.Config) { c.PollInterval = time.Hour }})
	sponsor := newChainNode(t, dep, 4, content)
	manifestCID, sum := testManifest(content)
	if _, _, err := sponsor.market.PostJob(ctx, bindings.JobMarketJobParams{
		Reward: big.NewInt(1000), ValidatorFee: new(big.Int), Bond: new(big.Int), Threshold: 900000, Quorum: 1,
		Validators: []common.Address{dep.Accounts[2].Address}, AcceptBy: big.NewInt(time.Now().Add(time.Hour).Unix()),
		RunWindow: 3600, AttestWindow: 3600, ManifestCID: manifestCID, ManifestHash: sum,
	}); err != nil {
		t.Fatal(err)
	}
	const forged = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy" // a manifest never posted

	// The cache: one lookup for a job offered ten times, one for a job that does not exist.
	for _, c := range []struct{ id, words string }{{"1", "is not the one posted"}, {"77", "not posted"}} {
		before := counter.get("lookup")
		for i := 0; i < 10; i++ {
			o := p2p.Offer{Version: p2p.OfferVersion, ID: "c", ManifestCID: forged, PricePerGPUHour: "0", MaxDurationSeconds: 60,
				JobID: c.id, ExpiresAt: time.Now().Add(time.Minute).Unix()}
			if d := provider.gate.offer(ctx, "peer", o); d.Accepted || !strings.Contains(d.Reason, c.words) {
				t.Fatalf("offer of job %s: %+v", c.id, d)
			}
		}
		if got := counter.get("lookup") - before; got != 1 {
			t.Errorf("job %s offered 10 times: %d chain lookups, want 1", c.id, got)
		}
	}

	const rate, burst = 2, 5
	rig := offerNetwork(t, nil, func(c *p2p.Config) { c.OfferRate, c.OfferBurst, c.GraylistStrikes = rate, burst, 100000 }, provider.gate.offer)
	attacker := offerNetwork(t, rig.Addrs(), nil, nil)
	for deadline := time.Now().Add(10 * time.Second); !attacker.Connected(rig.ID()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("attacker did not connect")
		}
	}
	calls, lookups := counter.get(""), counter.get("lookup")
	start := time.Now()
	evaluated := 0
	for i := 0; i < 1000; i++ {
		o := p2p.Offer{Version: p2p.OfferVersion, ID: fmt.Sprint(i), ManifestCID: forged, PricePerGPUHour: "0", MaxDurationSeconds: 60,
			JobID: "1", ExpiresAt: time.Now().Add(time.Minute).Unix()}
		if i%2 == 1 {
			o.JobID = fmt.Sprint(1000 + i) // never posted
		}
		oc, ocancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := attacker.SendOffer(oc, rig.ID(), o)
		ocancel()
		switch {
		case err != nil:
			t.Fatalf("offer %d: %v", i, err)
		case d.Accepted:
			t.Fatalf("offer %d of a forged job accepted: %+v", i, d)
		case strings.Contains(d.Reason, "rate limited"):
		case strings.Contains(d.Reason, "is not the one posted"), strings.Contains(d.Reason, "not posted"):
			evaluated++
		default:
			t.Fatalf("offer %d: unexpected answer %+v", i, d)
		}
	}
	elapsed := time.Since(start)
	if max := burst + int(rate*elapsed.Seconds()) + 1; evaluated > max {
		t.Errorf("%d of 1000 offers evaluated in %s, bucket allows %d", evaluated, elapsed.Round(time.Millisecond), max)
	}
	if evaluated < burst {
		t.Errorf("only %d offers evaluated, the bucket allows a burst of %d", evaluated, burst)
	}
	gotLookups, gotCalls := counter.get("lookup")-lookups, counter.get("")-calls
	if gotLookups > evaluated {
		t.Errorf("%d chain lookups for %d evaluated offers", gotLookups, evaluated)
	}
	// Beyond lookups, the node's own calls (its watcher, its gas and nonce reads) are few.
	if gotCalls > evaluated+20 {
		t.Errorf("%d chain calls during the flood (%d lookups) for %d evaluated offers", gotCalls, gotLookups, evaluated)
	}
	t.Logf("1000 offers in %s: %d evaluated, %d chain calls (%d lookups)", elapsed.Round(time.Millisecond), evaluated, gotCalls, gotLookups)
}
