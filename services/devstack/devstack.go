// Package devstack runs all of Switchboard in one process on one machine:
// an embedded NATS server with JetStream, an embedded FerretDB (unless
// NATS_URL or MONGO_URI name external ones), the Twilio emulator, every
// service, and a demo tenant seeded through the same apply path as
// `switchboardctl apply`. It is for development, demos and end-to-end
// tests, and is never deployed.
package devstack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/ferret"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/revocation"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	chathandler "github.com/switchboard-cc/switchboard/services/chat-handler"
	configsvc "github.com/switchboard-cc/switchboard/services/config"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
	"github.com/switchboard-cc/switchboard/services/distribution"
	outboundsender "github.com/switchboard-cc/switchboard/services/outbound-sender"
	"github.com/switchboard-cc/switchboard/services/reporting"
	"github.com/switchboard-cc/switchboard/services/sessions"
	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
	workflowrunner "github.com/switchboard-cc/switchboard/services/workflow-runner"
)

// Config of the all-in-one stack.
type Config struct {
	// DataDir holds NATS and FerretDB files and the generated keys, so a
	// restart keeps everything.
	DataDir string
	// NATSURL of an external server; empty runs one embedded on NATSAddr.
	NATSURL  string
	NATSAddr string
	// NATSAuth are the credentials for an external server. The embedded one
	// always requires a password: user NATSUser with a password generated
	// into DataDir/nats.password (Info.NATSPassword).
	NATSAuth bus.Auth
	// MongoURI of an external server; empty runs FerretDB on MongoAddr.
	MongoURI  string
	MongoAddr string
	// DatabasePrefix names each service's database (<prefix>config, …).
	DatabasePrefix string

	ChatHandlerAddr  string
	SessionsAddr     string
	TwilioSimAddr    string
	ConfigAddr       string
	DistributionAddr string
	ReportingAddr    string
	// OutboundAddr serves outbound-sender's OutboundService (contact state,
	// delivery ledger).
	OutboundAddr string

	// AuthKeys and SecretKeys (hex, comma-separated); generated into DataDir
	// when empty.
	AuthKeys   string
	SecretKeys string
	// SeedDemo applies the demo tenant at start.
	SeedDemo bool
	// ContractDir runs the emulator in strict contract mode (Twilio's OpenAPI
	// documents) when set.
	ContractDir string
	// SyncAlways fsyncs every JetStream write of the embedded server.
	SyncAlways bool
	// DemoRONATimeout overrides the demo service's RONA timeout (tests).
	DemoRONATimeout time.Duration
	// BcryptCost for user passwords; 0 is the config service's default.
	BcryptCost int
	// StaleSweepEvery is how often sessions checks active sessions
	// against their tenant's stale_after (0: sessions' default, 10
	// minutes); SessionsClock is its sweeps' clock (nil: time.Now), so a
	// test can age sessions past a tenant's stale_after (at least an hour)
	// without waiting.
	StaleSweepEvery time.Duration
	SessionsClock   func() time.Time
	// WebAllowHosts are hosts Web Request activities may reach although
	// they resolve to refused addresses (workflow-runner's
	// WEB_REQUEST_ALLOW_HOSTS: "host" or "tenant/host"), such as a test's
	// server on 127.0.0.1.
	WebAllowHosts []string

	// Services to run (names from ServiceNames); empty runs them all. The
	// others are expected at their addresses above (other processes, or
	// not needed by the test). The demo tenant is applied once config
	// answers, in the background when config is not one of them.
	Services []string
	// MetricsAddr serves every service's metrics at /metrics when set.
	MetricsAddr string
	// Tracing, when set, gives each service running here its tracer
	// provider (by name: one per service, so each has its own resource);
	// tests collect every service's spans this way. Nil: the global one.
	Tracing func(service string) trace.TracerProvider
}

