package devstack_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// reportingAs is a reporting client presenting tok.
func reportingAs(t *testing.T, info devstack.Info, tok string) reportingv1.ReportingServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(info.ReportingAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return reportingv1.NewReportingServiceClient(conn)
}

// The demo tenant's analyst signs in like anyone else: the token carries
// the analyst role, reporting serves it, the agent websocket refuses it.
// An agent's token stays refused by reporting; a supervisor's is served.
func TestAnalystSignsInForReports(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	// An agent's socket with its snapshot: every service is up (a stack
	// stopped while distribution still starts reports an error).
	agent(t, ctx, info, "alice@demo.example")

	ana, err := agentclient.SignIn(ctx, info.ConsoleURL, "demo", "ana@demo.example", "demo")
	if err != nil {
		t.Fatalf("analyst sign-in: %v", err)
	}
	if !slices.Equal(ana.Roles, []string{authn.RoleAnalyst}) || ana.User.ID != "ana" || ana.ExpiresAt.IsZero() {
		t.Errorf("analyst sign-in = roles %v, user %+v, expires %v; want [analyst], ana, a time", ana.Roles, ana.User, ana.ExpiresAt)
	}
	claims, err := info.AuthKeys.Verify(ana.Token)
	if err != nil || !claims.Has(authn.RoleAnalyst) || claims.Tenant != "demo" || claims.Subject != "ana" {
		t.Fatalf("analyst token = %+v, %v; want demo/ana with the analyst role", claims, err)
	}
	if _, err := reportingAs(t, info, ana.Token).ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "demo"}); err != nil {
		t.Errorf("reporting refused the analyst: %v", err)
	}
	if _, err := agentclient.Dial(ctx, info.ConsoleURL, ana.Token); !agentclient.IsCode(err, "unauthenticated") {
		t.Errorf("agent websocket with the analyst's token: %v, want unauthenticated", err)
	}
	// Another tenant's reports stay closed to the analyst.
	if _, err := reportingAs(t, info, ana.Token).ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "other"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("another tenant's sessions: %v, want PermissionDenied", err)
	}

	alice, err := agentclient.SignIn(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo")
	if err != nil || !slices.Equal(alice.Roles, []string{authn.RoleAgent}) {
		t.Fatalf("agent sign-in = %+v, %v; want roles [agent]", alice, err)
	}
	if _, err := reportingAs(t, info, alice.Token).ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "demo"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("reporting with an agent's token: %v, want PermissionDenied", err)
	}
	sam, err := agentclient.SignIn(ctx, info.ConsoleURL, "demo", "sam@demo.example", "demo")
	if err != nil || !slices.Equal(sam.Roles, []string{authn.RoleSupervisor}) {
		t.Fatalf("supervisor sign-in = %+v, %v; want roles [supervisor]", sam, err)
	}
	if _, err := reportingAs(t, info, sam.Token).ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "demo"}); err != nil {
		t.Errorf("reporting refused the supervisor: %v", err)
	}

	// A wrong password is the same answer for the analyst as for anyone.
	_, err = agentclient.SignIn(ctx, info.ConsoleURL, "demo", "ana@demo.example", "wrong")
	var se *agentclient.SignInError
	if !errors.As(err, &se) || se.Status != 401 || se.Message != "wrong tenant, email or password" {
		t.Errorf("analyst with a wrong password: %v, want 401 wrong tenant, email or password", err)
	}
}

// In a real browser an analyst signing in to the console is told the
// console is for agents and supervisors, and stays on the sign-in page.
func TestAnalystConsoleSignInExplains(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	var view bool
	if err := chromedp.Run(ctx,
		submitSignIn("demo", "ana@demo.example", "demo", info),
		waitText("#login-error", "for agents and supervisors"),
		chromedp.Evaluate(`!document.getElementById("login-view").hidden && !sessionStorage.getItem("sb.token")`, &view),
	); err != nil {
		t.Fatalf("analyst sign-in: %v", err)
	}
	if !view {
		t.Error("after an analyst's sign-in the console left the sign-in page or kept the token")
	}
	var msg string
	if err := chromedp.Run(ctx, chromedp.Text("#login-error", &msg)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "analyst") || !strings.Contains(msg, "switchboardctl login") {
		t.Errorf("message %q does not name the role or where the sign-in is useful", msg)
	}
}
