package metrics

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/runtime/gpu"
)

// GPUs is what the GPU collector needs of the inventory.
type GPUs interface {
	Devices() []gpu.Device
	Sample(i int) (gpu.Sample, error)
	Simulated() bool
}

// dcgmLabels are dcgm-exporter's labels, in its order.
var dcgmLabels = []string{"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"}

type gauge struct {
	desc *prometheus.Desc
	// value reads the gauge from a sample; false when the GPU does not report it.
	value func(gpu.Sample) (float64, bool)
}

func value[T uint32 | uint64 | float64](p *T) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return float64(*p), true
}

func mebibytes(p *uint64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return float64(*p >> 20), true
}

// GPUCollector reads GPU telemetry at scrape time. As dcgm-exporter does, a field a GPU
// does not support is left out of its series; a field whose reading failed is left out
// and counted as a sample error. A lost GPU reports only gpunode_gpu_healthy 0; the other
// GPUs' series stay.
type GPUCollector struct {
	gpus     GPUs
	hostname string
	log      *slog.Logger
	gauges   []gauge
	healthy  *prometheus.Desc

	scrapeDuration *prometheus.Desc
	scrapeSuccess  *prometheus.Desc
	simulated      *prometheus.Desc
	gpuCount       *prometheus.Desc
	sampleErrors   *prometheus.CounterVec
}

// NewGPUCollector returns a collector over gpus; hostname fills the Hostname label.
func NewGPUCollector(gpus GPUs, hostname string, log *slog.Logger) *GPUCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, dcgmLabels, nil)
	}
	c := &GPUCollector{
		gpus:     gpus,
		hostname: hostname,
		log:      log,
		gauges: []gauge{
			{d("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."), func(s gpu.Sample) (float64, bool) { return value(s.GPUUtilPercent) }},
			{d("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)."), func(s gpu.Sample) (float64, bool) { return value(s.MemCopyUtilPercent) }},
			{d("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."), func(s gpu.Sample) (float64, bool) { return mebibytes(s.MemoryUsedBytes) }},
			{d("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."), func(s gpu.Sample) (float64, bool) { return mebibytes(s.MemoryFreeBytes) }},
			{d("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."), func(s gpu.Sample) (float64, bool) { return value(s.PowerWatts) }},
			{d("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."), func(s gpu.Sample) (float64, bool) { return value(s.TemperatureC) }},
			{d("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."), func(s gpu.Sample) (float64, bool) { return value(s.SMClockMHz) }},
			{d("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz)."), func(s gpu.Sample) (float64, bool) { return value(s.MemClockMHz) }},
			{d("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered."), func(s gpu.Sample) (float64, bool) { return float64(s.LastXID), true }},
			{d("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors."), func(s gpu.Sample) (float64, bool) { return value(s.ECCUncorrected) }},
		},
		healthy: prometheus.NewDesc("gpunode_gpu_healthy",
			"1 if the GPU is in service, 0 once it was lost or reported a fatal XID error.", []string{"gpu", "gpu_uuid"}, nil),
		scrapeDuration: prometheus.NewDesc("gpunode_collector_scrape_duration_seconds",
			"Time a collector took to read its values at this scrape.", []string{"collector"}, nil),
		scrapeSuccess: prometheus.NewDesc("gpunode_collector_scrape_success",
			"1 if the collector read every value at this scrape, 0 if any failed.", []string{"collector"}, nil),
		simulated: prometheus.NewDesc("gpunode_gpus_simulated",
			"1 if the GPUs are a simulation (--simulate-gpus), not real hardware.", nil, nil),
		gpuCount: prometheus.NewDesc("gpunode_gpus",
			"Number of GPUs in the inventory.", nil, nil),
		sampleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_gpu_sample_errors_total",
			Help: "GPU telemetry readings that failed, by GPU index.",
		}, []string{"gpu"}),
	}
	// Start every GPU's error counter at 0, so rate() works from the first error on.
	for _, d := range gpus.Devices() {
		c.sampleErrors.WithLabelValues(strconv.Itoa(d.Index))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *GPUCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range c.gauges {
		ch <- g.desc
	}
	ch <- c.healthy
	ch <- c.scrapeDuration
	ch <- c.scrapeSuccess
	ch <- c.simulated
	ch <- c.gpuCount
	c.sampleErrors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *GPUCollector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ok := 1.0
	devs := c.gpus.Devices()
	for _, d := range devs {
		labels := []string{strconv.Itoa(d.Index), d.UUID, d.PCIBusID, "nvidia" + strconv.Itoa(d.Index), d.Name, c.hostname}
		s, err := c.gpus.Sample(d.Index)
		healthy := 0.0
		if d.Healthy && !errors.Is(err, gpu.ErrLost) {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, healthy, strconv.Itoa(d.Index), d.UUID)
		if err != nil {
			if d.Healthy {
				// A GPU already out of service is reported by gpunode_gpu_healthy.
				ok = 0
				c.sampleErrors.WithLabelValues(strconv.Itoa(d.Index)).Inc()
				c.log.Warn("gpu telemetry failed; leaving the gpu out of this scrape", "gpu", d.Index, "gpu_uuid", d.UUID, "err", err)
			}
			continue
		}
		if len(s.Failed) > 0 {
			ok = 0
			c.sampleErrors.WithLabelValues(strconv.Itoa(d.Index)).Inc()
			c.log.Warn("gpu telemetry partly failed; leaving those fields out of this scrape", "gpu", d.Index, "gpu_uuid", d.UUID, "failed", s.Failed)
		}
		for _, g := range c.gauges {
			if v, ok := g.value(s); ok {
				ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, labels...)
			}
		}
	}
	sim := 0.0
	if c.gpus.Simulated() {
		sim = 1
	}
	ch <- prometheus.MustNewConstMetric(c.simulated, prometheus.GaugeValue, sim)
	ch <- prometheus.MustNewConstMetric(c.gpuCount, prometheus.GaugeValue, float64(len(devs)))
	c.sampleErrors.Collect(ch)
	ch <- prometheus.MustNewConstMetric(c.scrapeDuration, prometheus.GaugeValue, time.Since(start).Seconds(), "gpu")
	ch <- prometheus.MustNewConstMetric(c.scrapeSuccess, prometheus.GaugeValue, ok, "gpu")
}
