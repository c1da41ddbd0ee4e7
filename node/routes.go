package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/apiserver"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/policy"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/docker"
)

// The backends of the control API: what each group of routes needs of its subsystem,
// as plain Go methods. A nil backend leaves its routes answering api.ErrNotFound.
type (
	// StatusBackend serves the node's own routes.
	StatusBackend interface {
		Status() api.Status
		// DoctorReport is the last report of `gpunode doctor`, as it wrote it.
		DoctorReport() (json.RawMessage, error)
	}
	// PolicyBackend is the workload policy and admission state.
	PolicyBackend interface {
		Status() api.PolicyStatus
		Reload() error
		Check(r policy.Request) policy.Decision
		Rejections() []policy.Rejection
		ApplyPoolUpdate(signed []byte) error
		Admission() policy.AdmissionStatus
		Drain(reason string) policy.AdmissionStatus
		Cordon(reason string) policy.AdmissionStatus
		Uncordon() policy.AdmissionStatus
	}
	// JobsBackend is the job state machine.
	JobsBackend interface {
		List() ([]jobs.Job, error)
		Detail(id string) (jobs.Detail, error)
	}
	// RuntimeBackend is the container runtime's image cache and job logs.
	RuntimeBackend interface {
		Pull(ctx context.Context, ref string, allowTag bool, progress func(runtime.PullProgress)) (runtime.Image, error)
		Images(ctx context.Context) ([]runtime.Image, error)
		PruneImages(ctx context.Context) (runtime.PruneReport, error)
		PruneImagesTo(ctx context.Context, capBytes int64) (runtime.PruneReport, error)
		Logs(ctx context.Context, jobID string, follow bool) (io.ReadCloser, error)
	}
	// BenchmarkBackend runs the rig's benchmark and keeps its signed report.
	BenchmarkBackend interface {
		Last() *benchmark.Report
		Defaults() (benchmark.Profile, string)
		Benchmark(ctx context.Context, profile benchmark.Profile, backend string, progress func(done, total int, r benchmark.Result)) (*benchmark.Report, error)
	}
	// IPFSBackend is the embedded IPFS node.
	IPFSBackend interface {
		AddHostPath(ctx context.Context, req api.IPFSAddRequest) (api.IPFSAddResult, error)
		GetHostPath(ctx context.Context, req api.IPFSGetRequest) (api.IPFSProgress, error)
		UploadLimit() int64
		Upload(ctx context.Context, archive io.Reader, name string, dir bool) (api.IPFSAddResult, error)
		Tar(ctx context.Context, cid string) (func(io.Writer) error, error)
		Fetches() []api.IPFSProgress
		FetchOf(cid string) (api.IPFSProgress, error)
		Pins(ctx context.Context) ([]api.IPFSPin, error)
		PinRoot(ctx context.Context, req api.IPFSPinRequest) (api.IPFSPinRequest, error)
		UnpinRoot(ctx context.Context, cid string) error
		GC(ctx context.Context) (api.IPFSGCResult, error)
	}
	// P2PBackend is the node's libp2p presence.
	P2PBackend interface {
		Peers() api.P2PPeers
		MarketView() api.P2PMarket
		Offer(ctx context.Context, req api.OfferRequest) (api.OfferDecision, error)
	}
	// MarketBackend is the chain side: the JobMarket contract through the node's account.
	MarketBackend interface {
		Status() api.MarketStatus
		WithdrawCredit(ctx context.Context, req api.WithdrawRequest) (api.WithdrawResult, error)
		Post(ctx context.Context, req api.PostJobRequest) (api.PostJobResult, error)
		JobRecord(ctx context.Context, id string) (api.ChainJob, error)
		Cancel(ctx context.Context, id string) (api.PostJobResult, error)
		JobResult(ctx context.Context, id string) (api.JobResult, error)
	}
	// ChallengeBackend poses capacity challenges and knows their verdicts.
	ChallengeBackend interface {
		Challenge(ctx context.Context, req api.ChallengeRequest) (api.ChallengeResult, error)
		Verified(peerID string) *api.P2PVerified
	}
	// PoolBackend is the pool coordinator's view of its members and its jobs.
	PoolBackend interface {
		Members() api.PoolMembers
		Jobs() (api.PoolJobs, error)
	}
	// PoolPayBackend is the pool's payouts: on the coordinator its ledger and epochs, on
	// a member what the coordinator owes it.
	PoolPayBackend interface {
		PoolPayouts(ctx context.Context) (api.PoolPayouts, error)
		PoolPublish(ctx context.Context) (api.PoolPublishResult, error)
		PoolClaim(ctx context.Context) (api.PoolClaimResult, error)
	}
	// LedgerBackend is the node's money and the jobs it posted, as its store keeps them.
	LedgerBackend interface {
		Ledger() ([]api.LedgerEntry, error)
		PostedJobs(ctx context.Context) ([]api.ChainJob, error)
	}
)

