package configsvc_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/chatwebhook"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/ctl"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// TestCheckProviderConnector runs the connector check against the real
// pieces: config, chat-handler and the Twilio emulator in strict contract
// mode on loopback ports, the demo tenant applied as `make run` applies
// it, embedded NATS and FerretDB.
func TestCheckProviderConnector(t *testing.T) {
	if testing.Short() {
		t.Skip("starts config, chat-handler and the emulator: skipped under -short")
	}
	t.Setenv("TWILIO_REGION", "")
	t.Setenv("TWILIO_EDGE", "")
	oai, _ := filepath.Abs(filepath.Join("..", "..", "..", "shared", "twilio-oai"))
	if _, err := os.Stat(filepath.Join(oai, "twilio_api_v2010.json")); err != nil {
		t.Skipf("Twilio's OpenAPI documents are not at %s: the check is tested against the emulator in contract mode", oai)
	}
	info := devstacktest.Start(t, devstacktest.Only("config", "twilio-sim", "chat-handler"), func(c *devstack.Config) { c.ContractDir = oai })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sim := simclient.New(info.TwilioSimURL, nil)
	demo := info.Demo
	conn := demo.Connectors[0]
	admin := configv1.NewChannelServiceClient(dialAs(t, info, "demo", authn.RoleAdmin))
	// check checks connector id and that none of its secrets is in the
	// answer. (The demo's Auth Token is a substring of its Account SID, so
	// only its API key secret can be looked for.)
	check := func(t *testing.T, id string, secrets ...string) *configv1.CheckProviderConnectorResponse {
		t.Helper()
		res, err := admin.CheckProviderConnector(ctx, &configv1.CheckProviderConnectorRequest{TenantId: "demo", Id: id})
		if err != nil {
			t.Fatalf("CheckProviderConnector(%s): %v", id, err)
		}
		b, _ := protojson.Marshal(res)
		for _, secret := range secrets {
			if strings.Contains(string(b), secret) {
				t.Fatalf("the answer holds a connector secret: %s", b)
			}
		}
		return res
	}
	find := func(t *testing.T, res *configv1.CheckProviderConnectorResponse, check, subject string) *configv1.ConnectorFinding {
		t.Helper()
		for _, f := range res.GetFindings() {
			if f.GetCheck() == check && strings.Contains(f.GetSubject(), subject) {
				return f
			}
		}
		t.Fatalf("no %s finding for %q among %v", check, subject, res.GetFindings())
		return nil
	}
	// changeAccount edits the demo's emulated Twilio account until the
	// subtest ends, as someone in the Twilio console would.
	changeAccount := func(t *testing.T, edit func(*simclient.Account)) {
		t.Helper()
		a, err := sim.GetAccount(ctx, conn.AccountSID)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := sim.PutAccount(context.Background(), a); err != nil {
				t.Errorf("restore the emulated account: %v", err)
			}
		})
		changed := a
		changed.Numbers = slices.Clone(a.Numbers)
		edit(&changed)
		if err := sim.PutAccount(ctx, changed); err != nil {
			t.Fatal(err)
		}
	}
	inbound := chatwebhook.TenantURL(info.ChatHandlerURL, "demo", chatwebhook.PathInbound)
	// ctl runs `switchboardctl connector check twilio-main --tenant demo`
	// as a demo admin.
	ctlCheck := func(t *testing.T) (string, int) {
		t.Helper()
		var out, errb bytes.Buffer
		code := ctl.Main(ctx, []string{"connector", "check", conn.ID, "--tenant", "demo"}, ctl.IO{
			Stdout: &out, Stderr: &errb,
			LookupEnv: func(k string) (string, bool) {
				v, ok := map[string]string{ctl.EnvAddr: info.ConfigAddr, ctl.EnvToken: info.AdminToken}[k]
				return v, ok
			},
		})
		return out.String() + errb.String(), code
	}

	t.Run("the demo tenant passes, and its self-tests publish nothing", func(t *testing.T) {
		before := chatMessages(t, info)
		res := check(t, conn.ID, conn.APIKeySecret)
		for _, f := range res.GetFindings() {
			if !f.GetOk() {
				t.Errorf("%s %s: %s (fix: %s)", f.GetCheck(), f.GetSubject(), f.GetProblem(), f.GetFix())
			}
		}
		if !res.GetOk() {
			t.Fatalf("check of the demo connector not ok")
		}
		var checks []string
		for _, f := range res.GetFindings() {
			checks = append(checks, f.GetCheck()+" "+f.GetSubject())
		}
		for _, want := range []string{
			"api_key connector twilio-main", "auth_token connector twilio-main",
			"conversations_webhook entry sms-front-desk: Conversations service " + demo.MessagingEntries[0].ConversationsServiceSID,
			"number_webhook entry whatsapp-front-desk: whatsapp:+12025550101", "number_webhook entry sms-menu: +12025550102",
			"self_test entry sms-front-desk: Conversations service " + demo.MessagingEntries[0].ConversationsServiceSID,
			"self_test entry whatsapp-front-desk: whatsapp:+12025550101", "self_test entry sms-menu: +12025550102",
		} {
			if !slices.Contains(checks, want) {
				t.Errorf("no finding %q among %q", want, checks)
			}
		}
		if f := find(t, res, "api_key", "twilio-main"); !strings.Contains(f.GetDetail(), "api.twilio.com") {
			t.Errorf("api_key detail %q does not name the host", f.GetDetail())
		}
		if out, code := ctlCheck(t); code != 0 || !strings.Contains(out, "8 checks, 0 failed") || !strings.Contains(out, "ok    self_test") {
			t.Errorf("switchboardctl connector check: exit %d\n%s", code, out)
		}
		if after := chatMessages(t, info); after != before {
			t.Errorf("CHAT holds %d messages after the self-tests, %d before: a self-test was taken as a customer's message", after, before)
		}
		if v, err := sim.ContractViolations(ctx); err != nil || len(v) != 0 {
			t.Errorf("contract violations: %+v (%v)", v, err)
		}
	})

	t.Run("a number whose webhook points elsewhere is named with the fix", func(t *testing.T) {
		changeAccount(t, func(a *simclient.Account) {
			for i := range a.Numbers {
				if a.Numbers[i].Address == "whatsapp:+12025550101" {
					a.Numbers[i].SmsURL = "https://old-crm.example.com/twilio/inbound"
				}
			}
		})
		res := check(t, conn.ID, conn.APIKeySecret)
		if res.GetOk() {
			t.Fatal("check ok with a number pointing elsewhere")
		}
		f := find(t, res, "number_webhook", "whatsapp:+12025550101")
		if f.GetOk() || !strings.Contains(f.GetProblem(), "https://old-crm.example.com/twilio/inbound") || !strings.Contains(f.GetFix(), inbound) {
			t.Errorf("finding = %+v, want the wrong URL named and %s as the fix", f, inbound)
		}
		if other := find(t, res, "number_webhook", "+12025550102"); !other.GetOk() {
			t.Errorf("the other number failed too: %+v", other)
		}
		out, code := ctlCheck(t)
		if code != 1 || !strings.Contains(out, "FAIL  number_webhook         entry whatsapp-front-desk: whatsapp:+12025550101") ||
			!strings.Contains(out, "fix:") || !strings.Contains(out, "1 of 8 checks of connector twilio-main failed") {
			t.Errorf("switchboardctl connector check: exit %d, want 1 naming the number and the fix\n%s", code, out)
		}
	})

	t.Run("credentials Twilio refuses are named", func(t *testing.T) {
		changeAccount(t, func(a *simclient.Account) {
			a.APIKeys = map[string]string{conn.APIKeySID: "rotatedAway0123456789"}
			a.AuthToken = "ffffffffffffffffffffffffffffffff"
		})
		res := check(t, conn.ID, conn.APIKeySecret)
		if res.GetOk() {
			t.Fatal("check ok with refused credentials")
		}
		key := find(t, res, "api_key", "twilio-main")
		if key.GetOk() || !strings.Contains(key.GetProblem(), "refused API key "+conn.APIKeySID) || !strings.Contains(key.GetFix(), "api_key_secret") {
			t.Errorf("api_key finding = %+v", key)
		}
		tok := find(t, res, "auth_token", "twilio-main")
		if tok.GetOk() || !strings.Contains(tok.GetProblem(), "Auth Token") || !strings.Contains(tok.GetFix(), "auth_token") {
			t.Errorf("auth_token finding = %+v", tok)
		}
	})

	t.Run("regional connectors call their region's hosts", func(t *testing.T) {
		for _, r := range []struct{ region, edge, acct, number string }{
			{"ie1", "dublin", "AC" + strings.Repeat("1e", 16), "whatsapp:+353861234567"},
			{"au1", "sydney", "AC" + strings.Repeat("a0", 16), "whatsapp:+61412345678"},
		} {
			t.Run(r.region, func(t *testing.T) {
				id := "twilio-" + r.region
				// Each account its own key: an API key SID names one account.
				keySID, keySecret, token := "SK"+r.acct[2:], "regionalSecret0123456789", strings.Repeat("7", 32)
				if err := sim.PutAccount(ctx, simclient.Account{AccountSID: r.acct, AuthToken: token, APIKeys: map[string]string{keySID: keySecret},
					Region: r.region, Numbers: []simclient.PhoneNumber{{Address: r.number, SmsURL: inbound}}}); err != nil {
					t.Fatal(err)
				}
				platform := configv1.NewChannelServiceClient(dialAs(t, info, "", authn.RolePlatform))
				if _, err := platform.CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: &configv1.ProviderConnector{
					Id: id, TenantId: "demo", Name: "Twilio " + r.region, OrgUnitId: "root", AccountSid: r.acct,
					ApiKeySid: keySID, ApiKeySecret: keySecret, AuthToken: token, Region: r.region,
				}}); err != nil {
					t.Fatal(err)
				}
				if _, err := platform.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: &configv1.MessagingEntry{
					Id: "wa-" + r.region, TenantId: "demo", Name: "WhatsApp " + r.region, OrgUnitId: "root", ConnectorId: id,
					Channel: whatsapp, BusinessAddresses: []string{r.number},
				}}); err != nil {
					t.Fatal(err)
				}
				if err := sim.ClearContract(ctx); err != nil {
					t.Fatal(err)
				}
				res := check(t, id, keySecret, token)
				for _, c := range []string{"api_key", "auth_token", "number_webhook"} {
					if f := find(t, res, c, ""); !f.GetOk() {
						t.Errorf("%s: %s", c, f.GetProblem())
					}
				}
				// The entry is on no service yet: chat-handler refuses its
				// customers' messages, and the self-test says so.
				st := find(t, res, "self_test", r.number)
				if st.GetOk() || !strings.Contains(st.GetFix(), "assign the entry to a service") {
					t.Errorf("self_test = %+v, want the unassigned entry named", st)
				}
				ex, err := sim.ContractRequests(ctx)
				if err != nil {
					t.Fatal(err)
				}
				wantHost := "api." + r.edge + "." + r.region + ".twilio.com"
				if len(ex) < 3 {
					t.Fatalf("%d Twilio calls recorded, want the account twice and the number", len(ex))
				}
				for _, x := range ex {
					if x.OriginalHost != wantHost || x.Status != 200 {
						t.Errorf("%s %s went to %s (%d), want %s (200)", x.Method, x.Path, x.OriginalHost, x.Status, wantHost)
					}
				}
				if v, err := sim.ContractViolations(ctx); err != nil || len(v) != 0 {
					t.Errorf("contract violations: %+v (%v)", v, err)
				}
			})
		}
	})

	t.Run("only admins of the tenant may check", func(t *testing.T) {
		for _, c := range []struct {
			tenant, role string
			code         codes.Code
			says         string
		}{
			{"demo", authn.RoleAgent, codes.PermissionDenied, "admin"},
			{"demo", authn.RoleSupervisor, codes.PermissionDenied, "admin"},
			{"acme", authn.RoleAdmin, codes.PermissionDenied, "tenant \"demo\""},
		} {
			cl := configv1.NewChannelServiceClient(dialAs(t, info, c.tenant, c.role))
			_, err := cl.CheckProviderConnector(ctx, &configv1.CheckProviderConnectorRequest{TenantId: "demo", Id: conn.ID})
			if st := status.Convert(err); st.Code() != c.code || !strings.Contains(st.Message(), c.says) {
				t.Errorf("%s of %s: %v %q, want %v naming %q", c.role, c.tenant, st.Code(), st.Message(), c.code, c.says)
			}
		}
		_, err := admin.CheckProviderConnector(ctx, &configv1.CheckProviderConnectorRequest{TenantId: "demo", Id: "nope"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("unknown connector: %v, want NotFound", err)
		}
	})
}

// dialAs connects to config with a token of tenant and role.
func dialAs(t *testing.T, info devstack.Info, tenant, role string) grpc.ClientConnInterface {
	t.Helper()
	tok, err := info.AuthKeys.Mint(authn.Claims{Tenant: tenant, Roles: []string{role},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "test:" + role + "@" + tenant}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(info.ConfigAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// chatMessages is how many messages the CHAT stream holds.
func chatMessages(t *testing.T, info devstack.Info) uint64 {
	t.Helper()
	b, err := bus.ConnectAuth(info.NATSURL, "connector-check-test", info.NATSAuth, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.JS.Stream(ctx, subjects.StreamChat)
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Info(ctx, jetstream.WithSubjectFilter("chat.>"))
	if err != nil {
		t.Fatal(err)
	}
	return si.State.Msgs
}
