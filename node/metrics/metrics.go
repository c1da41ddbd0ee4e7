// Package metrics exposes the node on a Prometheus /metrics endpoint: GPU telemetry under
// dcgm-exporter's metric names and labels (so NVIDIA's published Grafana dashboard works
// unchanged), and the node's own gpunode_* metrics.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gpunode/gpunode/version"
)

// Config configures the metrics endpoint.
type Config struct {
	// Listen is the address of the /metrics endpoint, "" to turn it off.
	Listen string `toml:"listen"`
	// Hostname is the Hostname label of GPU series; empty means the machine's hostname.
	Hostname string `toml:"hostname"`
}

// DefaultListen is the metrics address unless told otherwise. dcgm-exporter uses 9400;
// gpunode uses its own port so that both can run on one rig.
const DefaultListen = "127.0.0.1:9835"

// Default returns the default metrics configuration.
func Default() Config { return Config{Listen: DefaultListen} }

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	if c.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return []error{fmt.Errorf("listen: %q is not host:port: %w", c.Listen, err)}
	}
	return nil
}

// NewRegistry returns a registry with the Go runtime, process and build-info collectors,
// plus gpunode_build_info and gpunode_start_time_seconds.
func NewRegistry(started time.Time) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gpunode_build_info",
		Help: "Always 1; the labels say which gpunode build is running.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version.Get(), runtime.Version()).Set(1)
	start := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gpunode_start_time_seconds",
		Help: "Unix time at which the node started.",
	})
	start.Set(float64(started.UnixNano()) / 1e9)
	uptime := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gpunode_uptime_seconds",
		Help: "Seconds since the node started.",
	}, func() float64 { return time.Since(started).Seconds() })
	reg.MustRegister(build, start, uptime)
	return reg
}

// Serve answers /metrics from g on cfg.Listen until ctx is cancelled.
func Serve(ctx context.Context, cfg Config, g prometheus.Gatherer, log *slog.Logger) error {
	if cfg.Listen == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", cfg.Listen, err)
	}
	return ServeListener(ctx, ln, g, log)
}

// ServeListener is Serve on an open listener.
func ServeListener(ctx context.Context, ln net.Listener, g prometheus.Gatherer, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, `<html><body><h1>gpunode</h1><a href="/metrics">metrics</a></body></html>`)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("metrics listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: shutdown: %w", err)
	}
	return nil
}
