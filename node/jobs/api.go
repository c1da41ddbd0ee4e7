package jobs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/node/store"
)

// Detail returns job id with its history: the answer to GET /v1/jobs/{id}. A job the
// node does not know is store.ErrNotFound.
func (m *Machine) Detail(id string) (Detail, error) {
	j, err := m.Get(id)
	if err != nil {
		return Detail{}, err
	}
	h, err := m.deps.Store.History(id)
	if err != nil {
		return Detail{}, err
	}
	return Detail{Job: j, History: h}, nil
}

// Detail is a job with its history, the answer to GET /v1/jobs/{id}.
type Detail struct {
	Job
	History []store.Transition `json:"history"`
}

// allStates lists every state, so each has a series even at 0.
var allStates = []State{Discovered, Accepting, Accepted, Preparing, Running, Uploading, Submitting, Submitted, Paid,
	Declined, Failed, Rejected, Expired, Lost}

// Collector exports the jobs by state and the GPU time they used, read from the store
// at scrape time so that the numbers survive restarts.
func (m *Machine) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Machine }

var (
	jobsDesc       = prometheus.NewDesc("gpunode_jobs", "Jobs this node knows, by state.", []string{"state"}, nil)
	gpuSecondsDesc = prometheus.NewDesc("gpunode_job_gpu_seconds_total", "GPU time used by finished job containers (wall time × GPUs).", nil, nil)
	gpusFreeDesc   = prometheus.NewDesc("gpunode_gpus_free", "GPUs not assigned to a job.", nil, nil)
	scrapeOKDesc   = prometheus.NewDesc("gpunode_jobs_scrape_success", "1 if the job store could be read at this scrape.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- gpuSecondsDesc
	ch <- gpusFreeDesc
	ch <- scrapeOKDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(gpusFreeDesc, prometheus.GaugeValue, float64(c.m.alloc.free()))
	list, err := c.m.List()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(scrapeOKDesc, prometheus.GaugeValue, 0)
		return
	}
	counts := map[State]int{}
	var gpuSeconds float64
	for _, j := range list {
		counts[j.State]++
		if j.Result != nil {
			gpuSeconds += j.Result.GPUSeconds
		}
	}
	for _, s := range allStates {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(gpuSecondsDesc, prometheus.CounterValue, gpuSeconds)
	ch <- prometheus.MustNewConstMetric(scrapeOKDesc, prometheus.GaugeValue, 1)
}
