package ctl_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// switchboardctl reconcile through a running chat-handler: the demo
// tenant's window is read back from the emulator's history, the one
// customer message in it (which had arrived) published again for
// sessions to drop, and the report printed; bad windows and tokens are
// refused with chat-handler's reason.
func TestReconcileCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	info := devstacktest.Start(t, devstacktest.Only("config", "chat-handler", "twilio-sim"))
	sim := simclient.New(info.TwilioSimURL, nil)
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: "whatsapp:+15554440001", To: "whatsapp:+12025550101", Body: "hello"}); err != nil {
		t.Fatal(err)
	}
	token := func(tenant string, roles ...string) string {
		tok, err := info.AuthKeys.Mint(authn.Claims{Roles: roles, Tenant: tenant, Name: "test",
			RegisteredClaims: jwt.RegisteredClaims{Subject: "test"}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	env := map[string]string{"SWITCHBOARD_CHAT_HANDLER_URL": info.ChatHandlerURL, "SWITCHBOARD_TOKEN": token("demo", authn.RoleAdmin)}

	out, errOut, code := run(t, env, "", "reconcile", "--tenant", "demo", "--since", "10m")
	if code != 0 {
		t.Fatalf("reconcile exited %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"tenant demo", "messaging entries           3", "customer messages published 1", "delivery statuses published 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	for _, c := range []struct {
		args  []string
		token string
		says  string
	}{
		{[]string{"--since", "yesterday"}, token("demo", authn.RoleAdmin), `since "yesterday" is not an RFC 3339 time (400)`},
		{[]string{"--since", "1h"}, token("demo", authn.RoleAgent), "needs an admin of it or the platform (403)"},
		{[]string{"--since", "1h"}, token("other", authn.RoleAdmin), "(403)"},
		{[]string{"--since", "720h"}, token("demo", authn.RoleAdmin), "longer than 168h0m0s (400)"},
		{nil, token("demo", authn.RoleAdmin), "usage: switchboardctl reconcile"},
	} {
		env["SWITCHBOARD_TOKEN"] = c.token
		out, errOut, code := run(t, env, "", append([]string{"reconcile", "--tenant", "demo"}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.says) {
			t.Errorf("reconcile %v exited %d saying %q%q, want a failure saying %q", c.args, code, out, errOut, c.says)
		}
	}
}
