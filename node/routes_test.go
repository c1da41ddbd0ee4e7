package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/internal/treetar"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/apiserver"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/policy"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/ui"
	"github.com/gpunode/gpunode/runtime"
)

// routeFakes are hand-written backends for every group of routes: each records the
// method the route called and fails with fail when it is set.
type routeFakes struct {
	mu     sync.Mutex
	called []string
	fail   error
}

// errNotServed is what a fake embedded without a recorder answers.
var errNotServed = errors.New("fake: not served")

func (f *routeFakes) call(name string) error {
	if f == nil {
		return errNotServed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called = append(f.called, name)
	return f.fail
}

func (f *routeFakes) reset(fail error) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.called
	f.called, f.fail = nil, fail
	return c
}

type (
	fakeStatusB  struct{ *routeFakes }
	fakePolicyB  struct{ *routeFakes }
	fakeJobsB    struct{ *routeFakes }
	fakeRuntimeB struct{ *routeFakes }
	fakeBenchB   struct {
		*routeFakes
		last *benchmark.Report
	}
	fakeIPFSB   struct{ *routeFakes }
	fakeP2PB    struct{ *routeFakes }
	fakeMarketB struct{ *routeFakes }
	fakeLedgerB struct{ *routeFakes }
	fakeChalB   struct{ *routeFakes }
)

func (f fakeChalB) Challenge(_ context.Context, req api.ChallengeRequest) (api.ChallengeResult, error) {
	return api.ChallengeResult{PeerID: req.PeerID, Verdict: "passed", Passed: true, VerifiedTFLOPS: 1}, f.call("Challenge " + req.PeerID)
}
func (f fakeChalB) Verified(peerID string) *api.P2PVerified {
	return &api.P2PVerified{TFLOPS: 2, Passed: true}
}

// fakePoolB is the pool coordinator's backend.
type fakePoolB struct{ *routeFakes }

func (f fakePoolB) Members() api.PoolMembers {
	f.call("Members")
	return api.PoolMembers{Coordinator: "me", Members: []api.PoolMember{{PeerID: "m1", Alive: true}}}
}

func (f fakePoolB) Jobs() (api.PoolJobs, error) {
	return api.PoolJobs{Jobs: []api.PoolJob{{ID: "7", State: "running", Members: []api.PoolAssignment{{Member: "m1"}}}}}, f.call("Jobs")
}

// fakePoolPayB is the pool's payouts backend.
type fakePoolPayB struct{ *routeFakes }

func (f fakePoolPayB) PoolPayouts(context.Context) (api.PoolPayouts, error) {
	return api.PoolPayouts{Role: "coordinator", Shares: []api.PoolShare{{JobID: "7", Wei: "10", State: api.ShareBooked}}}, f.call("PoolPayouts")
}
func (f fakePoolPayB) PoolPublish(context.Context) (api.PoolPublishResult, error) {
	return api.PoolPublishResult{Epoch: 3, TotalWei: "10"}, f.call("PoolPublish")
}
func (f fakePoolPayB) PoolClaim(context.Context) (api.PoolClaimResult, error) {
	return api.PoolClaimResult{Claims: []api.PoolClaim{{Epoch: 3, Wei: "10"}}, TotalWei: "10"}, f.call("PoolClaim")
}

func (f fakeStatusB) Status() api.Status { f.call("Status"); return api.Status{State: "running"} }
func (f fakeStatusB) DoctorReport() (json.RawMessage, error) {
	return json.RawMessage(`{"ok":true}`), f.call("DoctorReport")
}

