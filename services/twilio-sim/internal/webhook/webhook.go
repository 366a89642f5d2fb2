// Package webhook sends webhooks the way Twilio does: form parameters in a
// POST body (or the query string for GET), signed with X-Twilio-Signature
// over the exact URL requested, an I-Twilio-Idempotency-Token that stays the
// same across retries, retries on connection failures, an optional fallback
// URL, and a log of every attempt.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
)

// UserAgent is what Twilio's webhook proxy calls itself.
const UserAgent = "TwilioProxy/1.1"

// Kinds of deliveries, as recorded in the log.
const (
	KindMessaging      = "messaging"
	KindConversations  = "conversations"
	KindStatusCallback = "status_callback"
	KindFallback       = "fallback"
)

// Twilio's error codes for a failed webhook, sent to the fallback URL.
const (
	ErrHTTPRetrieval  = 11200
	ErrHTTPConnection = 11205
)

const (
	maxLog          = 20000
	maxResponseBody = 64 << 10
	defaultConnect  = 5 * time.Second
)

// Event is one webhook to deliver.
type Event struct {
	Kind       string
	Event      string // EventType, "incoming" or the message status
	AccountSID string
	MessageSID string
	AuthToken  string
	// URL is the configured URL. A fragment carries Twilio's connection
	// overrides (ct, rt, tt, rc, rp) and is never sent or signed.
	URL    string
	Method string // GET or POST (default)
	Params url.Values
	// Token is the I-Twilio-Idempotency-Token; one per event.
	Token string
	// Timeout bounds each attempt unless the URL overrides it.
	Timeout time.Duration
	// Retries after a connection failure unless the URL overrides it.
	Retries int
	// RetryCountParam adds RetryCount (0 for the first request, then 1…),
	// as Conversations webhooks carry.
	RetryCountParam bool
	// FirstRetryCount continues the numbering when an event is delivered
	// again on purpose.
	FirstRetryCount int
	FallbackURL     string
	FallbackMethod  string
}

// Outcome is what became of an event.
type Outcome struct {
	URL string
	// Status is the HTTP status of the last answer from the primary URL; 0
	// when no answer came.
	Status      int
	Attempts    int
	Body        []byte
	ContentType string
	Err         error
	// NextRetryCount is the RetryCount a further delivery would carry.
	NextRetryCount int
	FallbackStatus int
	FallbackBody   []byte
	FallbackType   string
}

// OK reports whether the primary URL answered 2xx.
func (o Outcome) OK() bool { return o.Status >= 200 && o.Status < 300 }

// Summary is the outcome as the /sim API reports it.
func (o Outcome) Summary(event string) simapi.WebhookSummary {
	s := simapi.WebhookSummary{Event: event, URL: o.URL, Status: o.Status, Attempts: o.Attempts, FallbackStatus: o.FallbackStatus}
	if o.Err != nil {
		s.Error = o.Err.Error()
	}
	return s
}

// Deliverer sends webhooks and keeps the log of attempts.
type Deliverer struct {
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	nextID   int64
	attempts []simapi.WebhookAttempt
}

type connectTimeoutKey struct{}

// New returns a Deliverer. A nil client gets one that honours per-URL
// connect timeouts and never follows redirects, like Twilio.
func New(client *http.Client, log *slog.Logger) *Deliverer {
	if client == nil {
		dialer := &net.Dialer{Timeout: defaultConnect, KeepAlive: 30 * time.Second}
		tr := &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if ct, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok && ct > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, ct)
					defer cancel()
				}
				return dialer.DialContext(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
		}
		client = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Deliverer{client: client, log: log}
}

// NewToken returns a fresh idempotency token.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// overrides are Twilio's per-URL connection settings from the URL fragment.
type overrides struct {
	connect, read, total time.Duration
	retries              int
	policy               map[string]bool
}

