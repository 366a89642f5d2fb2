package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Metrics are OpenTelemetry instruments exported in the Prometheus text
// format. Packages create their instruments at init from Meter (the
// global provider's meter): until EnableMetrics runs they record nothing
// and cost nothing; after it, every instrument of the process, whichever
// service it belongs to, is served by the one /metrics handler. A process
// enables metrics once: devstack's services share one endpoint.

var (
	metricsOnce    sync.Once
	metricsHandler http.Handler
	metricsErr     error
	metricsOn      bool
	metricsMu      sync.Mutex
)

// EnableMetrics installs, once per process, a meter provider whose
// instruments a Prometheus registry collects (with the Go runtime's and the
// process's collectors), and returns the handler serving them.
func EnableMetrics() (http.Handler, error) {
	metricsOnce.Do(func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
		if err != nil {
			metricsErr = fmt.Errorf("prometheus exporter: %w", err)
			return
		}
		otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)))
		metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		metricsMu.Lock()
		metricsOn = true
		metricsMu.Unlock()
	})
	return metricsHandler, metricsErr
}

// MetricsEnabled reports whether EnableMetrics has run, so code that
// samples something for a gauge (a consumer's pending count) does the
// work only when someone can read it.
func MetricsEnabled() bool {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	return metricsOn
}

// ServeMetrics enables metrics and serves GET /metrics on addr until the
// returned function is called. An empty addr serves nothing (metrics off).
func ServeMetrics(addr string) (stop func(), _ error) {
	if addr == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: listen %s: %w", addr, err)
	}
	return ServeMetricsOn(lis)
}

// ServeMetricsOn is ServeMetrics on an open listener.
func ServeMetricsOn(lis net.Listener) (stop func(), _ error) {
	h, err := EnableMetrics()
	if err != nil {
		_ = lis.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	if os.Getenv("PPROF") == "1" {
		// Go's profiles, for whoever can reach the metrics address: off
		// unless asked for, as they show the process's insides.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			otel.Handle(err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// Meter is a scope's meter with constructors that never fail: an
// instrument that cannot be created (a bad name, caught by the metrics
// test) records nothing.
type Meter struct{ m metric.Meter }

// NewMeter returns the global provider's meter for scope (the package path).
func NewMeter(scope string) Meter { return Meter{otel.Meter(scope)} }

// Counter is a monotonic count; Prometheus shows it as <name>_total.
func (m Meter) Counter(name, desc string) metric.Int64Counter {
	c, err := m.m.Int64Counter(name, metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
	}
	return c
}

// UpDown is a count that goes up and down (open connections).
func (m Meter) UpDown(name, desc string) metric.Int64UpDownCounter {
	c, err := m.m.Int64UpDownCounter(name, metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
	}
	return c
}

// Seconds is a latency histogram in seconds (<name>_seconds_bucket, …)
// with buckets from 1 ms to 30 s.
func (m Meter) Seconds(name, desc string) metric.Float64Histogram {
	h, err := m.m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	if err != nil {
		otel.Handle(err)
	}
	return h
}

// Gauge is a sampled value (a consumer's pending messages).
func (m Meter) Gauge(name, desc string) metric.Int64Gauge {
	g, err := m.m.Int64Gauge(name, metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
	}
	return g
}

// FloatGauge is a sampled value with a unit ("s" shows as <name>_seconds).
func (m Meter) FloatGauge(name, desc, unit string) metric.Float64Gauge {
	g, err := m.m.Float64Gauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
	if err != nil {
		otel.Handle(err)
	}
	return g
}

// Since is the seconds elapsed since t, for a Seconds histogram.
func Since(t time.Time) float64 { return time.Since(t).Seconds() }
