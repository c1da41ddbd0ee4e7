package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/p2p"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/pooljobs"
)

// openPool starts the node's part in a pool on its p2p host: the coordinator's heartbeat
// service, or a member's heartbeats and dispatch handler. A member takes no dispatched
// job yet: running pool jobs is not built, and it says so in its answer.
func (n *Node) openPool(nw *p2p.Network) error {
	cfg := n.cfg.Pool
	if !cfg.Coordinator && cfg.CoordinatorPeer == "" {
		return nil
	}
	h := nw.Host()
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil {
		return errors.New("pool: the p2p host has no private key")
	}
	if cfg.Coordinator {
		c, err := pool.NewCoordinator(h, key, time.Duration(cfg.HeartbeatBound), n.log, n.reg)
		if err != nil {
			return err
		}
		n.poolCoordinator = c
		n.log.Info("pool coordinator: members report here", "coordinator_peer", h.ID().String())
		return nil
	}
	co, err := peer.Decode(cfg.CoordinatorPeer)
	if err != nil {
		return fmt.Errorf("pool.coordinator_peer: %w", err)
	}
	m, err := pool.NewMember(h, key, co, n.poolInventory, n.acceptDispatch, n.log, n.reg)
	if err != nil {
		return err
	}
	m.SetCancelHandler(n.cancelDispatch)
	n.poolMember = m
	return nil
}

// poolInventory is what a member reports in its heartbeats.
func (n *Node) poolInventory() pool.Heartbeat {
	st := n.Status()
	hb := pool.Heartbeat{GPUs: len(st.GPUs), FreeGPUs: len(st.GPUs), Admission: "active"}
	if st.Chain != nil && common.IsHexAddress(st.Chain.Account) {
		hb.Account = common.HexToAddress(st.Chain.Account)
	}
	if len(st.GPUs) > 0 {
		hb.GPUModel = st.GPUs[0].Name
	}
	if n.work != nil {
		hb.FreeGPUs = min(n.work.machine.FreeGPUs(), hb.GPUs)
	}
	if st.Benchmark != nil {
		hb.Score = st.Benchmark.RigScore
	}
	if st.Admission != nil {
		hb.Admission = st.Admission.State
	}
	hb.Running = n.poolRunning()
	hb.Datasets = n.sharedDatasets(hb.GPUModel)
	return hb
}

// sharedDatasets lists the tags of the rig's datasets its policy shares with someone,
// at most pool.MaxDatasets: what a member tells its coordinator (never the paths). Its
// policy still decides, per sponsor, when a job that mounts one is dispatched to it.
func (n *Node) sharedDatasets(model string) []string {
	if n.policy == nil {
		return nil
	}
	var out []string
	for _, tag := range n.policy.Advert(model).Datasets {
		if _, ok := n.cfg.Datasets[tag]; ok && job.ValidDatasetTag(tag) && len(out) < pool.MaxDatasets {
			out = append(out, tag)
		}
	}
	return out
}

// runPool sends a member's heartbeats until ctx ends.
func (n *Node) runPool(ctx context.Context) error {
	if n.poolMember == nil {
		<-ctx.Done()
		return nil
	}
	defer n.poolMember.Close()
	return n.poolMember.Run(ctx, time.Duration(n.cfg.Pool.Heartbeat))
}

// poolMembers serves GET /v1/pool/members and /v1/pool/jobs from the coordinator.
type poolMembers struct {
	c     *pool.Coordinator
	bound time.Duration
	// jobs is the pool's job flow; nil on a coordinator that takes no jobs (no chain or
	// no IPFS).
	jobs *pooljobs.Flow
}

// Jobs lists the pool's jobs, newest first, with their members.
func (p poolMembers) Jobs() (api.PoolJobs, error) {
	out := api.PoolJobs{Jobs: []api.PoolJob{}}
	if p.jobs == nil {
		return out, api.WithClass(api.ErrNotFound, errors.New("this coordinator takes no jobs: it needs a chain ([market]) and IPFS on the p2p network"))
	}
	list, err := p.jobs.List()
	if err != nil {
		return out, err
	}
	for _, j := range list {
		pj := api.PoolJob{ID: j.ID, State: string(j.State), CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, RewardWei: j.Posting.RewardWei,
			Nodes: j.Nodes, Reason: j.Reason, Members: poolAssignments(j.Assignments), Past: poolAssignments(j.Past),
			Reassignments: j.Reassignments, OutputCID: j.OutputCID, AcceptTx: j.AcceptTx, SubmitTx: j.SubmitTx, Refund: j.Refund, Booked: j.Booked}
		out.Jobs = append(out.Jobs, pj)
	}
	return out, nil
}

func poolAssignments(as []pooljobs.Assignment) []api.PoolAssignment {
	out := []api.PoolAssignment{}
	for _, a := range as {
		pa := api.PoolAssignment{Rank: a.Rank, Member: a.Member, Account: a.Account, Score: a.Score, DispatchedAt: a.DispatchedAt.UTC(),
			Status: a.Status, CID: a.CID, WallSeconds: a.WallSeconds, Reason: a.Reason}
		if !a.ResultAt.IsZero() {
			at := a.ResultAt.UTC()
			pa.ResultAt = &at
		}
		out = append(out, pa)
	}
	return out
}

func (p poolMembers) Members() api.PoolMembers {
	out := api.PoolMembers{Coordinator: p.c.ID().String(), HeartbeatBoundSecs: p.bound.Seconds(), Members: []api.PoolMember{}}
	for _, m := range p.c.Members() {
		out.Members = append(out.Members, api.PoolMember{
			PeerID: m.Member, Account: m.Account.Hex(), GPUs: m.GPUs, FreeGPUs: m.FreeGPUs, GPUModel: m.GPUModel,
			Score: m.Score, Verified: m.Verified, Admission: m.Admission, Running: m.Running, Datasets: m.Datasets,
			LastSeen: m.LastSeen.UTC(), Alive: m.Alive,
		})
	}
	return out
}

// poolAdmitter is the coordinator's policy over the pool's jobs. It decides what is the
// pool's to decide — sponsors, prices, images, network, durations — but not what is a
// rig's: the rule on verified throughput (resources.min_verified_score) sees the best
// among the live members, not the coordinator's own rig's; datasets and thermal limits
// are not checked here (policy.Request.Pool), and price floors are those for any GPU
// model ("*"), since the coordinator's GPUs run nothing. The flow then picks members
// that meet the job (free GPUs, scores, the datasets they report), and each member's
// own policy checks its rig again when the job is dispatched to it.
type poolAdmitter struct {
	Admitter
	members func() []pool.MemberInfo
}

// Admit implements jobs.Admitter.
func (a poolAdmitter) Admit(p jobs.Posting, m *job.Manifest) (bool, []string) {
	r := a.request(p, m)
	r.Pool = true
	r.Node.GPUModel, r.Node.MaxGPUTempC, r.Node.MaxGPUPowerW = "", 0, 0
	for _, mi := range a.members() {
		if mi.Alive && mi.Admission == "active" && mi.Verified > r.Node.VerifiedTFLOPS {
			r.Node.VerifiedTFLOPS = mi.Verified
		}
	}
	d := a.h.Offer(r)
	return d.Allow, d.Reasons()
}