func (f fakePolicyB) Status() api.PolicyStatus {
	f.call("Status")
	return api.PolicyStatus{HasLocal: true}
}
func (f fakePolicyB) Reload() error { return f.call("Reload") }
func (f fakePolicyB) Check(r policy.Request) policy.Decision {
	f.call("Check")
	return policy.Decision{Allow: r.Manifest != nil && r.Sponsor == "0xs" && r.PriceWei.Int64() == 7}
}
func (f fakePolicyB) Rejections() []policy.Rejection {
	f.call("Rejections")
	return []policy.Rejection{{Image: "img", Failed: []policy.Check{{Rule: "images.allow", Kind: "image"}}}}
}
func (f fakePolicyB) ApplyPoolUpdate(signed []byte) error { return f.call("ApplyPoolUpdate") }
func (f fakePolicyB) Admission() policy.AdmissionStatus {
	f.call("Admission")
	return policy.AdmissionStatus{State: policy.StateActive}
}
func (f fakePolicyB) Drain(reason string) policy.AdmissionStatus {
	f.call("Drain")
	return policy.AdmissionStatus{State: policy.StateDraining, Reason: reason}
}
func (f fakePolicyB) Cordon(reason string) policy.AdmissionStatus {
	f.call("Cordon")
	return policy.AdmissionStatus{State: policy.StateCordoned, Reason: reason}
}
func (f fakePolicyB) Uncordon() policy.AdmissionStatus {
	f.call("Uncordon")
	return policy.AdmissionStatus{State: policy.StateActive}
}

func (f fakeJobsB) List() ([]jobs.Job, error) {
	return []jobs.Job{{ID: "7", State: jobs.Running}}, f.call("List")
}
func (f fakeJobsB) Detail(id string) (jobs.Detail, error) {
	return jobs.Detail{Job: jobs.Job{ID: id}}, f.call("Detail " + id)
}

func (f fakeRuntimeB) Pull(_ context.Context, ref string, _ bool, progress func(runtime.PullProgress)) (runtime.Image, error) {
	if err := f.call("Pull"); err != nil {
		return runtime.Image{}, err
	}
	progress(runtime.PullProgress{Image: ref, Layers: 1, LayersDone: 1})
	return runtime.Image{ID: "sha256:1", Refs: []string{ref}}, nil
}
func (f fakeRuntimeB) Images(context.Context) ([]runtime.Image, error) {
	return []runtime.Image{{ID: "sha256:1"}}, f.call("Images")
}
func (f fakeRuntimeB) PruneImages(context.Context) (runtime.PruneReport, error) {
	return runtime.PruneReport{CapBytes: 100}, f.call("PruneImages")
}
func (f fakeRuntimeB) PruneImagesTo(_ context.Context, capBytes int64) (runtime.PruneReport, error) {
	return runtime.PruneReport{CapBytes: capBytes}, f.call("PruneImagesTo")
}
func (f fakeRuntimeB) Logs(_ context.Context, id string, follow bool) (io.ReadCloser, error) {
	if err := f.call(fmt.Sprintf("Logs %s %v", id, follow)); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("log of " + id + "\n")), nil
}

func (f fakeBenchB) Last() *benchmark.Report {
	f.call("Last")
	return f.last
}
func (f fakeBenchB) Defaults() (benchmark.Profile, string) { return benchmark.Quick, "cpu" }
func (f fakeBenchB) Benchmark(_ context.Context, p benchmark.Profile, b string, _ func(int, int, benchmark.Result)) (*benchmark.Report, error) {
	if err := f.call(fmt.Sprintf("Benchmark %s %s", p, b)); err != nil {
		return nil, err
	}
	return f.last, nil
}