// Backends are the subsystems the control API serves; nil ones are off.
type Backends struct {
	Status    StatusBackend
	Policy    PolicyBackend
	Jobs      JobsBackend
	Runtime   RuntimeBackend
	Benchmark BenchmarkBackend
	IPFS      IPFSBackend
	P2P       P2PBackend
	Market    MarketBackend
	Ledger    LedgerBackend
	Challenge ChallengeBackend
	Pool      PoolBackend
	PoolPay   PoolPayBackend
}

// Body caps of the routes that take less than apiserver.MaxBody.
const (
	smallBody = 4 << 10
	pathBody  = 64 << 10
)

// Routes is the control API: every /v1/… route the daemon serves, the api.Client method
// that calls it, and the error classes it answers with besides invalid_argument and
// internal.
//
// To add a route:
//  1. node/api: its request and answer types and the api.Client method (escape path
//     values with url.PathEscape);
//  2. here: the method it needs, on its backend interface (or a new backend in
//     Backends, set in Node.backends), returning api types or converting the lower
//     package's types here; errors carry their class (api.WithClass, or map the
//     package's sentinels here);
//  3. here: one entry — Pattern, Client, Errors, Kind and MaxBody when not the
//     defaults, and the handler: apiserver.Get / Handle for JSON, Streamed for a
//     stream, Uploaded for a raw body;
//  4. routes_test.go: a call of the client method in clientCalls and the fake's method;
//     TestRouteTable then checks the entry.
func Routes(b Backends, log *slog.Logger) []apiserver.Route {
	type (
		R    = apiserver.Route
		P    = apiserver.Params
		None = apiserver.None
		C    = context.Context
	)
	var (
		notFound    = []api.Class{api.ErrNotFound}
		unavailable = []api.Class{api.ErrNotFound, api.ErrUnavailable}
		tx          = []api.Class{api.ErrNotFound, api.ErrConflict, api.ErrUnavailable}
	)
	st, pol, jb, rt, bench, ip, nw, mk, led, cc, pl, pp := b.Status, b.Policy, b.Jobs, b.Runtime, b.Benchmark, b.IPFS, b.P2P, b.Market, b.Ledger, b.Challenge, b.Pool, b.PoolPay
	var uploadCap int64 = 1 // an upload route needs a cap; without IPFS it reads nothing
	if ip != nil {
		uploadCap = ip.UploadLimit()
	}
	return []R{
		// The node.
		{Pattern: "GET /v1/status", Client: "Status", Errors: notFound, Handler: apiserver.Get(func(C, P) (api.Status, error) {
			if st == nil {
				return api.Status{}, off("status")
			}
			return st.Status(), nil
		})},
		{Pattern: "GET /v1/doctor", Client: "Doctor", Errors: notFound, Handler: apiserver.Get(func(C, P) (json.RawMessage, error) {
			if st == nil {
				return nil, off("status")
			}
			return st.DoctorReport()
		})},

		// The pool, on its coordinator.
		{Pattern: "GET /v1/pool/members", Client: "PoolMembers", Errors: notFound, Handler: apiserver.Get(func(C, P) (api.PoolMembers, error) {
			if pl == nil {
				return api.PoolMembers{}, off("pool coordinator ([pool] coordinator = true)")
			}
			return pl.Members(), nil
		})},
		{Pattern: "GET /v1/pool/jobs", Client: "PoolJobs", Errors: notFound, Handler: apiserver.Get(func(C, P) (api.PoolJobs, error) {
			if pl == nil {
				return api.PoolJobs{}, off("pool coordinator ([pool] coordinator = true)")
			}
			return pl.Jobs()
		})},
		// The pool's payouts: the coordinator's ledger, a member's own.
		{Pattern: "GET /v1/pool/payouts", Client: "PoolPayouts", Errors: []api.Class{api.ErrNotFound, api.ErrFailedPrecondition, api.ErrUnavailable},
			Handler: apiserver.Get(func(ctx C, _ P) (api.PoolPayouts, error) {
				if pp == nil {
					return api.PoolPayouts{}, off("pool payouts ([pool] coordinator or coordinator_peer, with a chain)")
				}
				return pp.PoolPayouts(ctx)
			})},
		{Pattern: "POST /v1/pool/publish", Client: "PoolPublish", Errors: []api.Class{api.ErrNotFound, api.ErrFailedPrecondition, api.ErrUnavailable}, MaxBody: smallBody,
			Handler: apiserver.Handle(func(ctx C, _ P, _ None) (api.PoolPublishResult, error) {
				if pp == nil {
					return api.PoolPublishResult{}, off("pool payouts ([pool] coordinator = true, with a chain)")
				}
				return pp.PoolPublish(ctx)
			})},
		{Pattern: "POST /v1/pool/claim", Client: "PoolClaim", Errors: []api.Class{api.ErrNotFound, api.ErrFailedPrecondition, api.ErrUnavailable}, MaxBody: smallBody,
			Handler: apiserver.Handle(func(ctx C, _ P, _ None) (api.PoolClaimResult, error) {
				if pp == nil {
					return api.PoolClaimResult{}, off("pool payouts ([pool] coordinator_peer set, with a chain)")
				}
				return pp.PoolClaim(ctx)
			})},

		// Policy and admission.
		{Pattern: "GET /v1/policy", Client: "Policy", Errors: notFound, Handler: apiserver.Get(func(C, P) (api.PolicyStatus, error) {
			if pol == nil {
				return api.PolicyStatus{}, off("policy")
			}
			return pol.Status(), nil
		})},
		{Pattern: "POST /v1/policy/reload", Client: "ReloadPolicy", Errors: []api.Class{api.ErrNotFound, api.ErrFailedPrecondition},
			Handler: apiserver.Handle(func(_ C, _ P, _ None) (api.PolicyStatus, error) {
				if pol == nil {
					return api.PolicyStatus{}, off("policy")
				}
				if err := pol.Reload(); err != nil {
					return api.PolicyStatus{}, api.WithClass(api.ErrFailedPrecondition, err)
				}
				return pol.Status(), nil
			})},
		{Pattern: "POST /v1/policy/check", Client: "CheckPolicy", Errors: notFound, Handler: apiserver.Handle(func(_ C, _ P, in api.PolicyCheckRequest) (api.PolicyDecision, error) {
			if pol == nil {
				return api.PolicyDecision{}, off("policy")
			}
			req, err := policyRequest(in)
			if err != nil {
				return api.PolicyDecision{}, err
			}
			return apiDecision(pol.Check(req)), nil
		})},
		{Pattern: "GET /v1/policy/rejections", Client: "PolicyRejections", Errors: notFound, Handler: apiserver.Get(func(C, P) (api.PolicyRejections, error) {
			if pol == nil {
				return api.PolicyRejections{}, off("policy")
			}
			out := api.PolicyRejections{Recent: []api.PolicyRejection{}}
			for _, r := range pol.Rejections() {
				out.Recent = append(out.Recent, api.PolicyRejection{Time: r.Time, Image: r.Image, Sponsor: r.Sponsor, Failed: apiChecks(r.Failed)})
			}
			return out, nil
		})},
		{Pattern: "POST /v1/policy/pool", Client: "PushPoolPolicy", Errors: []api.Class{api.ErrNotFound, api.ErrFailedPrecondition}, MaxBody: policy.MaxEnvelopeBytes * 2,
			Handler: apiserver.Handle(func(_ C, _ P, in api.PoolPolicyRequest) (api.PolicyStatus, error) {
				if pol == nil {
					return api.PolicyStatus{}, off("policy")
				}
				if err := pol.ApplyPoolUpdate(in.Signed); err != nil {
					if errors.Is(err, os.ErrPermission) {
						return api.PolicyStatus{}, err
					}
					return api.PolicyStatus{}, api.WithClass(api.ErrFailedPrecondition, err)
				}
				return pol.Status(), nil
			})},
		{Pattern: "GET /v1/admission", Client: "Admission", Errors: notFound, Handler: apiserver.Get(func(C, P) (api.AdmissionStatus, error) {
			if pol == nil {
				return api.AdmissionStatus{}, off("policy")
			}
			return pol.Admission().API(), nil
		})},
		{Pattern: "POST /v1/admission/drain", Client: "Drain", Errors: notFound, MaxBody: smallBody,
			Handler: admit(pol, func(reason string) policy.AdmissionStatus { return pol.Drain(reason) })},
		{Pattern: "POST /v1/admission/cordon", Client: "Cordon", Errors: notFound, MaxBody: smallBody,
			Handler: admit(pol, func(reason string) policy.AdmissionStatus { return pol.Cordon(reason) })},
		{Pattern: "POST /v1/admission/uncordon", Client: "Uncordon", Errors: notFound, MaxBody: smallBody,
			Handler: admit(pol, func(string) policy.AdmissionStatus { return pol.Uncordon() })},

		// Jobs the node takes.
		{Pattern: "GET /v1/jobs", Client: "Jobs", Errors: notFound, Handler: apiserver.Get(func(C, P) ([]jobs.Job, error) {
			if jb == nil {
				return nil, off("jobs")
			}
			return jb.List()
		})},
		{Pattern: "GET /v1/jobs/{id}", Client: "Job", Errors: notFound, Handler: apiserver.Get(func(_ C, p P) (jobs.Detail, error) {
			if jb == nil {
				return jobs.Detail{}, off("jobs")
			}
			d, err := jb.Detail(p.Path("id"))
			if errors.Is(err, store.ErrNotFound) {
				return d, api.WithClass(api.ErrNotFound, err)
			}
			return d, err
		})},
		{Pattern: "GET /v1/jobs/{id}/logs", Client: "JobLogs", Errors: notFound, Kind: apiserver.Stream,
			Handler: apiserver.Streamed("text/plain; charset=utf-8", log, func(ctx C, p P, _ None) (apiserver.Writer, error) {
				if rt == nil {
					return nil, off("container runtime")
				}
				rc, err := rt.Logs(ctx, p.Path("id"), p.Query("follow") == "1")
				if errors.Is(err, runtime.ErrUnknownJob) {
					return nil, api.WithClass(api.ErrNotFound, err)
				}
				if err != nil {
					return nil, err
				}
				return func(w io.Writer) error {
					defer rc.Close()
					_, err := io.CopyBuffer(w, rc, make([]byte, 32<<10))
					return err
				}, nil
			})},

		// Images.
		{Pattern: "POST /v1/images/pull", Client: "PullImage", Errors: notFound, Kind: apiserver.Stream, MaxBody: pathBody,
			Handler: apiserver.Streamed("application/x-ndjson", log, func(ctx C, _ P, in api.PullRequest) (apiserver.Writer, error) {
				if rt == nil {
					return nil, off("container runtime")
				}
				if _, err := docker.ParseImageRef(in.Ref, in.AllowTag); err != nil {
					return nil, api.WithClass(api.ErrInvalidArgument, err)
				}
				return func(w io.Writer) error {
					enc := json.NewEncoder(w)
					im, err := rt.Pull(ctx, in.Ref, in.AllowTag, func(p runtime.PullProgress) {
						ap := api.PullProgress(p)
						_ = enc.Encode(api.PullEvent{Progress: &ap})
					})
					if err != nil {
						return enc.Encode(api.PullEvent{Error: err.Error(), Class: api.ClassOf(err)})
					}
					ai := api.Image(im)
					return enc.Encode(api.PullEvent{Image: &ai})
				}, nil
			})},
		{Pattern: "GET /v1/images", Client: "Images", Errors: notFound, Handler: apiserver.Get(func(ctx C, _ P) ([]api.Image, error) {
			if rt == nil {
				return nil, off("container runtime")
			}
			imgs, err := rt.Images(ctx)
			return apiImages(imgs), err
		})},
		{Pattern: "POST /v1/images/prune", Client: "PruneImages", Errors: notFound, MaxBody: smallBody,
			Handler: apiserver.Handle(func(ctx C, _ P, in api.PruneRequest) (api.PruneReport, error) {
				if rt == nil {
					return api.PruneReport{}, off("container runtime")
				}
				var rep runtime.PruneReport
				var err error
				if in.CapBytes != nil {
					rep, err = rt.PruneImagesTo(ctx, *in.CapBytes)
				} else {
					rep, err = rt.PruneImages(ctx)
				}
				return apiPruneReport(rep), err
			})},

		// The benchmark.
		{Pattern: "GET /v1/benchmark", Client: "LastBenchmark", Errors: notFound, Handler: apiserver.Get(func(C, P) (*benchmark.Report, error) {
			if bench == nil {
				return nil, off("benchmark")
			}
			last := bench.Last()
			if last == nil {
				return nil, api.WithClass(api.ErrNotFound, errors.New("no benchmark report yet: run `gpunode bench`"))
			}
			return last, nil
		})},
		{Pattern: "POST /v1/benchmark", Client: "RunBenchmark", Errors: []api.Class{api.ErrNotFound, api.ErrConflict}, Kind: apiserver.Stream, MaxBody: smallBody,
			Handler: apiserver.Handle(func(ctx C, _ P, in api.BenchmarkRequest) (*benchmark.Report, error) {
				if bench == nil {
					return nil, off("benchmark")
				}
				profile, backend := bench.Defaults()
				if in.Profile != "" {
					profile = benchmark.Profile(in.Profile)
				}
				if in.Backend != "" {
					backend = in.Backend
				}
				r, err := bench.Benchmark(ctx, profile, backend, nil)
				if errors.Is(err, benchmark.ErrBusy) {
					return nil, api.WithClass(api.ErrConflict, err)
				}
				return r, err
			})},

		// IPFS.
		{Pattern: "POST /v1/ipfs/add", Client: "IPFSAdd", Errors: []api.Class{api.ErrNotFound, api.ErrForbidden, api.ErrStorageFull}, MaxBody: pathBody,
			Handler: apiserver.Handle(func(ctx C, _ P, in api.IPFSAddRequest) (api.IPFSAddResult, error) {
				if ip == nil {
					return api.IPFSAddResult{}, off("IPFS")
				}
				return ip.AddHostPath(ctx, in)
			})},
		// get waits for the fetch.
		{Pattern: "POST /v1/ipfs/get", Client: "IPFSGet", Errors: []api.Class{api.ErrNotFound, api.ErrForbidden, api.ErrStorageFull}, Kind: apiserver.Stream, MaxBody: pathBody,
			Handler: apiserver.Handle(func(ctx C, _ P, in api.IPFSGetRequest) (api.IPFSProgress, error) {
				if ip == nil {
					return api.IPFSProgress{}, off("IPFS")
				}
				return ip.GetHostPath(ctx, in)
			})},
		{Pattern: "POST /v1/ipfs/upload", Client: "IPFSUpload", Errors: []api.Class{api.ErrNotFound, api.ErrStorageFull, api.ErrTooLarge}, Kind: apiserver.Upload, MaxBody: uploadCap,
			Handler: apiserver.Uploaded(func(ctx C, p P, body io.Reader) (api.IPFSAddResult, error) {
				if ip == nil {
					return api.IPFSAddResult{}, off("IPFS")
				}
				return ip.Upload(ctx, body, p.Query("name"), p.Query("dir") == "1")
			})},
		{Pattern: "GET /v1/ipfs/tar/{cid}", Client: "IPFSDownload", Errors: []api.Class{api.ErrNotFound, api.ErrStorageFull}, Kind: apiserver.Stream,
			Handler: apiserver.Streamed("application/x-tar", log, func(ctx C, p P, _ None) (apiserver.Writer, error) {
				if ip == nil {
					return nil, off("IPFS")
				}
				w, err := ip.Tar(ctx, p.Path("cid"))
				return apiserver.Writer(w), err
			})},
		{Pattern: "GET /v1/ipfs/fetches", Client: "IPFSFetches", Errors: notFound, Handler: apiserver.Get(func(C, P) ([]api.IPFSProgress, error) {
			if ip == nil {
				return nil, off("IPFS")
			}
			return ip.Fetches(), nil
		})},
		{Pattern: "GET /v1/ipfs/fetches/{cid}", Client: "IPFSFetch", Errors: notFound, Handler: apiserver.Get(func(_ C, p P) (api.IPFSProgress, error) {
			if ip == nil {
				return api.IPFSProgress{}, off("IPFS")
			}
			return ip.FetchOf(p.Path("cid"))
		})},
		{Pattern: "GET /v1/ipfs/pins", Client: "IPFSPins", Errors: unavailable, Handler: apiserver.Get(func(ctx C, _ P) ([]api.IPFSPin, error) {
			if ip == nil {
				return nil, off("IPFS")
			}
			pins, err := ip.Pins(ctx)
			if err != nil {
				return nil, api.WithClass(api.ErrUnavailable, err)
			}
			return pins, nil
		})},
		{Pattern: "POST /v1/ipfs/pins", Client: "IPFSPin", Errors: []api.Class{api.ErrNotFound, api.ErrStorageFull}, MaxBody: pathBody,
			Handler: apiserver.Handle(func(ctx C, _ P, in api.IPFSPinRequest) (api.IPFSPinRequest, error) {
				if ip == nil {
					return in, off("IPFS")
				}
				return ip.PinRoot(ctx, in)
			})},
		{Pattern: "DELETE /v1/ipfs/pins/{cid}", Client: "IPFSUnpin", Errors: notFound, Handler: apiserver.Get(func(ctx C, p P) (struct{}, error) {
			if ip == nil {
				return struct{}{}, off("IPFS")
			}
			return struct{}{}, ip.UnpinRoot(ctx, p.Path("cid"))
		})},
		{Pattern: "POST /v1/ipfs/gc", Client: "IPFSGC", Errors: notFound, Handler: apiserver.Handle(func(ctx C, _ P, _ struct{}) (api.IPFSGCResult, error) {
			if ip == nil {
				return api.IPFSGCResult{}, off("IPFS")
			}
			return ip.GC(ctx)
		})},

		// The p2p network.
		{Pattern: "GET /v1/p2p/peers", Client: "P2PPeers", Errors: notFound, Handler: apiserver.Get(func(C, P) (api.P2PPeers, error) {
			if nw == nil {
				return api.P2PPeers{}, off("p2p network")
			}
			return nw.Peers(), nil
		})},
		{Pattern: "GET /v1/p2p/market", Client: "P2PMarket", Errors: notFound, Handler: apiserver.Get(func(C, P) (api.P2PMarket, error) {
			if nw == nil {
				return api.P2PMarket{}, off("p2p network")
			}
			view := nw.MarketView()
			if cc != nil {
				for i := range view.Records {
					view.Records[i].Verified = cc.Verified(view.Records[i].PeerID)
				}
			}
			for i, r := range view.Records {
				if r.Verified == nil {
					view.Records[i].Verified = recordVerified(r)
				}
			}
			return view, nil
		})},
		{Pattern: "POST /v1/p2p/challenge", Client: "Challenge", Errors: unavailable, MaxBody: smallBody,
			Handler: apiserver.Handle(func(ctx C, _ P, in api.ChallengeRequest) (api.ChallengeResult, error) {
				if cc == nil {
					return api.ChallengeResult{}, off("p2p network")
				}
				return cc.Challenge(ctx, in)
			})},
		{Pattern: "POST /v1/p2p/offers", Client: "P2POffer", Errors: unavailable, MaxBody: 2 * p2p.MaxOfferSize,
			Handler: apiserver.Handle(func(ctx C, _ P, in api.OfferRequest) (api.OfferDecision, error) {
				if nw == nil {
					return api.OfferDecision{}, off("p2p network")
				}
				return nw.Offer(ctx, in)
			})},

		// The chain.
		{Pattern: "GET /v1/market/status", Client: "MarketStatus", Errors: notFound, Handler: apiserver.Get(func(C, P) (api.MarketStatus, error) {
			if mk == nil {
				return api.MarketStatus{}, off("chain")
			}
			return mk.Status(), nil
		})},
		{Pattern: "POST /v1/market/withdraw", Client: "Withdraw", Errors: tx, MaxBody: smallBody,
			Handler: apiserver.Handle(func(ctx C, _ P, in api.WithdrawRequest) (api.WithdrawResult, error) {
				if mk == nil {
					return api.WithdrawResult{}, off("chain")
				}
				return mk.WithdrawCredit(ctx, in)
			})},
		{Pattern: "POST /v1/market/jobs", Client: "PostJob", Errors: tx, MaxBody: pathBody,
			Handler: apiserver.Handle(func(ctx C, _ P, in api.PostJobRequest) (api.PostJobResult, error) {
				if mk == nil {
					return api.PostJobResult{}, off("chain")
				}
				return mk.Post(ctx, in)
			})},
		{Pattern: "GET /v1/market/jobs/{id}", Client: "ChainJob", Errors: unavailable, Handler: apiserver.Get(func(ctx C, p P) (api.ChainJob, error) {
			if mk == nil {
				return api.ChainJob{}, off("chain")
			}
			return mk.JobRecord(ctx, p.Path("id"))
		})},
		{Pattern: "POST /v1/market/jobs/{id}/cancel", Client: "CancelJob", Errors: tx, MaxBody: smallBody,
			Handler: apiserver.Handle(func(ctx C, p P, _ struct{}) (api.PostJobResult, error) {
				if mk == nil {
					return api.PostJobResult{}, off("chain")
				}
				return mk.Cancel(ctx, p.Path("id"))
			})},
		{Pattern: "GET /v1/market/jobs/{id}/result", Client: "JobResult", Errors: unavailable, Handler: apiserver.Get(func(ctx C, p P) (api.JobResult, error) {
			if mk == nil {
				return api.JobResult{}, off("chain")
			}
			return mk.JobResult(ctx, p.Path("id"))
		})},
		{Pattern: "GET /v1/market/ledger", Client: "Ledger", Errors: notFound, Handler: apiserver.Get(func(C, P) ([]api.LedgerEntry, error) {
			if led == nil {
				return nil, off("jobs")
			}
			return led.Ledger()
		})},
		{Pattern: "GET /v1/market/posted", Client: "PostedJobs", Errors: unavailable, Handler: apiserver.Get(func(ctx C, _ P) ([]api.ChainJob, error) {
			if led == nil {
				return nil, off("jobs")
			}
			list, err := led.PostedJobs(ctx)
			if err != nil {
				return nil, api.WithClass(api.ErrUnavailable, err)
			}
			return list, nil
		})},
	}
}

