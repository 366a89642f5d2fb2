package app_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
	"github.com/switchboard-cc/switchboard/services/config/internal/secretbox"
	"github.com/switchboard-cc/switchboard/services/config/internal/store"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

type events struct {
	mu  sync.Mutex
	got []*configv1.ConfigChanged
}

func (e *events) Publish(_ context.Context, ev *configv1.ConfigChanged) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func keyring(t *testing.T, hexKeys string) *secretbox.Keyring {
	t.Helper()
	k, err := secretbox.Parse(hexKeys)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	key1 = strings.Repeat("11", 32)
	key2 = strings.Repeat("22", 32)
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// setup stores tenant t1 with root OU and connector c1.
func setup(t *testing.T, a *app.App) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.CreateTenant(ctx, &configv1.Tenant{Id: "t1", DisplayName: "T1", Modalities: &configv1.ModalitySettings{InstantMessaging: true, Twilio: true, Sms: true, Whatsapp: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateOrganizationUnit(ctx, &configv1.OrganizationUnit{Id: "root", TenantId: "t1", Name: "Root"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateProviderConnector(ctx, &configv1.ProviderConnector{
		Id: "c1", TenantId: "t1", Name: "C1", OrgUnitId: "root",
		AccountSid: "AC" + strings.Repeat("a", 32), ApiKeySid: "SK" + strings.Repeat("b", 32),
		ApiKeySecret: "the-api-key-secret-value", AuthToken: strings.Repeat("c", 32),
	}); err != nil {
		t.Fatal(err)
	}
}

func entry(id, isChar string) *configv1.MessagingEntry {
	return &configv1.MessagingEntry{Id: id, TenantId: "t1", Name: id, OrgUnitId: "root", ConnectorId: "c1",
		Channel: messagingv1.Channel_CHANNEL_SMS, ConversationsServiceSid: "IS" + strings.Repeat(isChar, 32)}
}

// A crash between deleting an entry and releasing its SID leaves a claim
// behind; it blocks others only for the grace period, then heals.
func TestStaleClaimsHeal(t *testing.T) {
	ctx := context.Background()
	tables := store.New(mongotest.Database(t))
	clk := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	a := app.New(tables, keyring(t, key1), &events{}, quiet(), app.WithClock(clk.Now), app.WithBcryptCost(4))
	setup(t, a)
	if _, err := a.CreateMessagingEntry(ctx, entry("e1", "1")); err != nil {
		t.Fatal(err)
	}
	// The "crash": the record goes, the claim stays.
	if err := tables.Entries.Delete(ctx, "t1", "e1", 0); err != nil {
		t.Fatal(err)
	}
	_, err := a.CreateMessagingEntry(ctx, entry("e2", "1"))
	if app.CodeOf(err) != app.CodeAlreadyExists {
		t.Fatalf("claiming a just-orphaned SID: %v, want AlreadyExists within the grace period", err)
	}
	clk.Advance(2 * time.Minute)
	if _, err := a.CreateMessagingEntry(ctx, entry("e2", "1")); err != nil {
		t.Fatalf("claiming an orphaned SID after the grace period: %v", err)
	}
	r, err := a.ResolveWebhook(ctx, "t1", "IS"+strings.Repeat("1", 32), "")
	if err != nil || r.GetEntry().GetId() != "e2" {
		t.Errorf("resolve healed SID = %q, %v; want e2", r.GetEntry().GetId(), err)
	}
	// A live claim is never taken over, however old.
	clk.Advance(time.Hour)
	if _, err := a.CreateMessagingEntry(ctx, entry("e3", "1")); app.CodeOf(err) != app.CodeAlreadyExists {
		t.Errorf("claiming a live SID: %v, want AlreadyExists", err)
	}
	// A claim whose entry no longer lists the SID does not resolve.
	if err := tables.Claims.Insert(ctx, app.Claim{Key: "sid:IS" + strings.Repeat("2", 32), Tenant: "t1", Owner: "e2", At: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ResolveWebhook(ctx, "t1", "IS"+strings.Repeat("2", 32), ""); app.CodeOf(err) != app.CodeNotFound {
		t.Errorf("resolve a claim the entry does not list: %v, want NotFound", err)
	}
}

// A new key goes in front, secrets still open, re-encryption moves them to
// the new key, and then the old key can go.
func TestSecretKeyRotation(t *testing.T) {
	ctx := context.Background()
	tables := store.New(mongotest.Database(t))
	old := app.New(tables, keyring(t, key1), &events{}, quiet(), app.WithBcryptCost(4))
	setup(t, old)
	if _, err := old.CreateMessagingEntry(ctx, entry("e1", "1")); err != nil {
		t.Fatal(err)
	}
	tn, err := old.GetTenant(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	tn.Secrets = map[string]string{"bot_signing_key": "the-bot-signing-key"}
	if _, err := old.UpdateTenant(ctx, tn, nil); err != nil {
		t.Fatal(err)
	}

	rotated := app.New(tables, keyring(t, key2+","+key1), &events{}, quiet(), app.WithBcryptCost(4))
	if c, err := rotated.GetSendingCredentials(ctx, "t1", "e1"); err != nil || c.GetApiKeySecret() != "the-api-key-secret-value" {
		t.Fatalf("rotated keyring opens old secrets: %v", err)
	}
	n, err := rotated.ReencryptConnectorSecrets(ctx, "")
	if err != nil || n.Connectors != 1 || n.ConnectorsChecked != 1 || n.Tenants != 1 || n.TenantsChecked != 1 {
		t.Fatalf("ReencryptConnectorSecrets = %+v, %v; want 1 of 1 connectors and tenants", n, err)
	}
	if n, _ := rotated.ReencryptConnectorSecrets(ctx, "t1"); n.Connectors != 0 || n.Tenants != 0 {
		t.Errorf("second re-encryption re-sealed %+v, want nothing", n)
	}
	c, err := rotated.GetProviderConnector(ctx, "t1", "c1")
	if err != nil || c.GetVersion() != 1 {
		t.Errorf("re-encryption changed the resource: version %d, %v", c.GetVersion(), err)
	}

	retired := app.New(tables, keyring(t, key2), &events{}, quiet(), app.WithBcryptCost(4))
	if c, err := retired.GetSendingCredentials(ctx, "t1", "e1"); err != nil || c.GetApiKeySecret() != "the-api-key-secret-value" {
		t.Errorf("after retiring the old key: %v", err)
	}
	if _, err := old.GetSendingCredentials(ctx, "t1", "e1"); err == nil {
		t.Errorf("the retired key alone still opens re-sealed secrets")
	}
	if v, err := retired.GetTenantSecret(ctx, "t1", "bot_signing_key"); err != nil || v != "the-bot-signing-key" {
		t.Errorf("tenant secret after retiring the old key: %v", err)
	}
	if _, err := old.GetTenantSecret(ctx, "t1", "bot_signing_key"); err == nil {
		t.Errorf("the retired key alone still opens the re-sealed tenant secret")
	}
}

// Every change produces one event with the record's new version; a no-op
// update produces none.
func TestEventsPerChange(t *testing.T) {
	ctx := context.Background()
	ev := &events{}
	a := app.New(store.New(mongotest.Database(t)), keyring(t, key1), ev, quiet(), app.WithBcryptCost(4))
	setup(t, a)
	c, err := a.GetProviderConnector(ctx, "t1", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateProviderConnector(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	c.Name = "Renamed"
	if _, err := a.UpdateProviderConnector(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ev.got {
		got = append(got, e.GetKind().String()+" "+e.GetId()+" "+e.GetChange().String())
	}
	want := []string{
		"ENTITY_KIND_TENANT t1 CHANGE_TYPE_CREATED",
		"ENTITY_KIND_ORGANIZATION_UNIT root CHANGE_TYPE_CREATED",
		"ENTITY_KIND_PROVIDER_CONNECTOR c1 CHANGE_TYPE_CREATED",
		"ENTITY_KIND_PROVIDER_CONNECTOR c1 CHANGE_TYPE_UPDATED",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if last := ev.got[len(ev.got)-1]; last.GetVersion() != 2 {
		t.Errorf("update event version = %d, want 2", last.GetVersion())
	}
}

// A tenant secret's change is a tenant update with its event; sending the
// same value again changes nothing and announces nothing.
func TestTenantSecretEvents(t *testing.T) {
	ctx := context.Background()
	ev := &events{}
	a := app.New(store.New(mongotest.Database(t)), keyring(t, key1), ev, quiet(), app.WithBcryptCost(4))
	setup(t, a)
	before := len(ev.got)
	tn, err := a.GetTenant(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	tn.Secrets = map[string]string{"crm_api_token": "crm-token-value-0123"}
	up, err := a.UpdateTenant(ctx, tn, nil)
	if err != nil {
		t.Fatal(err)
	}
	up.Secrets = map[string]string{"crm_api_token": "crm-token-value-0123"}
	if same, err := a.UpdateTenant(ctx, up, nil); err != nil || same.GetVersion() != up.GetVersion() {
		t.Errorf("the same secret again: version %d, %v; want %d unchanged", same.GetVersion(), err, up.GetVersion())
	}
	got := ev.got[before:]
	if len(got) != 1 || got[0].GetKind() != configv1.EntityKind_ENTITY_KIND_TENANT || got[0].GetChange() != configv1.ChangeType_CHANGE_TYPE_UPDATED || got[0].GetVersion() != up.GetVersion() {
		t.Errorf("events after setting a secret: %v, want one tenant update at version %d", got, up.GetVersion())
	}
}
