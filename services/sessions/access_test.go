package sessions_test

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/services/sessions"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// revocations is a revocation list the test controls.
type revocations struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (r *revocations) revoke(tenant, subject string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at[tenant+"/"+subject] = time.Now()
}

func (r *revocations) Revoked(c *authn.Claims) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.at[c.Tenant+"/"+c.Subject]
	return ok && c.Issued().Before(at)
}

func TestRevokedAgentIsCutOff(t *testing.T) {
	list := &revocations{at: map[string]time.Time{}}
	h := start(t, func(_ *sessions.Config, d *sessions.Deps) { d.AuthKeys = d.AuthKeys.WithRevocations(list) })
	ctx := ctxT(t)
	tok, err := agentclient.Login(ctx, h.url, "acme", "alice@acme.example", "pw")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := agentclient.Dial(ctx, h.url, tok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := agentclient.Dial(ctx, h.url, tok) // a second tab
	if err != nil {
		t.Fatal(err)
	}
	bob := h.agent(t, "bob@acme.example")
	time.Sleep(2 * time.Millisecond) // tokens carry millisecond issue times
	list.revoke("acme", "alice")

	for name, c := range map[string]*agentclient.Conn{"first socket": alice, "second socket": second} {
		waitFor(t, name+" closed", func() bool { return c.Closed() != nil })
		if !strings.Contains(c.Closed().Error(), "4401") {
			t.Errorf("%s: close = %v, want 4401", name, c.Closed())
		}
	}
	if _, err := agentclient.Dial(ctx, h.url, tok); !agentclient.IsCode(err, "unauthenticated") {
		t.Errorf("reconnect with the revoked token: %v, want unauthenticated", err)
	}
	if _, err := bob.Request(ctx, "ping", map[string]string{}); err != nil {
		t.Errorf("another agent's socket: %v", err)
	}
	// Signing in again gives a token issued after the revocation.
	time.Sleep(2 * time.Millisecond)
	fresh, err := agentclient.Login(ctx, h.url, "acme", "alice@acme.example", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentclient.Dial(ctx, h.url, fresh); err != nil {
		t.Errorf("a fresh sign-in after the revocation: %v", err)
	}
}

func TestSilentSocketClosedWith4401(t *testing.T) {
	h := start(t, func(c *sessions.Config, _ *sessions.Deps) { c.AgentAuthTimeout = 200 * time.Millisecond })
	c, err := agentclient.DialRaw(ctxT(t), h.url)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "silent socket closed", func() bool { return c.Closed() != nil })
	if !strings.Contains(c.Closed().Error(), "4401") {
		t.Errorf("close = %v, want status 4401", c.Closed())
	}
}

func TestThrottledSignInAnswers429(t *testing.T) {
	h := start(t)
	body := []byte(`{"tenant_id":"acme","email":"locked@acme.example","password":"pw"}`)
	res, err := http.Post(h.url+"/api/agent/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "90" {
		t.Errorf("throttled sign-in: status %d, Retry-After %q; want 429 and 90", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

// Behind a trusted proxy the client's own address (X-Forwarded-For) is
// what sign-ins are throttled by; from anyone else the header is ignored,
// so a client cannot pose as another address.
func TestSignInThrottledByClientAddress(t *testing.T) {
	login := func(h *harness) int {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/api/agent/v1/login",
			bytes.NewReader([]byte(`{"tenant_id":"acme","email":"alice@acme.example","password":"wrong"}`)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "198.51.100.66") // an address the fake config throttles
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	behind := start(t, func(c *sessions.Config, _ *sessions.Deps) { c.TrustedProxies = []string{"127.0.0.1"} })
	if got := login(behind); got != http.StatusTooManyRequests {
		t.Errorf("through a trusted proxy: status %d, want 429 (throttled by the forwarded address)", got)
	}
	direct := start(t)
	if got := login(direct); got != http.StatusUnauthorized {
		t.Errorf("a client sending X-Forwarded-For itself: status %d, want 401 (header ignored)", got)
	}
}
