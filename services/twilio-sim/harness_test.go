package twiliosim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"

	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// Test identities. Secrets are alphanumeric because twilio-go refuses others.
const (
	acctSID   = "AC0123456789abcdef0123456789abcdef"
	authToken = "authtoken0123456789"
	keySID    = "SK0123456789abcdef0123456789abcdef"
	keySecret = "keysecret0123456789"

	convSvc    = "IS0123456789abcdef0123456789abcdef"
	convSvcGet = "IS1111111111abcdef0123456789abcdef"
	msgSvc     = "MG0123456789abcdef0123456789abcdef"

	smsNumber     = "+12025550100" // Messaging webhooks (POST), in msgSvc
	convNumber    = "+12025550101" // autocreates conversations in convSvc
	waConvNumber  = "whatsapp:+12025550102"
	waNumber      = "whatsapp:+12025550103" // Messaging webhooks, WhatsApp
	getNumber     = "+12025550104"          // Messaging webhooks by GET, query string in the URL
	convGetNumber = "+12025550105"          // autocreates in convSvcGet (GET webhooks)
	plainNumber   = "+12025550106"          // no Messaging Service, no webhook

	customer   = "+15551230001"
	waCustomer = "whatsapp:+15551230001"
)

// received is one webhook request as an application sees it.
type received struct {
	Method string
	URL    string // scheme://host + request URI, what a receiver signs over
	Path   string
	Header http.Header
	Form   url.Values // POST body parameters (nil for GET)
	Query  url.Values
	Body   string
}

