package ctl_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/services/config/internal/configtest"
	"github.com/switchboard-cc/switchboard/services/config/internal/ctl"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// run runs switchboardctl in-process with env, as a shell would.
func run(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	// Never the token a developer's own switchboardctl login saved.
	noSaved := filepath.Join(t.TempDir(), "no-saved-token")
	code = ctl.Main(context.Background(), args, ctl.IO{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			if !ok && k == ctl.EnvTokenFile {
				return noSaved, true
			}
			return v, ok
		},
		ReadFile: os.ReadFile,
	})
	return out.String(), errb.String(), code
}

func TestApplySampleTwiceThenList(t *testing.T) {
	e := configtest.Start(t)
	env := map[string]string{
		ctl.EnvAddr: e.Addr, ctl.EnvAuthKeys: e.AuthHex,
		"TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("1", 32), "TWILIO_API_KEY_SID": "SK" + strings.Repeat("2", 32),
		"TWILIO_API_KEY_SECRET": "sample-api-key-secret-42", "TWILIO_AUTH_TOKEN": strings.Repeat("3", 32),
		"AGENT_INITIAL_PASSWORD": "initial-pass",
	}
	sample := "../../../../deploy/examples/tenant.yaml"

	out, errOut, code := run(t, env, "", "apply", "-f", sample)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "created   service bookings") || !strings.Contains(out, "16 changed, 0 unchanged") {
		t.Errorf("first apply output:\n%s", out)
	}
	out, errOut, code = run(t, env, "", "apply", "-f", sample)
	if code != 0 || !strings.Contains(out, "0 changed, 16 unchanged") {
		t.Errorf("second apply: exit %d\n%s%s", code, out, errOut)
	}

	out, _, code = run(t, env, "", "list", "services", "--tenant", "helvetia-travel")
	if code != 0 || !strings.Contains(out, "bookings") || !strings.Contains(out, "sms-bookings,whatsapp-bookings") || !strings.Contains(out, "45s") {
		t.Errorf("list services: exit %d\n%s", code, out)
	}
	out, _, code = run(t, env, "", "get", "connector", "twilio-prod", "--tenant", "helvetia-travel", "-o", "json")
	if code != 0 || !strings.Contains(out, `"auth_token_hint": "…3333"`) || strings.Contains(out, "sample-api-key-secret-42") || strings.Contains(out, strings.Repeat("3", 32)) {
		t.Errorf("get connector: exit %d\n%s", code, out)
	}
}