// off is the error of a route whose subsystem this node does not run.
func off(what string) error {
	return api.WithClass(api.ErrNotFound, fmt.Errorf("this node runs no %s (see gpunode status)", what))
}

// admit adapts a drain, cordon or uncordon.
func admit(pol PolicyBackend, f func(reason string) policy.AdmissionStatus) http.Handler {
	return apiserver.Handle(func(_ context.Context, _ apiserver.Params, in api.AdmissionRequest) (api.AdmissionStatus, error) {
		if pol == nil {
			return api.AdmissionStatus{}, off("policy")
		}
		return f(in.Reason).API(), nil
	})
}

// policyRequest reads a policy check's request: the manifest is decoded as the node
// decodes manifests it is offered.
func policyRequest(in api.PolicyCheckRequest) (policy.Request, error) {
	var m *job.Manifest
	if len(in.Manifest) > 0 && string(in.Manifest) != "null" {
		m = new(job.Manifest)
		dec := json.NewDecoder(bytes.NewReader(in.Manifest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(m); err != nil {
			return policy.Request{}, api.WithClass(api.ErrInvalidArgument, fmt.Errorf("manifest: %w", err))
		}
	}
	return policy.Request{Manifest: m, Sponsor: in.Sponsor, PriceWei: in.PriceWei}, nil
}

func apiChecks(in []policy.Check) []api.PolicyCheck {
	out := make([]api.PolicyCheck, 0, len(in))
	for _, c := range in {
		out = append(out, api.PolicyCheck{Layer: c.Layer, Rule: c.Rule, Kind: string(c.Kind), Pass: c.Pass, Detail: c.Detail})
	}
	return out
}

func apiDecision(d policy.Decision) api.PolicyDecision {
	return api.PolicyDecision{Allow: d.Allow, Checks: apiChecks(d.Checks)}
}

// backends are the node's subsystems as the route table sees them; those the node does
// not run stay nil.
func (n *Node) backends() Backends {
	b := Backends{Status: n, Policy: n.policy}
	if n.deps.Runtime != nil {
		b.Runtime = n.deps.Runtime
	}
	if n.deps.Benchmark != nil {
		b.Benchmark = n.deps.Benchmark
	}
	if n.deps.Market != nil {
		b.Market = n.deps.Market
	}
	if n.deps.Network != nil {
		b.P2P = n.deps.Network
	}
	if n.challenges != nil {
		b.Challenge = n.challenges
	}
	if n.ipfs != nil {
		b.IPFS = n.ipfs
	}
	if n.work != nil {
		b.Jobs, b.Ledger = n.work.machine, n.work
	}
	if n.poolCoordinator != nil {
		pb := poolMembers{c: n.poolCoordinator, bound: time.Duration(n.cfg.Pool.HeartbeatBound)}
		if n.work != nil {
			pb.jobs = n.work.coord
		}
		b.Pool = pb
	}
	if n.poolPay != nil {
		b.PoolPay = n.poolPay
	}
	return b
}

// Ledger is what the node was credited and withdrew: GET /v1/market/ledger.
func (w *work) Ledger() ([]api.LedgerEntry, error) { return w.ledger.Entries() }

// PostedJobs are the jobs this node posted: GET /v1/market/posted.
func (w *work) PostedJobs(ctx context.Context) ([]api.ChainJob, error) { return w.sponsored.List(ctx) }
