package ctl_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/services/config/internal/ctl"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// The demo analyst signs in with switchboardctl login against the whole
// stack and then summarizes and exports with the saved token, no
// platform key anywhere; config's administration stays closed to them;
// a throttled sign-in says how long to wait; logout forgets the token.
func TestLoginThenReport(t *testing.T) {
	info := devstacktest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// An agent's socket with its snapshot: every service is up (a stack
	// stopped while distribution still starts reports an error).
	tok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := agentclient.Dial(ctx, info.ConsoleURL, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if _, err := alice.WaitFor(ctx, "snapshot", nil); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "sb", "token")
	env := map[string]string{
		ctl.EnvSessionsURL: info.ConsoleURL, ctl.EnvReportingAddr: info.ReportingAddr, ctl.EnvAddr: info.ConfigAddr,
		ctl.EnvTokenFile: tokenFile,
	}
	from := time.Now().UTC().Add(-24 * time.Hour).Format(time.DateOnly)

	if _, errOut, code := run(t, env, "", "report", "summarize", "--tenant", "demo", "--from", from); code == 0 || !strings.Contains(errOut, "switchboardctl login") {
		t.Errorf("summarize before signing in: exit %d, %q; want an error pointing to switchboardctl login", code, errOut)
	}

	out, errOut, code := run(t, env, "demo\n", "login", "--tenant", "demo", "--email", "ana@demo.example", "--password-stdin")
	if code != 0 || !strings.Contains(out, "as Ana Analyst (analyst)") || !strings.Contains(out, tokenFile) {
		t.Fatalf("login: exit %d\n%s%s", code, out, errOut)
	}
	if st, err := os.Stat(tokenFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, %v; want mode 0600", st, err)
	}

	out, errOut, code = run(t, env, "", "report", "summarize", "--tenant", "demo", "--from", from)
	if code != 0 || !strings.Contains(out, "sessions") {
		t.Errorf("summarize with the analyst's sign-in: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = run(t, env, "", "report", "export", "--tenant", "demo", "--from", from)
	if code != 0 || !strings.Contains(out, ",segments_in,segments_out,estimated_cost,currency,customer_country") {
		t.Errorf("export with the analyst's sign-in: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := run(t, env, "", "list", "users", "--tenant", "demo"); code == 0 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("config's users with an analyst's token: exit %d, %q; want PermissionDenied", code, errOut)
	}

	// Wrong passwords until the account is throttled (3 free failures by
	// default; at 10 it is locked out, throttled all the same).
	bad := map[string]string{ctl.EnvSessionsURL: info.ConsoleURL, ctl.EnvTokenFile: tokenFile, ctl.EnvPassword: "not-the-password"}
	throttled := ""
	for range 12 {
		_, errOut, code := run(t, bad, "", "login", "--tenant", "demo", "--email", "sam@demo.example")
		if code == 0 {
			t.Fatal("a wrong password signed in")
		}
		if strings.Contains(errOut, "too many failed sign-ins") {
			throttled = errOut
			break
		}
		if !strings.Contains(errOut, "wrong tenant, email or password") {
			t.Fatalf("wrong password: %q", errOut)
		}
	}
	if !strings.Contains(throttled, "try again in ") || !strings.Contains(throttled, "s (") {
		t.Errorf("throttled sign-in said %q; want the delay", throttled)
	}
	t.Logf("throttled: %s", strings.TrimSpace(throttled))

	out, _, code = run(t, env, "", "logout")
	if _, err := os.Stat(tokenFile); code != 0 || !os.IsNotExist(err) {
		t.Errorf("logout: exit %d, %s; token file: %v", code, out, err)
	}
	if _, _, code := run(t, env, "", "report", "summarize", "--tenant", "demo", "--from", from); code == 0 {
		t.Error("summarize after logout succeeded")
	}
}

// A saved token that has expired is named as such, not sent.
func TestSavedTokenExpired(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	// A token whose exp (2001) has passed; the signature is never checked
	// by the CLI.
	const expired = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjEwMDAwMDAwMDB9.c2lnbmF0dXJl"
	if err := os.WriteFile(tokenFile, []byte(expired+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, map[string]string{ctl.EnvTokenFile: tokenFile, ctl.EnvReportingAddr: "127.0.0.1:1"}, "",
		"report", "summarize", "--tenant", "demo", "--from", "2026-03-01")
	if code == 0 || !strings.Contains(errOut, "expired") || !strings.Contains(errOut, "switchboardctl login") {
		t.Errorf("expired saved token: exit %d, %q", code, errOut)
	}
}