// ServiceNames are the services devstack can run, in start order.
var ServiceNames = []string{
	"config", "twilio-sim", "chat-handler", "distribution", "sessions", "workflow-runner", "outbound-sender", "reporting",
}

// ParseServices reads a comma-separated list of service names ("all" or
// empty for every one), refusing unknown names with the list of known ones.
func ParseServices(list string) ([]string, error) {
	var out, unknown []string
	seen := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "" || seen[n]:
			continue
		case n == "all":
			return nil, nil
		case !slices.Contains(ServiceNames, n):
			unknown = append(unknown, strconv.Quote(n))
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown service %s; known services: %s (or all)", strings.Join(unknown, ", "), strings.Join(ServiceNames, ", "))
	}
	return out, nil
}

// runs reports whether the configuration runs service.
func (c Config) runs(service string) bool {
	return len(c.Services) == 0 || slices.Contains(c.Services, service)
}

// addresses are the configured listen addresses by service.
func (c Config) addresses() map[string]string {
	return map[string]string{
		"chat-handler": c.ChatHandlerAddr, "sessions": c.SessionsAddr, "twilio-sim": c.TwilioSimAddr,
		"config": c.ConfigAddr, "distribution": c.DistributionAddr, "reporting": c.ReportingAddr,
		"outbound-sender": c.OutboundAddr,
	}
}

// NATSUser is the user the embedded NATS server requires.
const NATSUser = "switchboard"

// Defaults are the ports the README documents.
func Defaults() Config {
	return Config{
		DataDir:          ".data",
		NATSAddr:         "127.0.0.1:4222",
		MongoAddr:        "127.0.0.1:27017",
		DatabasePrefix:   "switchboard_",
		ChatHandlerAddr:  "127.0.0.1:8080",
		SessionsAddr:     "127.0.0.1:8081",
		TwilioSimAddr:    "127.0.0.1:8089",
		ConfigAddr:       "127.0.0.1:9090",
		DistributionAddr: "127.0.0.1:9091",
		ReportingAddr:    "127.0.0.1:9092",
		OutboundAddr:     "127.0.0.1:9093",
		SeedDemo:         true,
		SyncAlways:       true,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	addrs := c.addresses()
	for _, s := range c.Services {
		if !slices.Contains(ServiceNames, s) {
			errs = append(errs, fmt.Errorf("unknown service %q; known services: %s", s, strings.Join(ServiceNames, ", ")))
		}
	}
	if c.NATSURL == "" {
		addrs["nats"] = c.NATSAddr
	}
	if c.MongoURI == "" {
		addrs["ferretdb"] = c.MongoAddr
	}
	for name, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s address %q: %v", name, a, err))
		}
	}
	return errors.Join(errs...)
}

// Info tells where everything listens once the stack is up.
type Info struct {
	ChatHandlerURL   string
	ConsoleURL       string
	TwilioSimURL     string
	ConfigAddr       string
	DistributionAddr string
	ReportingAddr    string
	OutboundAddr     string
	NATSURL          string
	// NATSAuth is what the services present to NATS (for the embedded
	// server: user NATSUser and its generated password).
	NATSAuth bus.Auth
	MongoURI string
	// AuthKeys sign tokens; AdminToken is a demo-tenant admin token for
	// grpcurl and switchboardctl.
	AuthKeys   *authn.Keys
	AdminToken string
	// Demo is the seeded tenant (nil when SeedDemo is off).
	Demo *tenantspec.Spec

	// Services running in this process; Addrs has every service's
	// address, running here or expected elsewhere.
	Services []string
	Addrs    map[string]string
	// ServiceAuth is what each service presents to the embedded NATS
	// server (its own user; empty with an external server).
	ServiceAuth map[string]bus.Auth
	// AuthKeysHex and SecretKeysHex are the keys in the form the services'
	// environment takes them; DatabasePrefix names their databases.
	AuthKeysHex, SecretKeysHex string
	DatabasePrefix             string
	// MetricsURL is where /metrics is served (empty when it is not).
	MetricsURL string
}

