// Package configsvc is Switchboard's configuration service: tenants,
// organization units, Twilio provider connectors, messaging entries,
// services, users and IM workflows over gRPC, stored in MongoDB with the
// Twilio secrets sealed, and a ConfigChanged event on JetStream after every
// change so other services' caches follow within a second.
//
// Run starts it; the standalone binary (cmd/config) and the all-in-one
// binary both call it.
package configsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/revocation"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
	"github.com/switchboard-cc/switchboard/services/config/internal/conncheck"
	"github.com/switchboard-cc/switchboard/services/config/internal/events"
	"github.com/switchboard-cc/switchboard/services/config/internal/grpcapi"
	"github.com/switchboard-cc/switchboard/services/config/internal/secretbox"
	"github.com/switchboard-cc/switchboard/services/config/internal/signin"
	"github.com/switchboard-cc/switchboard/services/config/internal/store"
)

// Defaults.
const (
	DefaultGRPCAddr      = "127.0.0.1:9090"
	DefaultMongoDatabase = "switchboard_config"
	// ServiceName is how the service names itself to NATS and in service
	// tokens.
	ServiceName = "config"
)

// Config is the service's configuration.
type Config struct {
	// GRPCAddr is the gRPC listen address.
	GRPCAddr string
	// MongoURI and MongoDatabase locate the store.
	MongoURI      string
	MongoDatabase string
	// NATSURL locates JetStream.
	NATSURL string
	// NATSAuth: credentials and TLS for NATS (NATS_USER, NATS_CREDS, …).
	NATSAuth bus.Auth
	// SecretKeys seal connector secrets: comma-separated hex AES-256 keys
	// (64 hex digits each). The first seals; all open, so a new key goes in
	// front and the old one stays until ReencryptConnectorSecrets ran.
	SecretKeys string
	// AuthKeys verify bearer tokens: comma-separated hex HMAC keys (see
	// pkg/authn).
	AuthKeys string
	// StreamReplicas of the CONFIG stream: 1 on one machine, 3 in a cluster.
	StreamReplicas int
	// BcryptCost hashes passwords; 0 means 12.
	BcryptCost int
	// SignInPolicy throttles failed sign-ins; the zero value is
	// DefaultSignInPolicy.
	SignInPolicy SignInPolicy
	// PublicBaseURL is chat-handler's public base URL (the URL Twilio
	// calls): connector checks compare Twilio's webhook settings with the
	// URLs below it and send their self-tests there. Empty: those checks
	// report it missing.
	PublicBaseURL string
	// TwilioBaseURL sends connector checks' Twilio calls to an emulator
	// instead of Twilio (development, tests).
	TwilioBaseURL string
	// TwilioTimeout bounds each call of a connector check (Twilio and the
	// self-test); 0 is 10 s.
	TwilioTimeout time.Duration
}

// SignInPolicy says how failed sign-ins are delayed and locked out.
type SignInPolicy = signin.Policy

// DefaultSignInPolicy: 3 free failures per account and 20 per source
// address, then doubling delays from 1 s to 15 minutes; 10 consecutive
// failures lock an account for 30 minutes (an admin can clear it).
func DefaultSignInPolicy() SignInPolicy { return signin.DefaultPolicy() }

// Deps are connections the caller already has; nil fields are built from
// Config (and closed by Run).
type Deps struct {
	Listener net.Listener
	Bus      *bus.Bus
	Mongo    *mongo.Client
	AuthKeys *authn.Keys
}

func (c Config) withDefaults() Config {
	if c.GRPCAddr == "" {
		c.GRPCAddr = DefaultGRPCAddr
	}
	if c.MongoDatabase == "" {
		c.MongoDatabase = DefaultMongoDatabase
	}
	if c.StreamReplicas == 0 {
		c.StreamReplicas = 1
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = 12
	}
	if c.SignInPolicy == (SignInPolicy{}) {
		c.SignInPolicy = signin.DefaultPolicy()
	}
	return c
}

// Validate reports every problem of a configuration that builds all its
// connections itself.
func (c Config) Validate() error { return c.withDefaults().validate(Deps{}) }