func (f fakeIPFSB) AddHostPath(_ context.Context, req api.IPFSAddRequest) (api.IPFSAddResult, error) {
	return api.IPFSAddResult{CID: "bafy", Name: req.Name}, f.call("AddHostPath " + req.Path)
}
func (f fakeIPFSB) GetHostPath(_ context.Context, req api.IPFSGetRequest) (api.IPFSProgress, error) {
	return api.IPFSProgress{CID: req.CID, State: "done"}, f.call("GetHostPath " + req.Dir)
}
func (f fakeIPFSB) UploadLimit() int64 { return 1 << 20 }
func (f fakeIPFSB) Upload(_ context.Context, archive io.Reader, name string, dir bool) (api.IPFSAddResult, error) {
	n, _ := io.Copy(io.Discard, archive)
	return api.IPFSAddResult{CID: "bafyup", Name: name, Bytes: n}, f.call(fmt.Sprintf("Upload %s %v", name, dir))
}
func (f fakeIPFSB) Tar(_ context.Context, cid string) (func(io.Writer) error, error) {
	if err := f.call("Tar " + cid); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fake-tar-")
	if err != nil {
		return nil, err
	}
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644)
	return func(w io.Writer) error { defer os.RemoveAll(dir); return treetar.Write(w, dir) }, nil
}
func (f fakeIPFSB) Fetches() []api.IPFSProgress {
	f.call("Fetches")
	return []api.IPFSProgress{{CID: "bafy"}}
}
func (f fakeIPFSB) FetchOf(cid string) (api.IPFSProgress, error) {
	return api.IPFSProgress{CID: cid}, f.call("FetchOf " + cid)
}
func (f fakeIPFSB) Pins(context.Context) ([]api.IPFSPin, error) {
	return []api.IPFSPin{{CID: "bafy"}}, f.call("Pins")
}
func (f fakeIPFSB) PinRoot(_ context.Context, req api.IPFSPinRequest) (api.IPFSPinRequest, error) {
	return req, f.call("PinRoot " + req.CID)
}
func (f fakeIPFSB) UnpinRoot(_ context.Context, cid string) error { return f.call("UnpinRoot " + cid) }
func (f fakeIPFSB) GC(context.Context) (api.IPFSGCResult, error) {
	return api.IPFSGCResult{Blocks: 3}, f.call("GC")
}

func (f fakeP2PB) Peers() api.P2PPeers { f.call("Peers"); return api.P2PPeers{ID: "me"} }
func (f fakeP2PB) MarketView() api.P2PMarket {
	f.call("MarketView")
	return api.P2PMarket{Records: []api.P2PRecord{{PeerID: "me"}}}
}
func (f fakeP2PB) Offer(_ context.Context, req api.OfferRequest) (api.OfferDecision, error) {
	return api.OfferDecision{ID: req.Offer.ID, Accepted: true}, f.call("Offer " + req.PeerID)
}

func (f fakeMarketB) Status() api.MarketStatus {
	f.call("Status")
	return api.MarketStatus{ChainID: 1337}
}
func (f fakeMarketB) WithdrawCredit(_ context.Context, req api.WithdrawRequest) (api.WithdrawResult, error) {
	return api.WithdrawResult{TxHash: "0xw"}, f.call("WithdrawCredit " + req.Token)
}
func (f fakeMarketB) Post(_ context.Context, req api.PostJobRequest) (api.PostJobResult, error) {
	return api.PostJobResult{JobID: "1"}, f.call("Post " + req.ManifestCID)
}
func (f fakeMarketB) JobRecord(_ context.Context, id string) (api.ChainJob, error) {
	return api.ChainJob{JobID: id}, f.call("JobRecord " + id)
}
func (f fakeMarketB) Cancel(_ context.Context, id string) (api.PostJobResult, error) {
	return api.PostJobResult{JobID: id}, f.call("Cancel " + id)
}
func (f fakeMarketB) JobResult(_ context.Context, id string) (api.JobResult, error) {
	return api.JobResult{JobID: id}, f.call("JobResult " + id)
}

func (f fakeLedgerB) Ledger() ([]api.LedgerEntry, error) {
	return []api.LedgerEntry{{Kind: "reward"}}, f.call("Ledger")
}
func (f fakeLedgerB) PostedJobs(context.Context) ([]api.ChainJob, error) {
	return []api.ChainJob{{JobID: "1"}}, f.call("PostedJobs")
}