// Deps of the stack.
type Deps struct {
	// Ready is called once every service is up.
	Ready func(Info)
	// Seeded is called once the demo tenant is applied (with SeedDemo).
	Seeded func()
}

// Run starts everything and blocks until ctx is done, then stops the
// services before the embedded servers.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("devstack config: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	authHex, err := keyFile(cfg.AuthKeys, filepath.Join(cfg.DataDir, "auth.keys"))
	if err != nil {
		return err
	}
	secretHex, err := keyFile(cfg.SecretKeys, filepath.Join(cfg.DataDir, "secret.keys"))
	if err != nil {
		return err
	}
	keys, err := authn.ParseKeys(authHex)
	if err != nil {
		return err
	}

	var metricsURL string
	if cfg.MetricsAddr != "" {
		lis, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics cannot listen on %s: %w", cfg.MetricsAddr, err)
		}
		stopMetrics, err := telemetry.ServeMetricsOn(lis)
		if err != nil {
			return err
		}
		defer stopMetrics()
		metricsURL = "http://" + lis.Addr().String() + "/metrics"
	}

	natsURL, natsAuth := cfg.NATSURL, cfg.NATSAuth
	// With the embedded server each service connects as its own user,
	// allowed only what pkg/subjects.Accesses says (as deploy/nats ships
	// for production), so every run checks those permissions.
	var servicePasswords map[string]string
	if natsURL == "" {
		host, port, _ := net.SplitHostPort(cfg.NATSAddr)
		p := -1
		if port != "0" {
			fmt.Sscanf(port, "%d", &p)
		}
		password, err := keyFile("", filepath.Join(cfg.DataDir, "nats.password"))
		if err != nil {
			return err
		}
		natsAuth = bus.Auth{User: NATSUser, Password: password}
		users := []natsembed.User{{Name: NATSUser, Password: password}}
		servicePasswords = map[string]string{}
		for _, a := range subjects.Accesses() {
			sum := sha256.Sum256([]byte(password + "/" + a.Service))
			pw := hex.EncodeToString(sum[:16])
			perms := a.Permissions()
			users = append(users, natsembed.User{Name: a.Service, Password: pw, Publish: perms.Publish, Subscribe: perms.Subscribe})
			servicePasswords[a.Service] = pw
		}
		ns, err := natsembed.Start(natsembed.Config{
			Host: host, Port: p, StoreDir: filepath.Join(cfg.DataDir, "nats"), SyncAlways: cfg.SyncAlways,
			Users: users,
		}, log)
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		natsURL = ns.ClientURL()
	}
	mongoURI := cfg.MongoURI
	if mongoURI == "" {
		// FerretDB logs every connection at info and the driver's
		// unsupported endSessions at warn; keep only its errors.
		flog := slog.New(errorsOnly{log.Handler()}).With("component", "ferretdb")
		fs, err := ferret.Start(cfg.MongoAddr, filepath.Join(cfg.DataDir, "ferretdb"), flog)
		if err != nil {
			return err
		}
		defer fs.Stop()
		mongoURI = fs.URI()
	}
	b, err := bus.ConnectAuth(natsURL, "devstack", natsAuth, log)
	if err != nil {
		return err
	}
	defer b.Close()
	buses := map[string]*bus.Bus{}
	serviceAuth := map[string]bus.Auth{}
	for service, pw := range servicePasswords {
		serviceAuth[service] = bus.Auth{User: service, Password: pw}
	}
	// Each service has its own connection: as its own user on the
	// embedded server, and with its own tracer provider when tracing is
	// given; otherwise it shares devstack's.
	for _, service := range ServiceNames {
		auth, own := serviceAuth[service]
		if !own && cfg.Tracing == nil {
			continue
		}
		if !own {
			auth = natsAuth
		}
		if !cfg.runs(service) {
			continue
		}
		var opts []bus.Option
		if cfg.Tracing != nil {
			opts = append(opts, bus.WithTracerProvider(cfg.Tracing(service)))
		}
		sb, err := bus.ConnectAuth(natsURL, service, auth, log, opts...)
		if err != nil {
			return fmt.Errorf("%s: %w", service, err)
		}
		defer sb.Close()
		buses[service] = sb
	}
	busOf := func(service string) *bus.Bus {
		if sb := buses[service]; sb != nil {
			return sb
		}
		return b
	}
	// One revocation list for every service in the process: a user's
	// tokens stop working everywhere as soon as config revokes them.
	listCtx, stopList := context.WithCancel(ctx)
	defer stopList()
	// A broker that has only just elected its leaders (a fresh cluster on
	// a loaded machine) may time out creating the bucket: try again for
	// a minute.
	waitCtx, stopWait := context.WithTimeout(ctx, time.Minute)
	revoked, err := revocation.OpenWaiting(waitCtx, listCtx, b.JS, 1, log)
	stopWait()
	if err != nil {
		return err
	}
	keys = keys.WithRevocations(revoked)
	mc, err := mongodb.Connect(ctx, mongoURI)
	if err != nil {
		return err
	}
	defer func() { _ = mc.Disconnect(context.Background()) }()

	l := map[string]net.Listener{}
	for name, addr := range cfg.addresses() {
		if !cfg.runs(name) {
			continue
		}
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			for _, o := range l {
				_ = o.Close()
			}
			return fmt.Errorf("%s cannot listen on %s: %w (is another Switchboard running?)", name, addr, err)
		}
		l[name] = lis
	}
	addr := func(name string) string {
		if lis := l[name]; lis != nil {
			return lis.Addr().String()
		}
		return cfg.addresses()[name]
	}
	chatURL := "http://" + addr("chat-handler")
	simURL := "http://" + addr("twilio-sim")

	configConn, err := grpcserver.Dial(addr("config"), keys, "devstack")
	if err != nil {
		return err
	}
	defer configConn.Close()
	distConn, err := grpcserver.Dial(addr("distribution"), keys, "devstack")
	if err != nil {
		return err
	}
	defer distConn.Close()

	db := func(name string) string { return cfg.DatabasePrefix + name }
	svcLog := func(name string) *slog.Logger { return log.With("service", name) }
	g, gctx := errgroup.WithContext(ctx)
	// run starts service if the configuration runs it.
	run := func(service string, fn func() error) {
		if cfg.runs(service) {
			g.Go(fn)
		}
	}
	run("config", func() error {
		return configsvc.Run(gctx, configsvc.Config{
			GRPCAddr: addr("config"), MongoURI: mongoURI, MongoDatabase: db("config"), NATSURL: natsURL,
			SecretKeys: secretHex, AuthKeys: authHex, BcryptCost: cfg.BcryptCost,
			PublicBaseURL: chatURL, TwilioBaseURL: simURL, // connector checks: chat-handler and the emulator
		}, configsvc.Deps{Listener: l["config"], Bus: busOf("config"), Mongo: mc, AuthKeys: keys}, svcLog(configsvc.ServiceName))
	})

	var demo *tenantspec.Spec
	if cfg.SeedDemo {
		demo = tenantspec.Demo()
		if cfg.DemoRONATimeout > 0 {
			for i := range demo.Services {
				demo.Services[i].Distribution.RONATimeout = tenantspec.Duration(cfg.DemoRONATimeout)
			}
		}
		if cfg.runs("config") {
			if err := seed(gctx, addr("config"), keys, demo, 30*time.Second, log); err != nil {
				return errors.Join(err, stop(g))
			}
			if deps.Seeded != nil {
				deps.Seeded()
			}
		} else {
			// config is another process, perhaps not started yet.
			g.Go(func() error {
				if err := seed(gctx, addr("config"), keys, demo, 5*time.Minute, log); err != nil {
					if gctx.Err() == nil {
						log.Error("demo tenant not applied", "config", addr("config"), "err", err)
					}
					return nil
				}
				if deps.Seeded != nil {
					deps.Seeded()
				}
				return nil
			})
		}
	}
	simCfg := twiliosim.Config{Accounts: simAccounts(demo, chatURL), ContractDir: cfg.ContractDir}
	run("twilio-sim", func() error {
		return twiliosim.Run(gctx, simCfg, twiliosim.Deps{Listener: l["twilio-sim"]}, svcLog("twilio-sim"))
	})
	streams := subjects.StreamOptions{}
	run("chat-handler", func() error {
		return chathandler.Run(gctx, chathandler.Config{
			HTTPAddr: addr("chat-handler"), NATSURL: natsURL, ConfigAddr: addr("config"), AuthKeys: authHex,
			MaxBodyBytes: 64 << 10, PublishTimeout: 3 * time.Second, Streams: streams,
			AllowHTTPMedia: true,   // the emulator serves media over plain http
			TwilioBaseURL:  simURL, // reconciliation reads the emulator's history
		}, chathandler.Deps{Listener: l["chat-handler"], Bus: busOf("chat-handler"), ConfigConn: configConn, AuthKeys: keys}, svcLog(chathandler.Name))
	})
	run("distribution", func() error {
		dc := distribution.Defaults() // one replica, holding every partition
		dc.GRPCAddr, dc.NATSURL, dc.MongoURI, dc.Database = addr("distribution"), natsURL, mongoURI, db("distribution")
		dc.ConfigAddr, dc.AuthKeys, dc.Streams = addr("config"), authHex, streams
		return distribution.Run(gctx, dc, distribution.Deps{GRPCListener: l["distribution"], Bus: busOf("distribution"), Mongo: mc, ConfigConn: configConn, AuthKeys: keys}, svcLog(distribution.Name))
	})
	run("sessions", func() error {
		sc := sessions.Defaults()
		sc.HTTPAddr, sc.NATSURL, sc.MongoURI, sc.Database = addr("sessions"), natsURL, mongoURI, db("sessions")
		sc.ConfigAddr, sc.DistributionAddr, sc.AuthKeys, sc.Streams = addr("config"), addr("distribution"), authHex, streams
		sc.OutboundAddr = addr("outbound-sender")
		// Agents' attachments are sent with MediaUrls here, the console's
		// address (Twilio would fetch them from its public address).
		sc.PublicURL = "http://" + addr("sessions") + "/"
		if cfg.StaleSweepEvery > 0 {
			sc.StaleSweepEvery = cfg.StaleSweepEvery
		}
		return sessions.Run(gctx, sc, sessions.Deps{Listener: l["sessions"], Bus: busOf("sessions"), Mongo: mc, ConfigConn: configConn, DistributionConn: distConn, AuthKeys: keys, Now: cfg.SessionsClock}, svcLog(sessions.Name))
	})
	run("workflow-runner", func() error {
		return workflowrunner.Run(gctx, workflowrunner.Config{
			NATSURL: natsURL, MongoURI: mongoURI, Database: db("workflow"), ConfigAddr: addr("config"), DistributionAddr: addr("distribution"),
			OutboundAddr: addr("outbound-sender"), AuthKeys: authHex, Streams: streams, WebAllowHosts: cfg.WebAllowHosts,
		}, workflowrunner.Deps{Bus: busOf("workflow-runner"), Mongo: mc, ConfigConn: configConn, DistributionConn: distConn, AuthKeys: keys}, svcLog(workflowrunner.Name))
	})
	run("outbound-sender", func() error {
		oc := outboundsender.Defaults()
		oc.NATSURL, oc.MongoURI, oc.Database, oc.ConfigAddr, oc.AuthKeys = natsURL, mongoURI, db("outbound"), addr("config"), authHex
		oc.TwilioBaseURL, oc.StatusCallbackBaseURL, oc.Streams = simURL, chatURL, streams
		oc.GRPCAddr = addr("outbound-sender")
		return outboundsender.Run(gctx, oc, outboundsender.Deps{Bus: busOf("outbound-sender"), Mongo: mc, ConfigConn: configConn, AuthKeys: keys, GRPCListener: l["outbound-sender"]}, svcLog(outboundsender.Name))
	})
	run("reporting", func() error {
		return reporting.Run(gctx, reporting.Config{
			GRPCAddr: addr("reporting"), NATSURL: natsURL, MongoURI: mongoURI, Database: db("reporting"), AuthKeys: authHex, Streams: streams,
		}, reporting.Deps{GRPCListener: l["reporting"], Bus: busOf("reporting"), Mongo: mc, AuthKeys: keys, ConfigConn: configConn}, svcLog(reporting.Name))
	})

	info := Info{
		ChatHandlerURL: chatURL, ConsoleURL: "http://" + addr("sessions") + "/", TwilioSimURL: simURL,
		ConfigAddr: addr("config"), DistributionAddr: addr("distribution"), ReportingAddr: addr("reporting"),
		OutboundAddr: addr("outbound-sender"), NATSURL: natsURL, NATSAuth: natsAuth, MongoURI: mongoURI, AuthKeys: keys, Demo: demo,
		Services: slices.Clone(cfg.Services), Addrs: map[string]string{}, ServiceAuth: serviceAuth,
		AuthKeysHex: authHex, SecretKeysHex: secretHex, DatabasePrefix: cfg.DatabasePrefix, MetricsURL: metricsURL,
	}
	if len(info.Services) == 0 {
		info.Services = slices.Clone(ServiceNames)
	}
	for _, name := range ServiceNames {
		info.Addrs[name] = addr(name)
	}
	if demo != nil {
		info.AdminToken, _ = keys.Mint(authn.Claims{
			Tenant: demo.Tenant.ID, Roles: []string{authn.RoleAdmin}, Name: "devstack admin",
			RegisteredClaims: jwt.RegisteredClaims{Subject: "devstack-admin"},
		}, 12*time.Hour)
	}
	g.Go(func() error {
		var urls []string
		for name, u := range map[string]string{"chat-handler": chatURL + "/healthz", "sessions": "http://" + addr("sessions") + "/healthz", "twilio-sim": simURL + "/sim/health"} {
			if cfg.runs(name) {
				urls = append(urls, u)
			}
		}
		if err := WaitHealthy(gctx, urls...); err != nil {
			return nil // shutting down before ready
		}
		if deps.Ready != nil {
			deps.Ready(info)
		}
		return nil
	})
	return g.Wait()
}

