package templates_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/templates"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// Two tenants, each with its own Twilio account behind its entry.
var accounts = map[string]struct{ sid, key, secret string }{
	"acme":   {"AC000000000000000000000000000000a1", "SK000000000000000000000000000000a1", "acmeSecret01"},
	"globex": {"AC000000000000000000000000000000b2", "SK000000000000000000000000000000b2", "globexSecret02"},
}

// creds answers "wa" for each tenant with its own account; anything else
// is NOT_FOUND, as the config service answers.
type creds struct{}

func (creds) SendingCredentials(_ context.Context, tenant, entry string) (*configv1.GetSendingCredentialsResponse, error) {
	a, ok := accounts[tenant]
	if !ok || entry != "wa" {
		return nil, status.Error(codes.NotFound, "no such entry")
	}
	return &configv1.GetSendingCredentialsResponse{AccountSid: a.sid, ApiKeySid: a.key, ApiKeySecret: a.secret, Region: "us1",
		Entry: &configv1.MessagingEntry{Id: entry, TenantId: tenant, ConnectorId: "main"}}, nil
}

// counter counts the Content API calls that leave for Twilio.
type counter struct {
	base  http.RoundTripper
	calls atomic.Int32
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/v1/Content" {
		c.calls.Add(1)
	}
	return c.base.RoundTrip(r)
}

func template(i int, body string) twiliosim.ContentTemplate {
	return twiliosim.ContentTemplate{
		SID: fmt.Sprintf("HX%032x", i), FriendlyName: fmt.Sprintf("t%d", i), Language: "en",
		Variables: map[string]string{"1": "customer_name"},
		Types:     map[string]any{"twilio/text": map[string]any{"body": body}},
	}
}