// clientCalls calls every api.Client method of the route table, by name, with
// arguments that need escaping where the route has a path value.
var clientCalls = map[string]func(ctx context.Context, c *api.Client) error{
	"Status":           func(ctx context.Context, c *api.Client) error { _, err := c.Status(ctx); return err },
	"Doctor":           func(ctx context.Context, c *api.Client) error { _, err := c.Doctor(ctx); return err },
	"Policy":           func(ctx context.Context, c *api.Client) error { _, err := c.Policy(ctx); return err },
	"ReloadPolicy":     func(ctx context.Context, c *api.Client) error { _, err := c.ReloadPolicy(ctx); return err },
	"PolicyRejections": func(ctx context.Context, c *api.Client) error { _, err := c.PolicyRejections(ctx); return err },
	"PushPoolPolicy": func(ctx context.Context, c *api.Client) error {
		_, err := c.PushPoolPolicy(ctx, []byte("signed"))
		return err
	},
	"Admission": func(ctx context.Context, c *api.Client) error { _, err := c.Admission(ctx); return err },
	"Drain":     func(ctx context.Context, c *api.Client) error { _, err := c.Drain(ctx, "psu"); return err },
	"Cordon":    func(ctx context.Context, c *api.Client) error { _, err := c.Cordon(ctx, "psu"); return err },
	"Uncordon":  func(ctx context.Context, c *api.Client) error { _, err := c.Uncordon(ctx); return err },
	"CheckPolicy": func(ctx context.Context, c *api.Client) error {
		d, err := c.CheckPolicy(ctx, api.PolicyCheckRequest{Manifest: json.RawMessage(`{"version":1}`), Sponsor: "0xs", PriceWei: big.NewInt(7)})
		if err == nil && !d.Allow {
			return errors.New("the check did not reach the policy with its manifest, sponsor and price")
		}
		return err
	},
	"Jobs": func(ctx context.Context, c *api.Client) error { var l []jobs.Job; return c.Jobs(ctx, &l) },
	"Job": func(ctx context.Context, c *api.Client) error {
		var d jobs.Detail
		if err := c.Job(ctx, "a/b?c", &d); err != nil {
			return err
		}
		if d.ID != "a/b?c" {
			return fmt.Errorf("job id %q reached the route as %q", "a/b?c", d.ID)
		}
		return nil
	},
	"JobLogs": func(ctx context.Context, c *api.Client) error {
		rc, err := c.JobLogs(ctx, "j/1", true)
		if err != nil {
			return err
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		if string(b) != "log of j/1\n" {
			return fmt.Errorf("log %q", b)
		}
		return nil
	},
	"PullImage": func(ctx context.Context, c *api.Client) error {
		const ref = "registry.local/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		var progress int
		im, err := c.PullImage(ctx, api.PullRequest{Ref: ref}, func(api.PullProgress) { progress++ })
		if err == nil && (im.ID != "sha256:1" || progress != 1) {
			return fmt.Errorf("pull: image %+v after %d progress lines", im, progress)
		}
		return err
	},
	"Images": func(ctx context.Context, c *api.Client) error { _, err := c.Images(ctx); return err },
	"PruneImages": func(ctx context.Context, c *api.Client) error {
		capBytes := int64(5)
		r, err := c.PruneImages(ctx, api.PruneRequest{CapBytes: &capBytes})
		if err == nil && r.CapBytes != 5 {
			return fmt.Errorf("prune to %d, want 5", r.CapBytes)
		}
		return err
	},
	"LastBenchmark": func(ctx context.Context, c *api.Client) error { _, err := c.LastBenchmark(ctx); return err },
	"RunBenchmark": func(ctx context.Context, c *api.Client) error {
		_, err := c.RunBenchmark(ctx, api.BenchmarkRequest{Backend: "cuda"})
		return err
	},
	"IPFSAdd": func(ctx context.Context, c *api.Client) error { _, err := c.IPFSAdd(ctx, "/srv/x", "x"); return err },
	"IPFSGet": func(ctx context.Context, c *api.Client) error { _, err := c.IPFSGet(ctx, "bafy", "/srv/y"); return err },
	"IPFSUpload": func(ctx context.Context, c *api.Client) error {
		dir, err := os.MkdirTemp("", "upload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		os.WriteFile(filepath.Join(dir, "f"), []byte("abc"), 0o644)
		_, err = c.IPFSUpload(ctx, dir, "n&m")
		return err
	},
	"IPFSDownload": func(ctx context.Context, c *api.Client) error {
		dir, err := os.MkdirTemp("", "download-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := c.IPFSDownload(ctx, "bafy/..", dir); err != nil {
			return err
		}
		if b, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil || string(b) != "a" {
			return fmt.Errorf("downloaded a.txt: %q %v", b, err)
		}
		return nil
	},
	"IPFSFetches": func(ctx context.Context, c *api.Client) error { _, err := c.IPFSFetches(ctx); return err },
	"IPFSFetch":   func(ctx context.Context, c *api.Client) error { _, err := c.IPFSFetch(ctx, "bafy"); return err },
	"IPFSPins":    func(ctx context.Context, c *api.Client) error { _, err := c.IPFSPins(ctx); return err },
	"IPFSPin":     func(ctx context.Context, c *api.Client) error { _, err := c.IPFSPin(ctx, "bafy", "n"); return err },
	"IPFSUnpin":   func(ctx context.Context, c *api.Client) error { return c.IPFSUnpin(ctx, "bafy") },
	"IPFSGC":      func(ctx context.Context, c *api.Client) error { _, err := c.IPFSGC(ctx); return err },
	"P2PPeers":    func(ctx context.Context, c *api.Client) error { _, err := c.P2PPeers(ctx); return err },
	"P2PMarket": func(ctx context.Context, c *api.Client) error {
		m, err := c.P2PMarket(ctx)
		if err == nil && (len(m.Records) != 1 || m.Records[0].Verified == nil || m.Records[0].Verified.TFLOPS != 2) {
			return fmt.Errorf("market %+v: no verified figure", m)
		}
		return err
	},
	"PoolMembers": func(ctx context.Context, c *api.Client) error {
		m, err := c.PoolMembers(ctx)
		if err == nil && (m.Coordinator != "me" || len(m.Members) != 1 || !m.Members[0].Alive) {
			return fmt.Errorf("members %+v", m)
		}
		return err
	},
	"PoolJobs": func(ctx context.Context, c *api.Client) error {
		j, err := c.PoolJobs(ctx)
		if err == nil && (len(j.Jobs) != 1 || j.Jobs[0].State != "running" || j.Jobs[0].Members[0].Member != "m1") {
			return fmt.Errorf("pool jobs %+v", j)
		}
		return err
	},
	"PoolPayouts": func(ctx context.Context, c *api.Client) error {
		p, err := c.PoolPayouts(ctx)
		if err == nil && (p.Role != "coordinator" || len(p.Shares) != 1 || p.Shares[0].JobID != "7") {
			return fmt.Errorf("payouts %+v", p)
		}
		return err
	},
	"PoolPublish": func(ctx context.Context, c *api.Client) error {
		r, err := c.PoolPublish(ctx)
		if err == nil && (r.Epoch != 3 || r.TotalWei != "10") {
			return fmt.Errorf("published %+v", r)
		}
		return err
	},
	"PoolClaim": func(ctx context.Context, c *api.Client) error {
		r, err := c.PoolClaim(ctx)
		if err == nil && (len(r.Claims) != 1 || r.TotalWei != "10") {
			return fmt.Errorf("claimed %+v", r)
		}
		return err
	},
	"P2POffer": func(ctx context.Context, c *api.Client) error {
		d, err := c.P2POffer(ctx, "peer", api.Offer{ID: "o1"})
		if err == nil && (!d.Accepted || d.ID != "o1") {
			return fmt.Errorf("decision %+v", d)
		}
		return err
	},
	"Challenge": func(ctx context.Context, c *api.Client) error {
		r, err := c.Challenge(ctx, api.ChallengeRequest{PeerID: "peer"})
		if err == nil && (!r.Passed || r.PeerID != "peer") {
			return fmt.Errorf("result %+v", r)
		}
		return err
	},
	"MarketStatus": func(ctx context.Context, c *api.Client) error { _, err := c.MarketStatus(ctx); return err },
	"Withdraw": func(ctx context.Context, c *api.Client) error {
		_, err := c.Withdraw(ctx, api.WithdrawRequest{})
		return err
	},
	"PostJob": func(ctx context.Context, c *api.Client) error {
		_, err := c.PostJob(ctx, api.PostJobRequest{ManifestCID: "m"})
		return err
	},
	"ChainJob":   func(ctx context.Context, c *api.Client) error { _, err := c.ChainJob(ctx, "1/2"); return err },
	"CancelJob":  func(ctx context.Context, c *api.Client) error { _, err := c.CancelJob(ctx, "1?x"); return err },
	"JobResult":  func(ctx context.Context, c *api.Client) error { _, err := c.JobResult(ctx, "1"); return err },
	"Ledger":     func(ctx context.Context, c *api.Client) error { _, err := c.Ledger(ctx); return err },
	"PostedJobs": func(ctx context.Context, c *api.Client) error { _, err := c.PostedJobs(ctx); return err },
}

func fakeBackends(f *routeFakes, last *benchmark.Report) Backends {
	return Backends{Status: fakeStatusB{f}, Policy: fakePolicyB{f}, Jobs: fakeJobsB{f}, Runtime: fakeRuntimeB{f},
		Benchmark: fakeBenchB{f, last}, IPFS: fakeIPFSB{f}, P2P: fakeP2PB{f}, Market: fakeMarketB{f}, Ledger: fakeLedgerB{f}, Challenge: fakeChalB{f}, Pool: fakePoolB{f},
		PoolPay: fakePoolPayB{f}}
}

// serveRoutes serves the route table over b on a fresh socket.
func serveRoutes(t *testing.T, b Backends) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	srv, err := apiserver.New(api.Config{Socket: sock}, quietLog(), Routes(b, quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return api.NewClient(sock)
}

// TestRouteTable walks the route table: every route names an api.Client method that
// exists and documents its error classes; calling the method reaches the route's
// backend, and each documented class comes back to the client as that class.
func TestRouteTable(t *testing.T) {
	f := &routeFakes{}
	routes := Routes(fakeBackends(f, &benchmark.Report{Backend: "cpu"}), quietLog())
	c := serveRoutes(t, fakeBackends(f, &benchmark.Report{Backend: "cpu"}))
	none := serveRoutes(t, Backends{})
	clientType := reflect.TypeOf(c)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	tested := map[string]bool{}
	for _, r := range routes {
		t.Run(r.Pattern, func(t *testing.T) {
			method, path, ok := strings.Cut(r.Pattern, " ")
			if !ok || !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodDelete}, method) || !strings.HasPrefix(path, "/v1/") {
				t.Fatalf("pattern %q: want METHOD /v1/…", r.Pattern)
			}
			if _, ok := clientType.MethodByName(r.Client); !ok {
				t.Fatalf("client method %q does not exist on *api.Client", r.Client)
			}
			call := clientCalls[r.Client]
			if call == nil {
				t.Fatalf("no call of %s in clientCalls: add one", r.Client)
			}
			tested[r.Client] = true
			if len(r.Errors) == 0 {
				t.Fatal("no error classes documented")
			}
			for _, class := range r.Errors {
				if !slices.Contains(api.Classes, class) {
					t.Errorf("documented class %q is not an api class", class)
				}
			}

			f.reset(nil)
			if err := call(ctx, c); err != nil {
				t.Fatalf("%s: %v", r.Client, err)
			}
			if called := f.reset(nil); len(called) == 0 {
				t.Errorf("%s did not reach its backend", r.Client)
			}
			for _, class := range r.Errors {
				var err error
				if class == api.ErrNotFound {
					// Every route answers not_found on a node without its subsystem.
					err = call(ctx, none)
				} else {
					f.reset(api.WithClass(class, errors.New("fake failure")))
					err = call(ctx, c)
					f.reset(nil)
				}
				var ae *api.Error
				if !errors.Is(err, class) || !errors.As(err, &ae) || ae.Status != class.Status() {
					t.Errorf("%s failing with %s: client got %v (%#v)", r.Client, class, err, ae)
				}
			}
		})
	}
	for name := range clientCalls {
		if !tested[name] {
			t.Errorf("clientCalls has %s, which no route names", name)
		}
	}
}

// TestRouteErrorMapping: the route table turns the lower packages' sentinels, which
// know nothing of the API, into their classes.
func TestRouteErrorMapping(t *testing.T) {
	f := &routeFakes{}
	c := serveRoutes(t, fakeBackends(f, nil))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		client string
		fail   error
		want   api.Class
	}{
		{"Job", fmt.Errorf("job 7: %w", store.ErrNotFound), api.ErrNotFound},
		{"JobLogs", fmt.Errorf("job 7: %w", runtime.ErrUnknownJob), api.ErrNotFound},
		{"RunBenchmark", benchmark.ErrBusy, api.ErrConflict},
		{"LastBenchmark", nil, api.ErrNotFound}, // no report yet
		{"ReloadPolicy", errors.New("max_gpus = 99 exceeds the pool's 4"), api.ErrFailedPrecondition},
		{"PushPoolPolicy", errors.New("pool policy: not newer"), api.ErrFailedPrecondition},
		{"PushPoolPolicy", fmt.Errorf("save: %w", os.ErrPermission), api.ErrInternal},
		{"IPFSPins", errors.New("remote pinning service down"), api.ErrUnavailable},
		{"PostedJobs", errors.New("rpc down"), api.ErrUnavailable},
		{"Images", errors.New("dockerd down"), api.ErrInternal},
	} {
		f.reset(tc.fail)
		err := clientCalls[tc.client](ctx, c)
		if !errors.Is(err, tc.want) || (tc.fail != nil && !strings.Contains(err.Error(), tc.fail.Error())) {
			t.Errorf("%s failing with %v: client got %v, want %s with the message", tc.client, tc.fail, err, tc.want)
		}
	}
	f.reset(nil)
	const badRef = "registry.local/x:latest"
	if _, err := c.PullImage(ctx, api.PullRequest{Ref: badRef}, nil); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("pull of a tag: %v, want invalid_argument", err)
	}
	if called := f.reset(nil); len(called) != 0 {
		t.Errorf("a refused pull reached the runtime: %v", called)
	}
	f.reset(api.WithClass(api.ErrUnavailable, errors.New("registry down")))
	const ref = "registry.local/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if _, err := c.PullImage(ctx, api.PullRequest{Ref: ref}, nil); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "registry down") {
		t.Errorf("pull failing mid-stream: %v, want the runtime's error and class", err)
	}
	f.reset(nil)
	if err := c.Post(ctx, "/v1/policy/check", map[string]any{"manifest": map[string]any{"bogus": 1}}, nil); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("a manifest with an unknown field: %v, want invalid_argument", err)
	}
}

// TestDashboardRoutesInTable: the dashboard's allowlist names only GET routes of the table.
func TestDashboardRoutesInTable(t *testing.T) {
	gets := map[string]bool{}
	for _, r := range Routes(Backends{}, quietLog()) {
		if method, path, _ := strings.Cut(r.Pattern, " "); method == http.MethodGet {
			gets[path] = true
		}
	}
	for _, p := range ui.Routes() {
		if !gets[p] {
			t.Errorf("the dashboard reads %s, which is not a GET route of the table", p)
		}
	}
}
