// Package conncheck checks a provider connector against Twilio, the way an
// admin would click through the Twilio console: the API key and the Auth
// Token open the account on the connector's regional hosts; every business
// number and Conversations service of the entries bound to the connector
// sends its webhooks to chat-handler's URLs with a method and events
// chat-handler takes; and a webhook signed like Twilio's goes through
// chat-handler as a self-test that creates no session. Each problem is a
// finding naming the fix. Secrets are used, never written into a finding
// or a log line.
package conncheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/switchboard-cc/switchboard/pkg/chatwebhook"
	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

// Checks, the findings' check names.
const (
	CheckPublicURL     = "public_base_url"
	CheckAPIKey        = "api_key"
	CheckAuthToken     = "auth_token"
	CheckNumber        = "number_webhook"
	CheckConversations = "conversations_webhook"
	CheckSelfTest      = "self_test"
)

// Options of a Checker.
type Options struct {
	// PublicBaseURL is chat-handler's public base URL (its PUBLIC_BASE_URL,
	// what Twilio calls): the webhook URLs expected in Twilio, and where
	// self-tests go. Empty: webhooks and self-tests are not checked.
	PublicBaseURL string
	// TwilioBaseURL sends Twilio calls to an emulator; nil calls Twilio.
	TwilioBaseURL *url.URL
	// Transport carries Twilio calls and self-tests; nil uses
	// twilioclient.NewTransport().
	Transport http.RoundTripper
	// Timeout bounds each call; 0 is 10 s.
	Timeout time.Duration
}

// Checker runs the checks.
type Checker struct {
	opts Options
	http *http.Client
}

