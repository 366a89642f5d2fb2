package telemetry

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instruments created before metrics are enabled record once they are, and
// show in the Prometheus format with their unit and counter suffixes.
func TestMetricsEndpoint(t *testing.T) {
	m := NewMeter("github.com/switchboard-cc/switchboard/pkg/telemetry/test")
	c := m.Counter("switchboard.test.events", "Events seen.")
	h := m.Seconds("switchboard.test.latency", "Latency.")
	g := m.Gauge("switchboard.test.depth", "Depth.")
	if MetricsEnabled() {
		t.Fatal("metrics enabled before EnableMetrics")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop, err := ServeMetricsOn(lis)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	c.Add(ctx, 2, metric.WithAttributes(attribute.String("outcome", "ack")))
	h.Record(ctx, 0.02)
	g.Record(ctx, 7)
	res, err := http.Get("http://" + lis.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	for _, want := range []string{
		`switchboard_test_events_total{outcome="ack"} 2`,
		`switchboard_test_latency_seconds_bucket{le="0.025"} 1`,
		`switchboard_test_depth 7`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if s, err := ServeMetrics(""); err != nil {
		t.Errorf("ServeMetrics(\"\") = %v", err)
	} else {
		s()
	}
}