// receiver is the application side: it records every webhook and answers
// through a per-path handler.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	reqs     []received
	handlers map[string]http.HandlerFunc
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{handlers: map[string]http.HandlerFunc{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec := received{
		Method: r.Method, URL: "http://" + r.Host + r.URL.RequestURI(), Path: r.URL.Path,
		Header: r.Header.Clone(), Query: r.URL.Query(), Body: string(b),
	}
	if r.Method == http.MethodPost {
		rec.Form, _ = url.ParseQuery(string(b))
	}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, rec)
	h := rc.handlers[r.URL.Path]
	rc.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`)
}

func (rc *receiver) url(path string) string { return rc.srv.URL + path }

func (rc *receiver) handle(path string, h http.HandlerFunc) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.handlers[path] = h
}

// requests returns what arrived on a path, oldest first.
func (rc *receiver) requests(path string) []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []received
	for _, r := range rc.reqs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// waitRequests polls until n requests arrived on path.
func (rc *receiver) waitRequests(t *testing.T, path string, n int) []received {
	t.Helper()
	var got []received
	eventually(t, func() bool {
		got = rc.requests(path)
		return len(got) >= n
	}, "%d requests on %s", n, path)
	return got
}

// eventually polls cond until it holds or 30 s pass.
func eventually(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for "+format, args...)
		case <-tick.C:
		}
	}
}

// checkSignature validates a webhook the way a Go application would: the
// full URL (with the query string for GET) and the POST parameters.
func checkSignature(t *testing.T, r received) {
	t.Helper()
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		t.Fatalf("webhook to %s has no X-Twilio-Signature", r.URL)
	}
	var params url.Values
	if r.Method == http.MethodPost {
		params = r.Form
	}
	if !twiliosig.Validate([]string{authToken}, r.URL, params, sig) {
		t.Errorf("signature %q of %s %s does not validate with the account's auth token", sig, r.Method, r.URL)
	}
	for k, v := range params {
		if len(v) != 1 {
			t.Errorf("form key %q is repeated %d times; Twilio never repeats keys", k, len(v))
		}
	}
}

// baseConfig is the accounts every test starts from; urls point at rc.
func baseConfig(rc *receiver) twiliosim.Config {
	return twiliosim.Config{
		StatusDelay:                 time.Millisecond,
		ConversationsWebhookTimeout: 2 * time.Second,
		MessagingWebhookTimeout:     2 * time.Second,
		Accounts: []twiliosim.Account{{
			AccountSID: acctSID,
			AuthToken:  authToken,
			APIKeys:    map[string]string{keySID: keySecret},
			ConversationsServices: []twiliosim.ConversationsService{
				{SID: convSvc, PostWebhookURL: rc.url("/conv"), MessagingServiceSID: msgSvc},
				{SID: convSvcGet, PostWebhookURL: rc.url("/conv-get?tenant=acme&note=It's+here"), Method: "GET"},
			},
			MessagingServices: []twiliosim.MessagingService{
				{SID: msgSvc, StatusCallback: rc.url("/status-mg"), AdvancedOptOut: true, Numbers: []string{smsNumber}},
			},
			Numbers: []twiliosim.PhoneNumber{
				{Address: smsNumber, SmsURL: rc.url("/sms"), SmsFallbackURL: rc.url("/sms-fallback")},
				{Address: convNumber, ConversationsServiceSID: convSvc, MessagingServiceSID: msgSvc},
				{Address: waConvNumber, ConversationsServiceSID: convSvc},
				{Address: waNumber, SmsURL: rc.url("/wa")},
				{Address: getNumber, SmsURL: rc.url("/sms-get?tenant=acme&note=It's+here"), SmsMethod: "GET"},
				{Address: convGetNumber, ConversationsServiceSID: convSvcGet},
				{Address: plainNumber},
			},
		}},
	}
}

// sim is a running emulator.
type sim struct {
	base string
	c    *simclient.Client
}

// startSim runs the emulator on 127.0.0.1:0 until the test ends.
func startSim(t *testing.T, cfg twiliosim.Config) *sim {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	go func() { done <- twiliosim.Run(ctx, cfg, twiliosim.Deps{Listener: ln}, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
	})
	s := &sim{base: "http://" + ln.Addr().String()}
	s.c = simclient.New(s.base, nil)
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	if err := s.c.WaitReady(wctx); err != nil {
		t.Fatalf("emulator not ready: %v", err)
	}
	return s
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// toSim sends twilio-go's requests to the emulator, keeping the host the SDK
// meant in X-Original-Host.
type toSim struct{ target *url.URL }

func (t toSim) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Original-Host", r.URL.Host)
	r.URL.Scheme, r.URL.Host, r.Host = t.target.Scheme, t.target.Host, t.target.Host
	return http.DefaultTransport.RoundTrip(r)
}

// twilioClient is a twilio-go REST client pointed at the emulator.
func twilioClient(t *testing.T, base, user, pass string) *twilio.RestClient {
	t.Helper()
	t.Setenv("TWILIO_EDGE", "")
	t.Setenv("TWILIO_REGION", "")
	target, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %q: %v", base, err)
	}
	c := &client.Client{
		Credentials: client.NewCredentials(user, pass),
		HTTPClient:  &http.Client{Transport: toSim{target}, Timeout: 10 * time.Second},
	}
	c.SetAccountSid(acctSID)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
}

// repoRoot walks up from the working directory to the folder with go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// contractDir is ../shared/twilio-oai from the repository root; the test
// skips when it is absent.
func contractDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "..", "shared", "twilio-oai")
	if _, err := os.Stat(filepath.Join(dir, "twilio_api_v2010.json")); err != nil {
		t.Skipf("Twilio OpenAPI documents not found at %s (expected ../shared/twilio-oai next to the repository): %v", dir, err)
	}
	return dir
}

func keys(v url.Values) []string { return slices.Sorted(maps.Keys(v)) }

func joinKeys(v url.Values) string { return strings.Join(keys(v), ",") }

func asSimError(err error, target **simclient.Error) bool { return errors.As(err, target) }

// decodeBody checks the status of resp and decodes its JSON body into v.
func decodeBody(t *testing.T, resp *http.Response, status int, v any) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status = %d (%s), want %d", resp.StatusCode, b, status)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
	}
}
