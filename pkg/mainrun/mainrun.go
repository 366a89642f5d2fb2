// Package mainrun is the one way a Switchboard binary starts: build the
// logger, read the environment into a typed Config once, run until SIGINT
// or SIGTERM, and exit once with a status that says how it went.
package mainrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/httpserver"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
)

// Env reads environment variables, collecting parse errors so a binary
// reports every bad setting at once.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
}

// EnvFrom reads variables through lookup instead of the process
// environment (tests of a binary's configuration).
func EnvFrom(lookup func(string) (string, bool)) *Env { return &Env{lookup: lookup} }

// String returns the variable or def.
func (e *Env) String(key, def string) string {
	if v, ok := e.lookup(key); ok && v != "" {
		return v
	}
	return def
}

// Int returns the variable parsed as an integer, or def.
func (e *Env) Int(key string, def int) int {
	v, ok := e.lookup(key)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not an integer", key, v))
		return def
	}
	return n
}

// Bool returns the variable parsed as a boolean, or def.
func (e *Env) Bool(key string, def bool) bool {
	v, ok := e.lookup(key)
	if !ok || v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not a boolean", key, v))
		return def
	}
	return b
}

// Duration returns the variable parsed as a Go duration ("30s"), or def.
func (e *Env) Duration(key string, def time.Duration) time.Duration {
	v, ok := e.lookup(key)
	if !ok || v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not a duration like 30s", key, v))
		return def
	}
	return d
}

// List returns the comma-separated variable, or def.
func (e *Env) List(key string, def []string) []string {
	v, ok := e.lookup(key)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Err is every parse problem seen so far.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Logger builds the process logger: JSON unless LOG_FORMAT=text, level from
// LOG_LEVEL (debug, info, warn, error), and the trace_id and span_id of
// the span in a line's context (telemetry.LogHandler).
func Logger(env *Env, service string) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(env.String("LOG_LEVEL", "info"))); err != nil {
		env.errs = append(env.errs, fmt.Errorf("LOG_LEVEL: %w", err))
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	if env.String("LOG_FORMAT", "json") == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	return slog.New(telemetry.LogHandler(h)).With("service", service)
}

// Main runs fn with a context cancelled by SIGINT/SIGTERM and exits: 0 on a
// clean stop, 1 on an error, 2 on bad configuration. With HEALTH_ADDR set it
// also answers GET /healthz there while fn runs: a liveness endpoint for a
// binary that serves nothing else (workflow-runner under Kubernetes). With
// METRICS_ADDR set it serves the process's metrics at GET /metrics there
// (Prometheus text format; off by default).
func Main(service string, fn func(ctx context.Context, env *Env, log *slog.Logger) error) {
	MainWith(service, Options{}, fn)
}

// Options of MainWith.
type Options struct {
	// MetricsAddr is METRICS_ADDR's default (devstack serves metrics
	// unless told otherwise); "off" in the variable turns them off.
	MetricsAddr string
}

// MainWith is Main with other defaults.
func MainWith(service string, o Options, fn func(ctx context.Context, env *Env, log *slog.Logger) error) {
	env := &Env{lookup: os.LookupEnv}
	log := Logger(env, service)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	flush, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName:  service,
		OTLPEndpoint: env.String("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
	})
	var stopHealth, stopMetrics func()
	if err == nil {
		stopHealth, err = startHealth(env.String("HEALTH_ADDR", ""))
		if err != nil {
			err = ConfigError(err)
		}
	}
	if err == nil {
		stopMetrics, err = telemetry.ServeMetrics(MetricsAddr(env, o.MetricsAddr))
		if err != nil {
			stopHealth()
			err = ConfigError(err)
		}
	}
	if err == nil {
		err = fn(ctx, env, log)
		stopHealth()
		stopMetrics()
		// Telemetry is flushed last, after the service has stopped.
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ferr := flush(fctx); ferr != nil {
			log.Warn("flush telemetry", "err", ferr)
		}
		cancel()
	} else {
		err = ConfigError(err)
	}
	stop()
	var cfgErr configError
	switch {
	case err == nil:
		log.Info("stopped")
		os.Exit(0)
	case errors.As(err, &cfgErr):
		log.Error("bad configuration", "err", err)
		fmt.Fprintf(os.Stderr, "%s: bad configuration:\n%v\n", service, err)
		os.Exit(2)
	default:
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

type configError struct{ err error }

func (c configError) Error() string { return c.err.Error() }
func (c configError) Unwrap() error { return c.err }

// ConfigError marks err as a configuration problem (exit status 2). It
// returns nil for nil.
func ConfigError(err error) error {
	if err == nil {
		return nil
	}
	return configError{err}
}

// StreamOptions reads the JetStream settings every service shares:
// STREAM_REPLICAS, STREAM_MAX_AGE, STREAM_DUPLICATE_WINDOW and
// TRANSCRIPT_MAX_AGE.
func StreamOptions(env *Env) subjects.StreamOptions {
	return subjects.StreamOptions{
		Replicas:         env.Int("STREAM_REPLICAS", 1),
		MaxAge:           env.Duration("STREAM_MAX_AGE", 0),
		Duplicates:       env.Duration("STREAM_DUPLICATE_WINDOW", 0),
		TranscriptMaxAge: env.Duration("TRANSCRIPT_MAX_AGE", 0),
	}
}

// Secret returns the variable, or the trimmed contents of the file named by
// key_FILE (a mounted Kubernetes secret), so secrets need not sit in the
// environment.
func (e *Env) Secret(key string) string {
	if path, ok := e.lookup(key + "_FILE"); ok && path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s_FILE: %w", key, err))
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return e.String(key, "")
}

// NATSAuth reads the NATS credentials every service shares: NATS_USER with
// NATS_PASSWORD (or NATS_PASSWORD_FILE), NATS_TOKEN (or NATS_TOKEN_FILE),
// NATS_CREDS (a JWT .creds file) or NATS_NKEY (an nkey seed file), and TLS
// with NATS_TLS_CA, NATS_TLS_CERT and NATS_TLS_KEY. Conflicting or missing
// pieces are reported with the other configuration problems.
func NATSAuth(env *Env) bus.Auth {
	a := bus.Auth{
		User:      env.String("NATS_USER", ""),
		Password:  env.Secret("NATS_PASSWORD"),
		Token:     env.Secret("NATS_TOKEN"),
		CredsFile: env.String("NATS_CREDS", ""),
		NKeyFile:  env.String("NATS_NKEY", ""),
		CAFile:    env.String("NATS_TLS_CA", ""),
		CertFile:  env.String("NATS_TLS_CERT", ""),
		KeyFile:   env.String("NATS_TLS_KEY", ""),
	}
	if err := a.Validate(); err != nil {
		env.errs = append(env.errs, err)
	}
	return a
}

// startHealth serves GET /healthz on addr until the returned function is
// called; an empty addr serves nothing.
func startHealth(addr string) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("HEALTH_ADDR: listen %s: %w", addr, err)
	}
	return serveHealth(lis), nil
}

func serveHealth(lis net.Listener) func() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := httpserver.New(mux)
	go func() { _ = srv.Serve(lis) }()
	return func() { _ = srv.Close() }
}

// MetricsAddr reads METRICS_ADDR: where to serve /metrics, empty (or
// "off") for nowhere; def when unset.
func MetricsAddr(env *Env, def string) string {
	a := env.String("METRICS_ADDR", def)
	if a == "off" {
		return ""
	}
	return a
}