func (c Config) validate(d Deps) error {
	var errs []error
	if _, err := secretbox.Parse(c.SecretKeys); err != nil {
		errs = append(errs, fmt.Errorf("secret keys (SWITCHBOARD_CONFIG_SECRET_KEYS): %w", err))
	}
	if d.AuthKeys == nil {
		if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
			errs = append(errs, fmt.Errorf("auth keys (SWITCHBOARD_AUTH_KEYS): %w", err))
		}
	}
	if d.Listener == nil {
		if _, _, err := net.SplitHostPort(c.GRPCAddr); err != nil {
			errs = append(errs, fmt.Errorf("grpc address %q: %w", c.GRPCAddr, err))
		}
	}
	if d.Mongo == nil && c.MongoURI == "" {
		errs = append(errs, errors.New("mongo uri (MONGO_URI) is required"))
	}
	if c.MongoDatabase == "" {
		errs = append(errs, errors.New("mongo database name is required"))
	}
	if d.Bus == nil && c.NATSURL == "" {
		errs = append(errs, errors.New("nats url (NATS_URL) is required"))
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		errs = append(errs, fmt.Errorf("stream replicas %d: want 1 to 5", c.StreamReplicas))
	}
	if err := c.SignInPolicy.Validate(); err != nil {
		errs = append(errs, err)
	}
	for name, v := range map[string]string{"public base url (PUBLIC_BASE_URL)": c.PublicBaseURL, "twilio base url (TWILIO_BASE_URL)": c.TwilioBaseURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("%s %q must be scheme://host[:port][/prefix]", name, v))
		}
	}
	if c.BcryptCost < 4 || c.BcryptCost > 31 {
		errs = append(errs, fmt.Errorf("bcrypt cost %d: want 4 to 31", c.BcryptCost))
	}
	return errors.Join(errs...)
}

// Run serves the config service until ctx is cancelled, then shuts down:
// health goes NOT_SERVING, in-flight calls finish, queued events get a last
// publish attempt, and the connections Run opened are closed.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(deps); err != nil {
		return fmt.Errorf("config service configuration: %w", err)
	}
	keyring, err := secretbox.Parse(cfg.SecretKeys)
	if err != nil {
		return err
	}
	authKeys := deps.AuthKeys
	if authKeys == nil {
		if authKeys, err = authn.ParseKeys(cfg.AuthKeys); err != nil {
			return err
		}
	}

	mc := deps.Mongo
	if mc == nil {
		if mc, err = mongodb.Connect(ctx, cfg.MongoURI); err != nil {
			return err
		}
		defer func() { _ = mc.Disconnect(context.WithoutCancel(ctx)) }()
	}
	b := deps.Bus
	if b == nil {
		if b, err = bus.ConnectAuth(cfg.NATSURL, ServiceName, cfg.NATSAuth, log); err != nil {
			return err
		}
		defer b.Close()
	}
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{Replicas: cfg.StreamReplicas}, subjects.StreamConfig); err != nil {
		return err
	}
	lis := deps.Listener
	if lis == nil {
		if lis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.GRPCAddr, err)
		}
	}

	pub := events.New(b, log)
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { pub.Run(pubCtx) })
	defer func() {
		stopPub()
		wg.Wait()
	}()

	revoked, err := revocation.Open(pubCtx, b.JS, cfg.StreamReplicas)
	if err != nil {
		return err
	}
	if !authKeys.HasRevocations() {
		authKeys = authKeys.WithRevocations(revoked)
	}
	throttle, err := signin.Open(ctx, b.JS, cfg.StreamReplicas, cfg.SignInPolicy)
	if err != nil {
		return err
	}
	checks := conncheck.Options{PublicBaseURL: cfg.PublicBaseURL, Timeout: cfg.TwilioTimeout}
	if cfg.TwilioBaseURL != "" {
		checks.TwilioBaseURL, _ = url.Parse(cfg.TwilioBaseURL)
		log.WarnContext(ctx, "connector checks call an emulator, not Twilio", "base_url", cfg.TwilioBaseURL)
	}
	a := app.New(store.New(mc.Database(cfg.MongoDatabase)), keyring, pub, log, app.WithBcryptCost(cfg.BcryptCost),
		app.WithSignInThrottle(throttle), app.WithRevoker(revoked), app.WithAuditor(pub), app.WithErasures(pub),
		app.WithConnectorChecker(conncheck.New(checks)))
	srv := grpcserver.New(log, authKeys)
	grpcapi.New(a, log).Register(srv)
	for _, name := range grpcapi.ServiceNames {
		srv.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	log.InfoContext(ctx, "config service listening", "addr", lis.Addr().String(), "database", cfg.MongoDatabase, "secret_key_id", keyring.CurrentKeyID())
	return srv.Serve(ctx, lis)
}
