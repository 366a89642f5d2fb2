package configcache_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/configcache"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	configsvc "github.com/switchboard-cc/switchboard/services/config"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

type world struct {
	admin  *grpc.ClientConn
	lookup *grpc.ClientConn
	calls  *atomic.Int64
	bus    *bus.Bus
}

// start runs the config service with the demo tenant, and returns a
// service connection that counts lookup calls.
func start(t *testing.T) *world {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db := mongotest.Database(t)
	ns := natstest.Start(t)
	b, err := bus.Connect(ns.ClientURL(), "configcache-test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	keys, err := authn.ParseKeys(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- configsvc.Run(ctx, configsvc.Config{MongoDatabase: db.Name(), SecretKeys: strings.Repeat("cd", 32), BcryptCost: 4},
			configsvc.Deps{Listener: lis, Bus: b, Mongo: db.Client(), AuthKeys: keys}, log)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("config service: %v", err)
		}
	})
	tok, err := keys.Mint(authn.Claims{Roles: []string{authn.RolePlatform}, RegisteredClaims: jwt.RegisteredClaims{Subject: "test"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	calls := &atomic.Int64{}
	svcTok, err := authn.NewServiceTokenSource(keys, "test").Token()
	if err != nil {
		t.Fatal(err)
	}
	lookup, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(grpcserver.BearerToken(svcTok)),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			calls.Add(1)
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lookup.Close() })

	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := tenantspec.Apply(ctx, admin, tenantspec.Demo())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("apply demo: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &world{admin: admin, lookup: lookup, calls: calls, bus: b}
}

func startCache(t *testing.T, w *world) *configcache.Cache {
	t.Helper()
	c := configcache.New(configv1.NewLookupServiceClient(w.lookup), w.bus, slog.New(slog.NewTextHandler(io.Discard, nil)),
		configcache.Options{Tenants: configv1.NewTenantServiceClient(w.lookup), Services: configv1.NewServiceServiceClient(w.lookup)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !c.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("cache not following changes after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const demoSID = "IS0123456789abcdef0123456789abcdef"

func TestServesFromMemoryAndFollowsChanges(t *testing.T) {
	w := start(t)
	c := startCache(t, w)
	ctx := context.Background()

	r, err := c.ResolveWebhook(ctx, "demo", demoSID, "")
	if err != nil || r.GetService().GetName() != "Customer Support" {
		t.Fatalf("first resolve = %q, %v", r.GetService().GetName(), err)
	}
	before := w.calls.Load()
	for range 50 {
		if _, err := c.ResolveWebhook(ctx, "demo", demoSID, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.calls.Load() - before; n != 0 {
		t.Errorf("50 cached resolves made %d calls, want 0", n)
	}

	// Rename the service: the cache sees it within a second.
	svcs := configv1.NewServiceServiceClient(w.admin)
	s, err := svcs.GetService(ctx, &configv1.GetServiceRequest{TenantId: "demo", Id: "support"})
	if err != nil {
		t.Fatal(err)
	}
	s.GetService().Name = "Customer Care"
	if _, err := svcs.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: s.GetService()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "renamed service seen by the cache", func() bool {
		r, err := c.ResolveWebhook(ctx, "demo", demoSID, "")
		return err == nil && r.GetService().GetName() == "Customer Care"
	})

	// A new API key secret reaches the sender within a second too.
	cred, err := c.SendingCredentials(ctx, "demo", "whatsapp-front-desk")
	if err != nil || cred.GetApiKeySecret() != "demoSecret0123456789abcdefABCDEF" {
		t.Fatalf("sending credentials: %v", err)
	}
	ch := configv1.NewChannelServiceClient(w.admin)
	conn, err := ch.GetProviderConnector(ctx, &configv1.GetProviderConnectorRequest{TenantId: "demo", Id: "twilio-main"})
	if err != nil {
		t.Fatal(err)
	}
	conn.GetProviderConnector().ApiKeySecret = "rotatedSecret0123456789abcdefXYZ"
	if _, err := ch.UpdateProviderConnector(ctx, &configv1.UpdateProviderConnectorRequest{ProviderConnector: conn.GetProviderConnector()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "rotated secret seen by the cache", func() bool {
		cred, err := c.SendingCredentials(ctx, "demo", "whatsapp-front-desk")
		return err == nil && cred.GetApiKeySecret() == "rotatedSecret0123456789abcdefXYZ"
	})
}

// The tenant (its time zone, say) is read once and again after it changes.
func TestTenantFollowsChanges(t *testing.T) {
	w := start(t)
	c := startCache(t, w)
	ctx := context.Background()

	ten, err := c.Tenant(ctx, "demo")
	if err != nil || ten.GetTimeZone() != "Europe/Zurich" {
		t.Fatalf("demo tenant: zone %q, %v; want Europe/Zurich", ten.GetTimeZone(), err)
	}
	before := w.calls.Load()
	for range 20 {
		if _, err := c.Tenant(ctx, "demo"); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.calls.Load() - before; n != 0 {
		t.Errorf("20 cached tenant reads made %d calls, want 0", n)
	}
	tenants := configv1.NewTenantServiceClient(w.admin)
	cur, err := tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	cur.GetTenant().TimeZone = "America/New_York"
	if _, err := tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: cur.GetTenant()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the new zone seen by the cache", func() bool {
		ten, err := c.Tenant(ctx, "demo")
		return err == nil && ten.GetTimeZone() == "America/New_York"
	})
}

// A service is read once and then served from memory until config says
// the tenant changed: a workflow entering it sees a new greeting at once.
func TestServiceFollowsChanges(t *testing.T) {
	w := start(t)
	c := startCache(t, w)
	ctx := context.Background()
	svc, err := c.Service(ctx, "demo", "support")
	if err != nil || svc.GetName() != "Customer Support" {
		t.Fatalf("demo's support service: %v, %v", svc, err)
	}
	before := w.calls.Load()
	for range 20 {
		if _, err := c.Service(ctx, "demo", "support"); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.calls.Load() - before; n != 0 {
		t.Errorf("20 cached service reads made %d calls, want 0", n)
	}
	if _, err := c.Service(ctx, "demo", "nope"); status.Code(err) != codes.NotFound {
		t.Errorf("a service that does not exist: %v, want NotFound", err)
	}
	services := configv1.NewServiceServiceClient(w.admin)
	cur, err := services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "demo", Id: "support"})
	if err != nil {
		t.Fatal(err)
	}
	cur.GetService().Greeting = "Hello from the cache test"
	if _, err := services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: cur.GetService()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the new greeting seen by the cache", func() bool {
		svc, err := c.Service(ctx, "demo", "support")
		return err == nil && svc.GetGreeting() == "Hello from the cache test"
	})
}

func TestNegativeAnswersAreCachedAndCleared(t *testing.T) {
	w := start(t)
	c := startCache(t, w)
	ctx := context.Background()
	const newSID = "IS99999999999999999999999999999999"

	_, err := c.ResolveWebhook(ctx, "demo", newSID, "")
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown SID: %v, want NotFound", err)
	}
	before := w.calls.Load()
	for range 20 {
		if _, err := c.ResolveWebhook(ctx, "demo", newSID, ""); status.Code(err) != codes.NotFound {
			t.Fatalf("cached unknown SID: %v", err)
		}
	}
	if n := w.calls.Load() - before; n != 0 {
		t.Errorf("20 cached NotFound answers made %d calls, want 0", n)
	}
	// Creating the entry clears the NotFound at once, not after its TTL.
	_, err = configv1.NewChannelServiceClient(w.admin).CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: &configv1.MessagingEntry{
		Id: "sms-new", TenantId: "demo", Name: "New", OrgUnitId: "root", ConnectorId: "twilio-main",
		Channel: messagingv1.Channel_CHANNEL_SMS, ConversationsServiceSid: newSID,
	}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "new entry resolvable through the cache", func() bool {
		r, err := c.ResolveWebhook(ctx, "demo", newSID, "")
		return err == nil && r.GetEntry().GetId() == "sms-new"
	})
}

func TestBypassedUntilFollowing(t *testing.T) {
	w := start(t)
	c := configcache.New(configv1.NewLookupServiceClient(w.lookup), w.bus, slog.New(slog.NewTextHandler(io.Discard, nil)), configcache.Options{})
	ctx := context.Background()
	before := w.calls.Load()
	for range 3 {
		if _, err := c.ResolveWebhook(ctx, "demo", demoSID, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.calls.Load() - before; n != 3 {
		t.Errorf("calls before Run = %d, want 3 (no caching without change events)", n)
	}
}