func parseOverrides(fragment string, timeout time.Duration, retries int) overrides {
	o := overrides{read: timeout, retries: retries, policy: map[string]bool{"ct": true, "rt": true}}
	if fragment == "" {
		return o
	}
	q, err := url.ParseQuery(fragment)
	if err != nil {
		return o
	}
	ms := func(key string, lo, hi int) (time.Duration, bool) {
		n, err := strconv.Atoi(q.Get(key))
		if err != nil || n < lo || n > hi {
			return 0, false
		}
		return time.Duration(n) * time.Millisecond, true
	}
	if d, ok := ms("ct", 100, 10000); ok {
		o.connect = d
	}
	if d, ok := ms("rt", 100, 15000); ok {
		o.read = d
	}
	if d, ok := ms("tt", 100, 15000); ok {
		o.total = d
	}
	if n, err := strconv.Atoi(q.Get("rc")); err == nil && n >= 0 && n <= 5 {
		o.retries = n
	}
	if rp := q.Get("rp"); rp != "" {
		o.policy = map[string]bool{}
		for _, p := range strings.Split(rp, ",") {
			o.policy[strings.TrimSpace(p)] = true
		}
	}
	return o
}

func (o overrides) attemptTimeout() time.Duration {
	t := o.read
	if o.connect > 0 {
		t += o.connect
	}
	if o.total > 0 && (t <= 0 || o.total < t) {
		t = o.total
	}
	return t
}

// retryable reports whether a failed attempt is retried under the policy.
func (o overrides) retryable(status int, err error) bool {
	if o.policy["all"] {
		return true
	}
	switch {
	case status >= 500:
		return o.policy["5xx"]
	case status >= 400:
		return o.policy["4xx"]
	case status > 0:
		return false
	case err != nil && isTimeout(err):
		return o.policy["rt"] || o.policy["ct"]
	case err != nil:
		return o.policy["ct"]
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// CanonicalURL drops the fragment and re-encodes the query string the way
// Go's url.Values.Encode would (keeping the order of the pairs), so the URL
// requested and the URL signed are byte for byte the same and receivers in
// any language rebuild it identically.
func CanonicalURL(raw string) (canonical, fragment string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("parse url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", "", fmt.Errorf("parse url %q: not an absolute http(s) url", raw)
	}
	fragment = u.Fragment
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" {
		pairs := strings.Split(u.RawQuery, "&")
		for i, p := range pairs {
			k, v, hasValue := strings.Cut(p, "=")
			pairs[i] = reescape(k)
			if hasValue {
				pairs[i] += "=" + reescape(v)
			}
		}
		u.RawQuery = strings.Join(pairs, "&")
	}
	return u.String(), fragment, nil
}

func reescape(s string) string {
	d, err := url.QueryUnescape(s)
	if err != nil {
		d = s
	}
	return url.QueryEscape(d)
}

// Deliver sends ev until it succeeds or retries are exhausted, then calls
// the fallback URL if there is one.
func (d *Deliverer) Deliver(ctx context.Context, ev Event) Outcome {
	out := d.deliverTo(ctx, ev, ev.Kind, ev.URL, ev.Method, ev.Params)
	if out.OK() || ev.FallbackURL == "" || ctx.Err() != nil {
		return out
	}
	params := cloneValues(ev.Params)
	code := ErrHTTPRetrieval
	if out.Status == 0 {
		code = ErrHTTPConnection
	}
	params.Set("ErrorCode", strconv.Itoa(code))
	errURL, _, err := CanonicalURL(ev.URL)
	if err != nil {
		errURL = ev.URL
	}
	params.Set("ErrorUrl", errURL)
	fb := ev
	fb.FirstRetryCount = 0
	fo := d.deliverTo(ctx, fb, KindFallback, ev.FallbackURL, ev.FallbackMethod, params)
	out.FallbackStatus = fo.Status
	out.FallbackBody = fo.Body
	out.FallbackType = fo.ContentType
	return out
}

func (d *Deliverer) deliverTo(ctx context.Context, ev Event, kind, rawURL, method string, params url.Values) Outcome {
	method = strings.ToUpper(method)
	if method == "" {
		method = http.MethodPost
	}
	base, fragment, err := CanonicalURL(rawURL)
	out := Outcome{URL: base, NextRetryCount: ev.FirstRetryCount}
	if err != nil {
		out.Err = err
		d.record(simapi.WebhookAttempt{Kind: kind, Event: ev.Event, AccountSID: ev.AccountSID, MessageSID: ev.MessageSID,
			Method: method, URL: rawURL, IdempotencyToken: ev.Token, Error: err.Error(), Time: time.Now().UTC()})
		return out
	}
	ov := parseOverrides(fragment, ev.Timeout, ev.Retries)
	for try := 0; try <= ov.retries; try++ {
		p := cloneValues(params)
		if ev.RetryCountParam {
			p.Set("RetryCount", strconv.Itoa(out.NextRetryCount))
		}
		status, body, ctype, err := d.attempt(ctx, ev, kind, base, method, p, ov)
		out.Attempts++
		out.NextRetryCount++
		out.Status, out.Body, out.ContentType, out.Err = status, body, ctype, err
		if ctx.Err() != nil || !ov.retryable(status, err) {
			break
		}
	}
	return out
}

func (d *Deliverer) attempt(ctx context.Context, ev Event, kind, base, method string, params url.Values, ov overrides) (int, []byte, string, error) {
	full := base
	var body io.Reader
	signParams := params
	if method == http.MethodGet {
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		full = base + sep + params.Encode()
		signParams = nil
	} else {
		body = strings.NewReader(params.Encode())
	}
	sig := twiliosig.Sign(ev.AuthToken, full, signParams)
	rec := simapi.WebhookAttempt{
		Kind: kind, Event: ev.Event, AccountSID: ev.AccountSID, MessageSID: ev.MessageSID,
		Method: method, URL: full, Params: map[string][]string(cloneValues(params)), Signature: sig,
		IdempotencyToken: ev.Token, Time: time.Now().UTC(),
	}
	if n, err := strconv.Atoi(params.Get("RetryCount")); err == nil {
		rec.RetryCount = n
	}

	actx := context.WithValue(ctx, connectTimeoutKey{}, ov.connect)
	var cancel context.CancelFunc = func() {}
	if t := ov.attemptTimeout(); t > 0 {
		actx, cancel = context.WithTimeout(actx, t)
	}
	defer cancel()
	req, err := http.NewRequestWithContext(actx, method, full, body)
	if err != nil {
		rec.Error = err.Error()
		d.record(rec)
		return 0, nil, "", fmt.Errorf("build request %q: %w", full, err)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-Twilio-Signature", sig)
	req.Header.Set("I-Twilio-Idempotency-Token", ev.Token)
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Cache-Control", "max-age=259200")
	req.Header.Set("X-Home-Region", "us1")

	start := time.Now()
	resp, err := d.client.Do(req)
	var respBody []byte
	if err == nil {
		respBody, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
		resp.Body.Close()
	}
	rec.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		rec.Error = err.Error()
		if isTimeout(err) {
			rec.Error = "timeout: " + err.Error()
		}
		d.record(rec)
		d.log.DebugContext(ctx, "webhook attempt failed", "kind", kind, "event", ev.Event, "url", base, "error", err)
		if resp != nil {
			return resp.StatusCode, nil, "", fmt.Errorf("read answer of %q: %w", base, err)
		}
		return 0, nil, "", fmt.Errorf("request %q: %w", base, err)
	}
	rec.StatusCode = resp.StatusCode
	d.record(rec)
	d.log.DebugContext(ctx, "webhook delivered", "kind", kind, "event", ev.Event, "url", base, "status", resp.StatusCode)
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return resp.StatusCode, respBody, resp.Header.Get("Content-Type"), fmt.Errorf("request %q: status %d", base, resp.StatusCode)
	}
	return resp.StatusCode, respBody, resp.Header.Get("Content-Type"), nil
}