func stop(g *errgroup.Group) error {
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// keyFile returns given, or the key stored at path, generating it once.
func keyFile(given, path string) (string, error) {
	if given != "" {
		return given, nil
	}
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	h := hex.EncodeToString(k)
	if err := os.WriteFile(path, []byte(h+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return h, nil
}

// seed applies the demo tenant as a platform operator would with
// switchboardctl, retrying while the config service starts.
func seed(ctx context.Context, addr string, keys *authn.Keys, spec *tenantspec.Spec, patience time.Duration, log *slog.Logger) error {
	tok, err := keys.Mint(authn.Claims{Roles: []string{authn.RolePlatform}, Name: "devstack", RegisteredClaims: jwt.RegisteredClaims{Subject: "devstack"}}, time.Hour)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(patience)
	for {
		res, err := tenantspec.Apply(ctx, conn, spec)
		if err == nil {
			log.InfoContext(ctx, "demo tenant applied", "tenant", spec.Tenant.ID, "result", res.String())
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("seed demo tenant: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// simAccounts configures the emulator as the demo tenant's Twilio account
// would be set up in the Twilio console: the Conversations service posts to
// chat-handler's tenant callback URL with autocreation on the SMS number,
// and the WhatsApp sender posts to the Programmable Messaging inbound URL.
func simAccounts(demo *tenantspec.Spec, chatURL string) []twiliosim.Account {
	if demo == nil {
		return nil
	}
	base := chatURL + "/api/acs/chat-handler/tenants/" + demo.Tenant.ID
	var out []twiliosim.Account
	for _, c := range demo.Connectors {
		acct := twiliosim.Account{AccountSID: c.AccountSID, AuthToken: c.AuthToken, APIKeys: map[string]string{c.APIKeySID: c.APIKeySecret},
			ContentTemplates: DemoTemplates()}
		for _, e := range demo.MessagingEntries {
			if e.Connector != c.ID {
				continue
			}
			if e.ConversationsServiceSID != "" {
				acct.ConversationsServices = append(acct.ConversationsServices, twiliosim.ConversationsService{
					SID: e.ConversationsServiceSID, PostWebhookURL: base + "/twilio-callbacks",
				})
				acct.Numbers = append(acct.Numbers, twiliosim.PhoneNumber{Address: DemoSMSNumber, ConversationsServiceSID: e.ConversationsServiceSID})
			}
			for _, a := range e.BusinessAddresses {
				acct.Numbers = append(acct.Numbers, twiliosim.PhoneNumber{
					Address: a, SmsURL: base + "/messaging/inbound", SmsFallbackURL: base + "/messaging/fallback",
				})
			}
		}
		out = append(out, acct)
	}
	return out
}

// DemoTemplates are the WhatsApp templates of the demo account's Content
// API: what an agent may send when a chat's 24-hour window has closed. A
// variable's default that names a session parameter ("customer_name") is
// filled from the chat by the console.
func DemoTemplates() []twiliosim.ContentTemplate {
	return []twiliosim.ContentTemplate{
		{
			SID: DemoTemplateOrderUpdate, FriendlyName: "order_update", Language: "en",
			Variables: map[string]string{"1": "customer_name", "2": "DC-1000"},
			Types:     map[string]any{"twilio/text": map[string]any{"body": "Hi {{1}}, there is news about your order {{2}}. Reply here to continue."}},
		},
		{
			SID: "HX00000000000000000000000000de0002", FriendlyName: "follow_up", Language: "en",
			Variables: map[string]string{"1": "customer_name"},
			Types: map[string]any{"twilio/quick-reply": map[string]any{
				"body":    "Hello {{1}}, we could not finish our conversation. Shall we continue?",
				"actions": []any{map[string]any{"title": "Yes, continue", "id": "yes"}, map[string]any{"title": "Not now", "id": "no"}},
			}},
		},
	}
}

// DemoTemplateOrderUpdate is the SID of the demo account's order_update
// template.
const DemoTemplateOrderUpdate = "HX00000000000000000000000000de0001"

// DemoSMSNumber is the demo tenant's SMS number; it is bound to the SMS
// entry's Conversations service with autocreation, so it appears only in
// the emulator's configuration, not in the entry.
const DemoSMSNumber = "+12025550100"

// WaitHealthy polls each URL until it answers 200.
func WaitHealthy(ctx context.Context, urls ...string) error {
	c := &http.Client{Timeout: time.Second}
	for _, u := range urls {
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			res, err := c.Do(req)
			if err == nil {
				_ = res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(25 * time.Millisecond):
			}
		}
	}
	return nil
}

// errorsOnly passes on records of level error and above.
type errorsOnly struct{ slog.Handler }

func (w errorsOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && w.Handler.Enabled(ctx, l)
}

func (w errorsOnly) WithAttrs(a []slog.Attr) slog.Handler { return errorsOnly{w.Handler.WithAttrs(a)} }
func (w errorsOnly) WithGroup(n string) slog.Handler      { return errorsOnly{w.Handler.WithGroup(n)} }