func TestCreateListDeleteFromFlags(t *testing.T) {
	e := configtest.Start(t)
	env := map[string]string{ctl.EnvAddr: e.Addr, ctl.EnvAuthKeys: e.AuthHex}
	steps := [][]string{
		{"create", "tenant", "--id", "acme", "--name", "Acme", "--modalities", "all", "--time-zone", "Australia/Sydney"},
		{"create", "ou", "--tenant", "acme", "--id", "root", "--name", "Acme"},
		{"create", "connector", "--tenant", "acme", "--id", "tw", "--name", "Twilio", "--ou", "root",
			"--account-sid", "AC" + strings.Repeat("a", 32), "--api-key-sid", "SK" + strings.Repeat("b", 32),
			"--api-key-secret", "flag-secret-0123456789", "--auth-token", strings.Repeat("c", 32), "--region", "au1"},
		{"create", "entry", "--tenant", "acme", "--id", "sms", "--name", "SMS", "--ou", "root", "--connector", "tw", "--channel", "sms", "--addresses", "+61255550100"},
		{"create", "service", "--tenant", "acme", "--id", "support", "--name", "Support", "--ou", "root", "--channels", "sms", "--entries", "sms", "--rona", "25s", "--max-parallel", "2"},
		{"create", "user", "--tenant", "acme", "--id", "ann", "--name", "Ann", "--email", "ann@acme.example", "--roles", "agent", "--services", "support", "--password", "ann-pass"},
	}
	for _, args := range steps {
		out, errOut, code := run(t, env, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if strings.Contains(out, "flag-secret-0123456789") || strings.Contains(out, "ann-pass") {
			t.Errorf("%v printed a secret:\n%s", args, out)
		}
	}
	out, _, _ := run(t, env, "", "list", "tenants")
	if !strings.Contains(out, "TIME ZONE") || !strings.Contains(out, "Australia/Sydney") {
		t.Errorf("list tenants does not show the time zone:\n%s", out)
	}
	out, errOut, code := run(t, env, "", "create", "tenant", "--id", "mars", "--name", "Mars", "--time-zone", "Mars/Olympus")
	if code == 0 || !strings.Contains(errOut, "time_zone") || !strings.Contains(errOut, "Mars/Olympus") {
		t.Errorf("create tenant in an unknown zone: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = run(t, env, "", "list", "connectors", "--tenant", "acme")
	if !strings.Contains(out, "au1/sydney") || !strings.Contains(out, "…6789") {
		t.Errorf("list connectors:\n%s", out)
	}
	out, errOut, code = run(t, env, "", "create", "entry", "--tenant", "acme", "--id", "dup", "--name", "Dup", "--ou", "root", "--connector", "tw", "--channel", "sms", "--addresses", "+61255550100")
	if code == 0 || !strings.Contains(errOut, "AlreadyExists") {
		t.Errorf("duplicate number: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := run(t, env, "", "delete", "user", "ann", "--tenant", "acme"); code != 0 {
		t.Errorf("delete user: %s", errOut)
	}
	out, _, _ = run(t, env, "", "list", "users", "--tenant", "acme")
	if strings.Contains(out, "ann@acme.example") {
		t.Errorf("user still listed after delete:\n%s", out)
	}
	if out, _, code := run(t, env, "", "rotate-secrets", "--tenant", "acme"); code != 0 || !strings.Contains(out, "re-encrypted 0 of 1") {
		t.Errorf("rotate-secrets: %s", out)
	}
}

func TestTokens(t *testing.T) {
	e := configtest.Start(t)
	env := map[string]string{ctl.EnvAuthKeys: e.AuthHex}
	out, errOut, code := run(t, env, "", "token", "--tenant", "demo", "--role", "admin")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	c, err := e.AuthKeys.Verify(strings.TrimSpace(out))
	if err != nil || c.Tenant != "demo" || !c.Has(authn.RoleAdmin) {
		t.Errorf("minted token: claims %+v, %v", c, err)
	}
	if _, errOut, code := run(t, env, "", "token", "--role", "agent"); code == 0 || !strings.Contains(errOut, "--tenant") {
		t.Errorf("agent token without tenant: exit %d %s", code, errOut)
	}
	if _, errOut, code := run(t, map[string]string{}, "", "token", "--role", "platform"); code == 0 || !strings.Contains(errOut, ctl.EnvAuthKeys) {
		t.Errorf("token without keys: exit %d %s", code, errOut)
	}

	// An admin token of another tenant cannot apply the demo tenant.
	addr := map[string]string{ctl.EnvAddr: e.Addr, ctl.EnvToken: e.Token(t, "other", authn.RoleAdmin)}
	if _, errOut, code := run(t, addr, "", "apply", "--demo"); code == 0 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("apply demo as another tenant's admin: exit %d %s", code, errOut)
	}
	// Stdin works, and YAML errors name the line.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("tenant:\n  id: x\n  bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, addr, "", "apply", "-f", bad); code == 0 || !strings.Contains(errOut, "line 3") {
		t.Errorf("apply a bad file: exit %d %s", code, errOut)
	}
	if _, errOut, code := run(t, addr, "tenant: [", "apply", "-f", "-"); code == 0 || !strings.Contains(errOut, "parse tenant spec") {
		t.Errorf("apply bad stdin: exit %d %s", code, errOut)
	}
}
