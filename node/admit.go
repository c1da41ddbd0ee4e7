package node

import (
	"math/big"
	"time"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/policy"
)

// Admitter adapts the policy holder to the job machine (jobs.Admitter): an offered job is
// judged with the node's current GPU state and its price per GPU-hour. It also re-checks
// the job when its container is created (jobs.ContainerChecker).
type Admitter struct{ h *policy.Holder }

// NewAdmitter returns the job machine's admitter over h.
func NewAdmitter(h *policy.Holder) Admitter { return Admitter{h: h} }

func (a Admitter) request(p jobs.Posting, m *job.Manifest) policy.Request {
	terms := policy.Terms{Token: p.Token, Validators: p.Validators, RunWindow: p.RunWindow()}
	if b, ok := new(big.Int).SetString(p.BondWei, 10); ok {
		terms.BondWei = b
	} else if p.BondWei != "" {
		terms.BondWei = new(big.Int).Lsh(big.NewInt(1), 256) // unreadable: larger than any cap
	}
	return policy.Request{Manifest: m, Sponsor: p.Sponsor, PriceWei: PricePerGPUHour(p.RewardWei, m), Node: a.h.CurrentNode(), Market: terms}
}

// MaxImageBytes implements jobs.Measurer.
func (a Admitter) MaxImageBytes() int64 { return a.h.Set().MaxImageBytes() }

// Measured implements jobs.Measurer: the run window against the measured prepare time.
func (a Admitter) Measured(p jobs.Posting, m *job.Manifest, f jobs.Preflight) (bool, []string) {
	r := a.request(p, m)
	r.Market.PrepareTime, r.Market.ImageBytes = f.PrepareTime, f.ImageBytes
	d := a.h.Measured(r)
	return d.Allow, d.Reasons()
}

// Declined implements jobs.Recorder.
func (a Admitter) Declined(p jobs.Posting, m *job.Manifest, kind, reason string) {
	a.h.Declined(policy.Kind(kind), a.request(p, m), reason)
}

// Admit implements jobs.Admitter.
func (a Admitter) Admit(p jobs.Posting, m *job.Manifest) (bool, []string) {
	d := a.h.Offer(a.request(p, m))
	return d.Allow, d.Reasons()
}

// CheckContainer implements jobs.ContainerChecker.
func (a Admitter) CheckContainer(p jobs.Posting, m *job.Manifest) (jobs.ContainerLimits, []string, bool) {
	cl, d := a.h.Container(a.request(p, m))
	return jobs.ContainerLimits{RunTimeout: cl.MaxDuration, Egress: cl.Egress}, d.Reasons(), d.Allow
}

// PricePerGPUHour spreads a job's reward over its GPUs (at least one) and its maximum
// duration, rounding down; nil if the reward is not a decimal amount.
func PricePerGPUHour(rewardWei string, m *job.Manifest) *big.Int {
	reward, ok := new(big.Int).SetString(rewardWei, 10)
	if !ok || reward.Sign() < 0 || m == nil {
		return nil
	}
	gpus := int64(max(m.Resources.GPUs, 1))
	secs := int64(max(m.MaxDuration.Duration, time.Second) / time.Second)
	num := new(big.Int).Mul(reward, big.NewInt(3600))
	return num.Quo(num, big.NewInt(gpus*secs))
}

// nodeState reads the rig's GPUs for the policy: model, hottest temperature, largest draw.
// GPUs out of service are not counted. Each reading counts field by field: a GPU that
// does not report its power (some GeForce cards) still reports its temperature.
func nodeState(g GPUs, verified func() float64) func() policy.NodeState {
	return func() policy.NodeState {
		s := policy.NodeState{Now: time.Now(), VerifiedTFLOPS: verified()}
		if g == nil {
			return s
		}
		for _, d := range g.Devices() {
			if !d.Healthy {
				continue
			}
			s.GPUs++
			if s.GPUModel == "" {
				s.GPUModel = d.Name
			}
			smp, err := g.Sample(d.Index)
			if err != nil {
				continue
			}
			if smp.TemperatureC != nil {
				s.MaxGPUTempC = max(s.MaxGPUTempC, float64(*smp.TemperatureC))
			}
			if smp.PowerWatts != nil {
				s.MaxGPUPowerW = max(s.MaxGPUPowerW, *smp.PowerWatts)
			}
		}
		s.GPUsFree = s.GPUs
		return s
	}
}