// New returns a Checker.
func New(o Options) *Checker {
	if o.Transport == nil {
		o.Transport = twilioclient.NewTransport()
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	o.PublicBaseURL = strings.TrimRight(o.PublicBaseURL, "/")
	return &Checker{opts: o, http: &http.Client{
		Transport: o.Transport, Timeout: o.Timeout,
		// A redirect is an answer to report, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Target is what is checked: a connector with its opened secrets, and the
// tenant's messaging entries bound to it.
type Target struct {
	Tenant    string
	Connector *configv1.ProviderConnector
	// Secrets in the clear; never put into a finding.
	APIKeySecret, AuthToken, SecondaryAuthToken string
	Entries                                     []*configv1.MessagingEntry
}

type findings struct{ list []*configv1.ConnectorFinding }

func (f *findings) ok(check, subject, detail string) {
	f.list = append(f.list, &configv1.ConnectorFinding{Check: check, Subject: subject, Ok: true, Detail: detail})
}

func (f *findings) bad(check, subject, problem, fix, detail string) {
	f.list = append(f.list, &configv1.ConnectorFinding{Check: check, Subject: subject, Problem: problem, Fix: fix, Detail: detail})
}

// Check runs every check on t and returns the findings in order.
func (c *Checker) Check(ctx context.Context, t Target) []*configv1.ConnectorFinding {
	var f findings
	conn := t.Connector
	subject := "connector " + conn.GetId()
	region, edge := conn.GetRegion(), conn.GetEdge()
	apiHost := twilioclient.Host("api", region, edge)
	where := fmt.Sprintf("account %s in region %s (%s)", conn.GetAccountSid(), region, apiHost)

	keyClient := c.client(conn, conn.GetApiKeySid(), t.APIKeySecret)
	keyOK := c.checkAccount(&f, CheckAPIKey, subject, keyClient, conn.GetAccountSid(), where,
		fmt.Sprintf("Twilio refused API key %s for %s: a wrong secret, a key of another account, or a key made in another region (keys work only in the region they were created in)", conn.GetApiKeySid(), where),
		fmt.Sprintf("create an API key in the Twilio console for region %s (Account → API keys) and put its SID and secret in the connector (api_key_sid, api_key_secret), or correct the connector's region", region))

	tokenClient, tokenOK := c.checkAuthToken(&f, subject, t, where, region)

	// Reads go through whichever credentials work.
	reader := keyClient
	if !keyOK {
		reader = tokenClient
	}
	if !keyOK && !tokenOK {
		f.bad(CheckNumber, subject, "numbers and Conversations services were not checked: no credentials of the connector open the account",
			"fix the credentials above, then check again", "")
		return f.list
	}
	if c.opts.PublicBaseURL == "" {
		f.bad(CheckPublicURL, "config service", "the config service does not know Switchboard's public URL, so webhook URLs and self-tests were not checked",
			"set PUBLIC_BASE_URL on the config service to chat-handler's PUBLIC_BASE_URL (the URL Twilio calls)", "")
		return f.list
	}
	entries := slices.Clone(t.Entries)
	slices.SortFunc(entries, func(a, b *configv1.MessagingEntry) int { return strings.Compare(a.GetId(), b.GetId()) })
	type selfTest struct {
		subject, path string
		params        url.Values
		entry         string
	}
	var tests []selfTest
	for _, e := range entries {
		if sid := e.GetConversationsServiceSid(); sid != "" {
			sub := fmt.Sprintf("entry %s: Conversations service %s", e.GetId(), sid)
			c.checkConversations(&f, reader, t.Tenant, sub, sid, where)
			tests = append(tests, selfTest{sub, chatwebhook.PathConversations, conversationsSelfTest(conn.GetAccountSid(), sid), e.GetId()})
		}
		for _, addr := range e.GetBusinessAddresses() {
			sub := fmt.Sprintf("entry %s: %s", e.GetId(), addr)
			onMessaging := e.GetPath() != messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS
			c.checkNumber(&f, reader, t.Tenant, sub, addr, where, onMessaging)
			if onMessaging {
				tests = append(tests, selfTest{sub, chatwebhook.PathInbound, messagingSelfTest(conn.GetAccountSid(), addr), e.GetId()})
			}
		}
	}
	for _, st := range tests {
		c.selfTest(ctx, &f, t, st.subject, st.entry, st.path, st.params)
	}
	return f.list
}

// client is a REST client on the connector's regional hosts.
func (c *Checker) client(conn *configv1.ProviderConnector, user, secret string) *twilio.RestClient {
	return twilioclient.NewClient(twilioclient.Credentials{
		AccountSID: conn.GetAccountSid(), APIKeySID: user, APIKeySecret: secret, Region: conn.GetRegion(), Edge: conn.GetEdge(),
	}, twilioclient.Options{BaseURL: c.opts.TwilioBaseURL, Timeout: c.opts.Timeout, Transport: c.opts.Transport})
}

// checkAccount fetches the account and reports it as check.
func (c *Checker) checkAccount(f *findings, check, subject string, cl *twilio.RestClient, accountSID, where, refused, fix string) bool {
	acct, err := cl.Api.FetchAccount(accountSID)
	if err != nil {
		problem, fixIt := describe(err, refused, fix, where)
		f.bad(check, subject, problem, fixIt, "")
		return false
	}
	status, name := deref(acct.Status), deref(acct.FriendlyName)
	detail := fmt.Sprintf("%s %q is %s", where, name, status)
	if status != "active" {
		f.bad(check, subject, fmt.Sprintf("the account is %s: Twilio neither delivers nor sends its messages", status),
			"reactivate the account in the Twilio console (or point the connector at the active account)", detail)
		return true
	}
	f.ok(check, subject, detail)
	return true
}

// checkAuthToken checks the Auth Token (or, during a rotation, the
// secondary one) opens the account: Twilio signs webhooks with it, and
// chat-handler checks them with the connector's tokens.
func (c *Checker) checkAuthToken(f *findings, subject string, t Target, where, region string) (*twilio.RestClient, bool) {
	conn := t.Connector
	refused := fmt.Sprintf("Twilio refused the Auth Token (%s) for %s: Twilio signs webhooks with the account's current token, so chat-handler would refuse them (403)",
		conn.GetAuthTokenHint(), where)
	fix := fmt.Sprintf("copy the Auth Token of the account for region %s from the Twilio console into the connector's auth_token (secondary_auth_token during a rotation)", region)
	primary := c.client(conn, conn.GetAccountSid(), t.AuthToken)
	if t.SecondaryAuthToken == "" {
		return primary, c.checkAccount(f, CheckAuthToken, subject, primary, conn.GetAccountSid(), where, refused, fix)
	}
	if _, err := primary.Api.FetchAccount(conn.GetAccountSid()); err == nil {
		f.ok(CheckAuthToken, subject, fmt.Sprintf("the Auth Token (%s) opens %s; a secondary token is set: end the rotation once Twilio signs with the new one", conn.GetAuthTokenHint(), where))
		return primary, true
	}
	secondary := c.client(conn, conn.GetAccountSid(), t.SecondaryAuthToken)
	return secondary, c.checkAccount(f, CheckAuthToken, subject, secondary, conn.GetAccountSid(), where, refused, fix)
}

// checkNumber compares a number's "A message comes in" webhook with
// chat-handler's. Numbers of Conversations entries (inbound autocreation)
// must only exist in the account.
func (c *Checker) checkNumber(f *findings, cl *twilio.RestClient, tenant, subject, addr, where string, onMessaging bool) {
	bare := strings.TrimPrefix(addr, "whatsapp:")
	p := &api.ListIncomingPhoneNumberParams{}
	p.SetPhoneNumber(bare).SetPageSize(20)
	nums, err := cl.Api.ListIncomingPhoneNumber(p)
	if err != nil {
		problem, fix := describe(err, "", "", where)
		f.bad(CheckNumber, subject, "the number's configuration could not be read: "+problem, fix, "")
		return
	}
	n := pickNumber(nums, addr)
	if n == nil {
		f.bad(CheckNumber, subject, fmt.Sprintf("%s is not a number of %s", bare, where),
			"buy or port the number into this account (in this region), or correct the entry's business_addresses or the connector", "")
		return
	}
	if !onMessaging {
		f.ok(CheckNumber, subject, fmt.Sprintf("%s is a number of %s (the entry takes its messages on the Conversations path)", bare, where))
		return
	}
	want := chatwebhook.TenantURL(c.opts.PublicBaseURL, tenant, chatwebhook.PathInbound)
	wantFallback := chatwebhook.TenantURL(c.opts.PublicBaseURL, tenant, chatwebhook.PathFallback)
	got, method, fallback := deref(n.SmsUrl), strings.ToUpper(deref(n.SmsMethod)), deref(n.SmsFallbackUrl)
	detail := fmt.Sprintf("A message comes in: %s %s; fallback: %s", orNone(method), orNone(got), orNone(fallback))
	problems := webhookProblems(`"A message comes in" webhook`, got, want, method)
	if fallback != "" && !sameEndpoint(fallback, wantFallback) {
		problems = append(problems, fmt.Sprintf("the fallback URL points to %s, not to Switchboard", fallback))
	}
	if len(problems) > 0 {
		f.bad(CheckNumber, subject, strings.Join(problems, "; "),
			fmt.Sprintf("in the Twilio console (Phone Numbers → %s → Messaging) set \"A message comes in\" to %s with HTTP POST, and \"Primary handler fails\" to %s or empty", bare, want, wantFallback), detail)
		return
	}
	f.ok(CheckNumber, subject, detail)
}

// webhookProblems compares a configured webhook (what Twilio calls it:
// label) and its method with chat-handler's URL.
func webhookProblems(label, got, want, method string) []string {
	var problems []string
	switch {
	case got == "":
		problems = append(problems, "no "+strings.TrimPrefix(label, "the ")+": customers' messages reach nobody")
	case !sameEndpoint(got, want):
		problems = append(problems, fmt.Sprintf("%s points to %s, not to Switchboard", label, got))
	}
	if got != "" && method != http.MethodPost && method != http.MethodGet {
		problems = append(problems, fmt.Sprintf("method %q: chat-handler takes POST or GET", method))
	}
	return problems
}

// pickNumber finds addr among the incoming numbers listed for its bare
// number: one named after a WhatsApp sender's address first (the
// emulator lists senders so), else the number itself.
func pickNumber(nums []api.ApiV2010IncomingPhoneNumber, addr string) *api.ApiV2010IncomingPhoneNumber {
	bare := strings.TrimPrefix(addr, "whatsapp:")
	var found *api.ApiV2010IncomingPhoneNumber
	for i := range nums {
		n := &nums[i]
		if deref(n.PhoneNumber) != bare {
			continue
		}
		name := deref(n.FriendlyName)
		if name == addr {
			return n
		}
		if found == nil && !strings.HasPrefix(name, "whatsapp:") {
			found = n
		}
	}
	return found
}

// checkConversations compares a Conversations service's webhook
// configuration with chat-handler's callback URL and events.
func (c *Checker) checkConversations(f *findings, cl *twilio.RestClient, tenant, subject, sid, where string) {
	wh, err := cl.ConversationsV1.FetchServiceWebhookConfiguration(sid)
	if err != nil {
		var te *client.TwilioRestError
		if errors.As(err, &te) && te.Status == http.StatusNotFound {
			f.bad(CheckConversations, subject, fmt.Sprintf("Conversations service %s is not in %s", sid, where),
				"put the SID of the account's Conversations service (Conversations → Services) in the entry, or point the entry at the connector of that service's account", "")
			return
		}
		problem, fix := describe(err, "", "", where)
		f.bad(CheckConversations, subject, "the service's webhook configuration could not be read: "+problem, fix, "")
		return
	}
	want := chatwebhook.TenantURL(c.opts.PublicBaseURL, tenant, chatwebhook.PathConversations)
	got, method := deref(wh.PostWebhookUrl), strings.ToUpper(deref(wh.Method))
	var filters []string
	if wh.Filters != nil {
		filters = *wh.Filters
	}
	detail := fmt.Sprintf("Post-Event URL: %s %s; filters: %s", orNone(method), orNone(got), orNone(strings.Join(filters, ", ")))
	problems := webhookProblems("the Post-Event URL", got, want, method)
	var missing []string
	for _, ev := range chatwebhook.Events {
		if !slices.Contains(filters, ev) {
			missing = append(missing, ev)
		}
	}
	if slices.Contains(missing, chatwebhook.EventMessageAdded) {
		problems = append(problems, "the filters lack onMessageAdded: customers' messages are never sent to Switchboard")
	} else if len(missing) > 0 {
		problems = append(problems, "the filters lack "+strings.Join(missing, ", ")+": conversations open, close or report delivery without Switchboard knowing")
	}
	if len(problems) > 0 {
		f.bad(CheckConversations, subject, strings.Join(problems, "; "),
			fmt.Sprintf("in the Twilio console (Conversations → Services → %s → Webhooks) set the Post-Event URL to %s, method POST, and the post-event filters %s",
				sid, want, strings.Join(chatwebhook.Events, ", ")), detail)
		return
	}
	f.ok(CheckConversations, subject, detail)
}

// selfTestCustomer is Twilio's magic test number: never a real customer.
const selfTestCustomer = "+15005550006"

func messagingSelfTest(accountSID, addr string) url.Values {
	from := selfTestCustomer
	if strings.HasPrefix(addr, "whatsapp:") {
		from = "whatsapp:" + from
	}
	sid := "SM" + randomHex()
	return url.Values{
		"AccountSid": {accountSID}, "ApiVersion": {"2010-04-01"}, "Body": {""}, "From": {from}, "To": {addr},
		"MessageSid": {sid}, "SmsMessageSid": {sid}, "SmsSid": {sid}, "SmsStatus": {"received"}, "NumMedia": {"0"}, "NumSegments": {"1"},
	}
}

func conversationsSelfTest(accountSID, serviceSID string) url.Values {
	return url.Values{
		"AccountSid": {accountSID}, "ChatServiceSid": {serviceSID}, "ConversationSid": {"CH" + randomHex()},
		"EventType": {chatwebhook.EventMessageAdded}, "MessageSid": {"IM" + randomHex()}, "Index": {"0"}, "Author": {selfTestCustomer},
		"Source": {"SMS"}, "Body": {""}, "Attributes": {"{}"}, "RetryCount": {"0"},
	}
}

// selfTest posts a webhook signed with the connector's Auth Token to the
// URL Twilio would call and expects chat-handler to echo its nonce.
func (c *Checker) selfTest(ctx context.Context, f *findings, t Target, subject, entry, path string, params url.Values) {
	target := chatwebhook.TenantURL(c.opts.PublicBaseURL, t.Tenant, path)
	nonce := "st-" + randomHex()[:16]
	params.Set(chatwebhook.SelfTestParam, nonce)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(params.Encode()))
	if err != nil {
		f.bad(CheckSelfTest, subject, "the webhook URL is not valid: "+err.Error(), "correct PUBLIC_BASE_URL of the config service", "")
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliosig.Sign(t.AuthToken, target, params))
	req.Header.Set("I-Twilio-Idempotency-Token", nonce)
	req.Header.Set("User-Agent", "switchboard-connector-check")
	start := time.Now()
	res, err := c.http.Do(req)
	if err != nil {
		f.bad(CheckSelfTest, subject, fmt.Sprintf("chat-handler did not answer at %s: %v", target, unwrapURLError(err)),
			"check that PUBLIC_BASE_URL is the URL Twilio calls and that it reaches chat-handler (DNS, ingress, TLS)", "")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	_ = res.Body.Close()
	answer := strings.TrimSpace(string(bytes.ToValidUTF8(body, nil)))
	detail := fmt.Sprintf("POST %s: HTTP %d in %s", target, res.StatusCode, time.Since(start).Round(time.Millisecond))
	switch {
	case res.StatusCode == http.StatusOK && res.Header.Get(chatwebhook.SelfTestHeader) == nonce:
		f.ok(CheckSelfTest, subject, detail+"; chat-handler verified the signature and routed it to entry "+entry)
	case res.StatusCode == http.StatusOK:
		f.bad(CheckSelfTest, subject, "the URL answered 200 but not as chat-handler's self-test",
			"make sure PUBLIC_BASE_URL reaches chat-handler, and that chat-handler runs the same release as config", detail)
	case res.StatusCode == http.StatusForbidden && strings.Contains(answer, "X-Twilio-Signature"):
		f.bad(CheckSelfTest, subject, "chat-handler refused the signature, or does not route this to tenant "+t.Tenant,
			"chat-handler checks signatures against its own PUBLIC_BASE_URL: set it to the same URL as the config service's; its log's \"webhook rejected\" line names the reason", detail)
	case res.StatusCode == http.StatusForbidden:
		f.bad(CheckSelfTest, subject, "chat-handler refuses customers' messages here: "+answer,
			"assign the entry to a service and switch its channel on for the tenant", detail)
	default:
		f.bad(CheckSelfTest, subject, fmt.Sprintf("chat-handler answered %d: %s", res.StatusCode, answer),
			"check chat-handler's log and health (/readyz): NATS and the config service must be reachable", detail)
	}
}

// describe turns a failed Twilio call into a problem and a fix; refused
// and fix are used for 401 (when given).
func describe(err error, refused, fix, where string) (string, string) {
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		if te.Status == http.StatusUnauthorized && refused != "" {
			return refused, fix
		}
		if te.Status == http.StatusUnauthorized {
			return fmt.Sprintf("Twilio refused the credentials for %s (%d %d)", where, te.Status, te.Code), "fix the credentials above"
		}
		if te.Status == http.StatusNotFound {
			return fmt.Sprintf("Twilio knows no such resource in %s (%d %d)", where, te.Status, te.Code),
				"check the connector's account_sid and region against the Twilio console"
		}
		return fmt.Sprintf("Twilio answered %d (error %d: %s)", te.Status, te.Code, te.Message),
			"retry later; Twilio's error page for the code says more: https://www.twilio.com/docs/api/errors/" + fmt.Sprint(te.Code)
	}
	return fmt.Sprintf("Twilio could not be reached for %s: %v", where, unwrapURLError(err)),
		"allow the config service HTTPS egress to *.twilio.com (port 443), then check again"
}

// unwrapURLError keeps the cause of a failed request without its URL
// repeated (it names no secret either way: credentials travel in a header).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// sameEndpoint reports whether a configured URL reaches the expected
// endpoint: same scheme, host (default ports either way) and path; a query
// string is allowed (it is signed as configured, and ?chatServiceSid=… is
// documented).
func sameEndpoint(got, want string) bool {
	g, err1 := url.Parse(got)
	w, err2 := url.Parse(want)
	if err1 != nil || err2 != nil {
		return false
	}
	return strings.EqualFold(g.Scheme, w.Scheme) && hostPort(g) == hostPort(w) && g.EscapedPath() == w.EscapedPath()
}

func hostPort(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return host + ":" + port
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