func (d *Deliverer) record(a simapi.WebhookAttempt) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	a.ID = d.nextID
	d.attempts = append(d.attempts, a)
	if len(d.attempts) > maxLog {
		d.attempts = append([]simapi.WebhookAttempt(nil), d.attempts[len(d.attempts)-maxLog/2:]...)
	}
}

// Filter selects log entries; empty fields match anything.
type Filter struct {
	Kind       string
	Event      string
	MessageSID string
	AccountSID string
	AfterID    int64
}

// Attempts returns the logged attempts matching f, oldest first.
func (d *Deliverer) Attempts(f Filter) []simapi.WebhookAttempt {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []simapi.WebhookAttempt{}
	for _, a := range d.attempts {
		if (f.Kind == "" || a.Kind == f.Kind) && (f.Event == "" || a.Event == f.Event) &&
			(f.MessageSID == "" || a.MessageSID == f.MessageSID) && (f.AccountSID == "" || a.AccountSID == f.AccountSID) &&
			a.ID > f.AfterID {
			out = append(out, a)
		}
	}
	return out
}

// Reset forgets the log.
func (d *Deliverer) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attempts = nil
}

// cloneValues copies v keeping only the first value of each key: Twilio
// never repeats a form key and Go validators read only the first.
func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(v[k]) > 0 {
			out[k] = []string{v[k][0]}
		}
	}
	return out
}
