package p2p

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/node/p2p/capacity"
)

type metrics struct {
	invalid  *prometheus.CounterVec
	accepted prometheus.Counter
	offers   *prometheus.CounterVec
	refused  *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	grayed   *prometheus.CounterVec
	syncs    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, peers, records, graylisted func() float64) (*metrics, error) {
	m := &metrics{
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_p2p_invalid_messages_total",
			Help: "Capacity records refused by the gossip validator, by reason.",
		}, []string{"reason"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpunode_p2p_records_accepted_total",
			Help: "Capacity records accepted from the network (including this node's own).",
		}),
		offers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_p2p_offers_received_total",
			Help: "Direct job offers received, by decision.",
		}, []string{"decision"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_p2p_offers_refused_total",
			Help: "Direct job offers not taken, by reason: rate_limited, busy and graylisted ones were never evaluated.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_p2p_records_dropped_total",
			Help: "Valid capacity records not kept, by reason (market_full: the market view is at max_records).",
		}, []string{"reason"}),
		syncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpunode_p2p_sync_requests_refused_total",
			Help: "Market-sync requests refused because the peer asked too often.",
		}),
		grayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_p2p_graylisted_total",
			Help: "Peers disconnected and graylisted, by the abuse that got them there.",
		}, []string{"reason"}),
	}
	for _, r := range refusedReasons {
		m.refused.WithLabelValues(r)
	}
	m.dropped.WithLabelValues(droppedMarketFull)
	for _, r := range []string{refusedRateLimited, refusedInvalid, syncAbuse} {
		m.grayed.WithLabelValues(r)
	}
	for _, r := range capacity.Reasons {
		m.invalid.WithLabelValues(string(r))
	}
	for _, d := range []string{"accepted", "declined", "invalid"} {
		m.offers.WithLabelValues(d)
	}
	cs := []prometheus.Collector{
		m.invalid, m.accepted, m.offers, m.refused, m.dropped, m.grayed, m.syncs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gpunode_p2p_graylisted_peers",
			Help: "Peers whose connections are refused now.",
		}, graylisted),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gpunode_p2p_connected_peers",
			Help: "Peers with an open connection.",
		}, peers),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gpunode_p2p_known_records",
			Help: "Live capacity records in the market view.",
		}, records),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
