package policy

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	decisions   *prometheus.CounterVec
	rejections  *prometheus.CounterVec
	duties      *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	reloadOK    prometheus.Gauge
	poolUpdates *prometheus.CounterVec
	poolSeq     prometheus.Gauge
	admission   *admissionCollector
}

// admissionCollector reads the admission state at scrape time: with a running-jobs count
// from the daemon, draining becomes drained without any call into the holder.
type admissionCollector struct {
	desc  *prometheus.Desc
	state func() string
}

func (c *admissionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *admissionCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.state()
	for _, s := range States {
		v := 0.0
		if s == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, s)
	}
}

// Pool update results, the values of gpunode_policy_pool_updates_total's result label.
var poolResults = []string{"applied", "stale", "bad_signature", "invalid", "error", "not_member"}

func newMetrics(reg prometheus.Registerer, state func() string) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_policy_decisions_total",
			Help: "Policy decisions by stage (offer, container, duty, preflight) and result (allow, deny).",
		}, []string{"stage", "result"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_policy_rejections_total",
			Help: "Rejected jobs by reason; a job failing several kinds of rule counts once per kind.",
		}, []string{"reason"}),
		duties: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_policy_duties_declined_total",
			Help: "Validation duties declined by the [validator] rules, by reason; never evaluated.",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_policy_reloads_total",
			Help: "Policy reloads by result (ok, error); on error the previous policy stays in force.",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gpunode_policy_last_reload_success",
			Help: "1 if the last policy reload succeeded, 0 if the previous policy was kept.",
		}),
		poolUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_policy_pool_updates_total",
			Help: "Signed pool policies received, by result (applied, stale, bad_signature, invalid, error, not_member).",
		}, []string{"result"}),
		poolSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gpunode_policy_pool_seq",
			Help: "Sequence number of the pool policy in force; 0 without one.",
		}),
		admission: &admissionCollector{
			desc: prometheus.NewDesc("gpunode_node_admission_state",
				"1 for the node's admission state (active, cordoned, draining, drained), 0 for the others.",
				[]string{"state"}, nil),
			state: state,
		},
	}
	for _, s := range []string{"offer", "container", "duty", "preflight"} {
		m.decisions.WithLabelValues(s, "allow")
		m.decisions.WithLabelValues(s, "deny")
	}
	for _, k := range Kinds {
		m.rejections.WithLabelValues(string(k))
		m.duties.WithLabelValues(string(k))
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	m.reloadOK.Set(1)
	for _, r := range poolResults {
		m.poolUpdates.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.rejections, m.duties, m.reloads, m.reloadOK, m.poolUpdates, m.poolSeq, m.admission)
	}
	return m
}
