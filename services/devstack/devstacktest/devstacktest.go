// Package devstacktest boots the all-in-one stack for a test: every service
// on free loopback ports, its own embedded NATS and data directory, and the
// test binary's shared database server (pkg/mongodb/mongotest). Packages
// using it call mongotest.Main from TestMain.
package devstacktest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/services/devstack"
)

// Start runs the stack until the test ends and returns where it listens.
// Options adjust the configuration before it starts.
func Start(t *testing.T, opts ...func(*devstack.Config)) devstack.Info {
	t.Helper()
	return StartLogged(t, nil, opts...)
}

// StartLogged is Start that also hands every line the stack logs, at
// every level, to h (nil: none), through telemetry's log handler as
// make run's logger does, so lines logged with a context carry its trace.
func StartLogged(t *testing.T, h slog.Handler, opts ...func(*devstack.Config)) devstack.Info {
	t.Helper()
	cfg := devstack.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.NATSAddr = "127.0.0.1:0"
	cfg.MongoURI = mongotest.URI(t)
	cfg.DatabasePrefix = mongotest.DatabaseName(t) + "_"
	cfg.ChatHandlerAddr, cfg.SessionsAddr, cfg.TwilioSimAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.ConfigAddr, cfg.DistributionAddr, cfg.ReportingAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.OutboundAddr = "127.0.0.1:0"
	cfg.SyncAlways = false
	cfg.BcryptCost = 4
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan devstack.Info, 1)
	done := make(chan error, 1)
	var lh slog.Handler = slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})
	if h != nil {
		lh = both{lh, h}
	}
	log := slog.New(telemetry.LogHandler(lh))
	go func() {
		done <- devstack.Run(ctx, cfg, devstack.Deps{Ready: func(i devstack.Info) { ready <- i }}, log)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("devstack.Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("devstack did not stop within 20s")
		}
	})
	select {
	case i := <-ready:
		return i
	case err := <-done:
		done <- nil // for the cleanup, which waits for Run to return
		t.Fatalf("devstack stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("devstack not ready within 60s")
	}
	return devstack.Info{}
}

// Only runs just the named services (devstack.ServiceNames); the others
// are not started.
func Only(services ...string) func(*devstack.Config) {
	return func(c *devstack.Config) { c.Services = services }
}

// Metrics serves every service's metrics on a free loopback port
// (Info.MetricsURL).
func Metrics() func(*devstack.Config) {
	return func(c *devstack.Config) { c.MetricsAddr = "127.0.0.1:0" }
}

// Tracing sends every service's spans to sp (a tracetest.SpanRecorder, say),
// each service through a tracer provider of its own whose resource names
// it (service.name), sampling every trace.
func Tracing(sp sdktrace.SpanProcessor) func(*devstack.Config) {
	return func(c *devstack.Config) {
		c.Tracing = func(service string) trace.TracerProvider {
			return sdktrace.NewTracerProvider(
				sdktrace.WithSpanProcessor(sp),
				sdktrace.WithSampler(sdktrace.AlwaysSample()),
				sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))),
			)
		}
	}
}

// both hands each record to two handlers.
type both [2]slog.Handler

func (b both) Enabled(ctx context.Context, l slog.Level) bool {
	return b[0].Enabled(ctx, l) || b[1].Enabled(ctx, l)
}

func (b both) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range b {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b both) WithAttrs(a []slog.Attr) slog.Handler {
	return both{b[0].WithAttrs(a), b[1].WithAttrs(a)}
}
func (b both) WithGroup(n string) slog.Handler { return both{b[0].WithGroup(n), b[1].WithGroup(n)} }