func startSim(t *testing.T, acme, globex []twiliosim.ContentTemplate) (*simclient.Client, string) {
	t.Helper()
	t.Setenv("TWILIO_EDGE", "")
	t.Setenv("TWILIO_REGION", "")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accts []twiliosim.Account
	for tenant, list := range map[string][]twiliosim.ContentTemplate{"acme": acme, "globex": globex} {
		a := accounts[tenant]
		accts = append(accts, twiliosim.Account{AccountSID: a.sid, AuthToken: "token" + tenant, APIKeys: map[string]string{a.key: a.secret}, ContentTemplates: list})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- twiliosim.Run(ctx, twiliosim.Config{Accounts: accts}, twiliosim.Deps{Listener: lis}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + lis.Addr().String()
	sim := simclient.New(base, nil)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := sim.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return sim, base
}

// A connector's list is read from Twilio's pages once, then served from
// memory until the TTL has passed; each tenant gets its own account's
// templates; an unknown entry is ErrNoEntry; a refused key is ErrTwilio.
func TestCatalog(t *testing.T) {
	var acme []twiliosim.ContentTemplate
	for i := 1; i <= 130; i++ { // two pages of 100
		acme = append(acme, template(i, fmt.Sprintf("Hi {{1}}, news about order {{2}} (%d)", i)))
	}
	sim, base := startSim(t, acme, []twiliosim.ContentTemplate{template(900, "Globex says hi to {{1}}")})
	target, _ := url.Parse(base)
	cnt := &counter{base: twilioapi.NewTransport()}
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cat := templates.New(creds{}, twilioapi.New(twilioapi.Options{BaseURL: target, Transport: cnt}), time.Minute, clock)
	ctx := context.Background()

	list, err := cat.List(ctx, "acme", "wa")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 130 || cnt.calls.Load() != 2 {
		t.Fatalf("listed %d templates in %d calls, want 130 in 2 pages", len(list), cnt.calls.Load())
	}
	first := list[0]
	if first.GetSid() != fmt.Sprintf("HX%032x", 1) || first.GetContentType() != "twilio/text" || !strings.HasPrefix(first.GetBody(), "Hi {{1}}") {
		t.Errorf("first template = %v", first)
	}
	if v := first.GetVariables(); len(v) != 2 || v[0].GetName() != "1" || v[0].GetDefaultValue() != "customer_name" || v[1].GetName() != "2" || v[1].GetDefaultValue() != "" {
		t.Errorf("variables = %v, want 1=customer_name and 2 without a default", v)
	}

	// Served from memory: no call, even for a template added meanwhile.
	a := accounts["acme"]
	if err := sim.PutAccount(ctx, twiliosim.Account{AccountSID: a.sid, AuthToken: "tokenacme", APIKeys: map[string]string{a.key: a.secret},
		ContentTemplates: append(acme, template(131, "new"))}); err != nil {
		t.Fatal(err)
	}
	if list, err = cat.List(ctx, "acme", "wa"); err != nil || len(list) != 130 || cnt.calls.Load() != 2 {
		t.Errorf("second list: %d templates, %d calls (%v), want the cached 130 and no call", len(list), cnt.calls.Load(), err)
	}

	// The other tenant: its own account, its own template.
	g, err := cat.List(ctx, "globex", "wa")
	if err != nil || len(g) != 1 || g[0].GetSid() != fmt.Sprintf("HX%032x", 900) {
		t.Errorf("globex lists %v (%v), want only its own template", g, err)
	}

	// After the TTL the list is read again.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if list, err = cat.List(ctx, "acme", "wa"); err != nil || len(list) != 131 {
		t.Errorf("after the TTL: %d templates (%v), want 131", len(list), err)
	}

	if _, err := cat.List(ctx, "acme", "nope"); !errors.Is(err, templates.ErrNoEntry) {
		t.Errorf("unknown entry: %v, want ErrNoEntry", err)
	}
	if _, err := cat.List(ctx, "initech", "wa"); !errors.Is(err, templates.ErrNoEntry) {
		t.Errorf("unknown tenant: %v, want ErrNoEntry", err)
	}
	accounts["revoked"] = struct{ sid, key, secret string }{a.sid, a.key, "wrongSecret"}
	t.Cleanup(func() { delete(accounts, "revoked") })
	if _, err := cat.List(ctx, "revoked", "wa"); !errors.Is(err, templates.ErrTwilio) || !strings.Contains(err.Error(), "20003") {
		t.Errorf("refused credentials: %v, want ErrTwilio with 20003", err)
	}
}

// Templates without a body WhatsApp delivers (a location pin, an
// authentication code) are left out; a quick reply shows its buttons; a
// placeholder used twice is one variable.
func TestFromContents(t *testing.T) {
	got := templates.FromContents([]twilioapi.Content{
		{SID: "HXa", Types: map[string]any{"twilio/location": map[string]any{"latitude": 1.0, "longitude": 2.0}}},
		{SID: "HXb", Types: map[string]any{"whatsapp/authentication": map[string]any{"actions": []any{}}}},
		{SID: "HXc", Variables: map[string]any{"name": "Ann"}, Types: map[string]any{
			"twilio/quick-reply": map[string]any{"body": "{{name}}, again {{ name }}? {{2}}", "actions": []any{map[string]any{"title": "Yes"}, map[string]any{"title": "No"}}},
			"twilio/location":    map[string]any{"latitude": 1.0, "longitude": 2.0},
		}},
	})
	if len(got) != 1 || got[0].GetSid() != "HXc" {
		t.Fatalf("FromContents kept %v, want only HXc", got)
	}
	c := got[0]
	if c.GetContentType() != "twilio/quick-reply" || strings.Join(c.GetActions(), ",") != "Yes,No" || strings.Join(c.GetTypes(), ",") != "twilio/location,twilio/quick-reply" {
		t.Errorf("template = %v", c)
	}
	if v := c.GetVariables(); len(v) != 2 || v[0].GetName() != "name" || v[0].GetDefaultValue() != "Ann" || v[1].GetName() != "2" {
		t.Errorf("variables = %v, want name=Ann then 2", v)
	}
}
