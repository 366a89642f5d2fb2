package runner

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// Web Request limits.
const (
	// MaxWebResponse is the largest response body a Web Request reads;
	// a longer one takes the failure branch.
	MaxWebResponse = 64 << 10
	// DefaultWebTimeout bounds a Web Request without a timeout.
	DefaultWebTimeout = 10 * time.Second
	maxRedirects      = 5
	maxMappedValue    = 1024
)

// WebOptions configure the Web Request activity.
type WebOptions struct {
	// AllowHosts may be reached even when they resolve to addresses the
	// guard refuses (loopback, private, link-local, unique-local, cloud
	// metadata): "host" for every tenant, "tenant/host" for one. Host
	// names match the URL's host exactly, ignoring case.
	AllowHosts []string
	// MaxResponse overrides MaxWebResponse (tests); zero means MaxWebResponse.
	MaxResponse int64
	// RootCAs the HTTPS calls trust (tests); nil means the system's.
	RootCAs *x509.CertPool
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// webClient makes Web Requests through the SSRF guard.
type webClient struct {
	allow    map[string]bool // "host" or "tenant/host", lower case
	max      int64
	resolver *net.Resolver
	roots    *x509.CertPool
}

func newWebClient(o WebOptions) *webClient {
	w := &webClient{allow: map[string]bool{}, max: o.MaxResponse, resolver: o.Resolver, roots: o.RootCAs}
	for _, h := range o.AllowHosts {
		w.allow[strings.ToLower(strings.TrimSpace(h))] = true
	}
	if w.max <= 0 {
		w.max = MaxWebResponse
	}
	if w.resolver == nil {
		w.resolver = net.DefaultResolver
	}
	return w
}

func (w *webClient) allowed(tenant, host string) bool {
	host = strings.ToLower(host)
	return w.allow[host] || w.allow[strings.ToLower(tenant)+"/"+host]
}

// errRefused: the guard refused an address.
var errRefused = errors.New("refused address")

// metadata addresses that are not in a refused range already.
var metadata = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),    // carrier-grade NAT; Alibaba's metadata 100.100.100.200
	netip.MustParsePrefix("168.63.129.16/32"), // Azure's wire server
	netip.MustParsePrefix("192.0.0.0/24"),     // IETF protocol assignments (Oracle's 192.0.0.192)
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 of any IPv4 address
}

// Refused reports whether the guard refuses addr: loopback, private,
// link-local, unique-local, unspecified, multicast and cloud metadata
// addresses (169.254.169.254 is link-local; fd00:ec2::254 unique-local).
func Refused(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() {
		return true
	}
	for _, p := range metadata {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// client for one request of tenant: its dialer resolves the host, refuses
// it when any of its addresses is refused (unless the tenant allows the
// host), and connects to the checked addresses only, so neither a
// redirect nor a second DNS answer reaches a refused address.
// The workflow's headers (they may carry credentials) go to the first
// request's host only, not to a redirect elsewhere.
func (w *webClient) client(tenant string, timeout time.Duration, headers []string) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		if w.allowed(tenant, host) {
			return dialer.DialContext(ctx, network, address)
		}
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
		} else {
			ips, err := w.resolver.LookupNetIP(ctx, "ip", host)
			if err != nil {
				return nil, fmt.Errorf("resolve %q: %w", host, err)
			}
			addrs = ips
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolve %q: no addresses", host)
		}
		for _, a := range addrs {
			if Refused(a) {
				return nil, fmt.Errorf("%w: %s resolves to %s (loopback, private, link-local or metadata; allow the host explicitly to reach it)", errRefused, host, a.Unmap())
			}
		}
		var last error
		for _, a := range addrs {
			c, err := dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			last = err
		}
		return nil, last
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                  nil, // a proxy would dial for us, past the guard
			DialContext:            dial,
			TLSClientConfig:        &tls.Config{RootCAs: w.roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    timeout,
			ResponseHeaderTimeout:  timeout,
			MaxResponseHeaderBytes: 64 << 10,
			DisableKeepAlives:      true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %q URL", req.URL.Scheme)
			}
			if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
				for _, h := range headers {
					req.Header.Del(h)
				}
			}
			return nil
		},
	}
}

// webResult is what a Web Request did.
type webResult struct {
	status int
	body   []byte
	// failure is the reason of the failure branch ("" on success).
	failure string
	params  map[string]*string // nil value: remove the parameter
}

// webRequest runs Web Request activity a of st. It never fails the
// session: whatever goes wrong takes the failure branch with a reason.
func (r *Runner) webRequest(ctx context.Context, st *State, a *workflowdef.Activity, secrets map[string]string) webResult {
	timeout := a.DurationParam("timeout", DefaultWebTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := a.StringParam("method")
	if method == "" {
		method = http.MethodGet
	}
	raw := expandWith(st, r, a.StringParam("url"), urlEscape)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return webResult{failure: "the URL is not an absolute http(s) URL after expanding its parameters"}
	}
	var body io.Reader
	tmpl := a.StringParam("body")
	if tmpl != "" {
		esc := func(s string) string { return s }
		if t := strings.TrimSpace(tmpl); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
			esc = jsonEscape
		}
		body = strings.NewReader(expandWith(st, r, tmpl, esc))
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return webResult{failure: "the request cannot be built: " + err.Error()}
	}
	if tmpl != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "switchboard-workflow-runner")
	// The same for a repeated run of this step (a redelivered event).
	req.Header.Set("Idempotency-Key", st.SessionID+"-"+a.ID+visitSuffix(st.Visits[a.ID]))
	var names []string
	for k, v := range a.StringMapParam("headers") {
		req.Header.Set(k, r.expandHeader(st, v, secrets))
		names = append(names, k)
	}
	res, err := r.web.client(st.Tenant, timeout, names).Do(req)
	if err != nil {
		switch {
		case errors.Is(err, errRefused):
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return webResult{failure: err.Error()}
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return webResult{failure: fmt.Sprintf("no response within %s", timeout)}
		}
		return webResult{failure: "request failed: " + scrub(err, u)}
	}
	defer res.Body.Close()
	out := webResult{status: res.StatusCode}
	b, err := io.ReadAll(io.LimitReader(res.Body, r.web.max+1))
	switch {
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || isTimeout(err)):
		out.failure = fmt.Sprintf("response body not complete within %s", timeout)
		return out
	case err != nil:
		out.failure = "reading the response: " + scrub(err, u)
		return out
	case int64(len(b)) > r.web.max:
		out.failure = fmt.Sprintf("response body larger than %d bytes, cut off", r.web.max)
		return out
	}
	out.body = b
	if res.StatusCode < 200 || res.StatusCode > 299 {
		out.failure = "HTTP status " + strconv.Itoa(res.StatusCode)
		return out
	}
	mapping := a.StringMapParam("response_mapping")
	if len(mapping) == 0 {
		return out
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		out.failure = "the response is not JSON"
		return out
	}
	out.params = make(map[string]*string, len(mapping))
	for param, path := range mapping {
		v, ok := JSONPath(doc, path)
		if !ok {
			out.params[param] = nil
			continue
		}
		if r := []rune(v); len(r) > maxMappedValue {
			v = string(r[:maxMappedValue])
		}
		out.params[param] = &v
	}
	return out
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// scrub drops the URL (its query may carry parameters) from err's text.
func scrub(err error, u *url.URL) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return strings.ReplaceAll(err.Error(), u.String(), u.Host)
}

// JSONPath finds path (dot-separated keys; a number indexes a list) in
// doc and renders it: strings as they are, numbers and booleans as JSON
// text, objects and lists as compact JSON, null as "".
func JSONPath(doc any, path string) (string, bool) {
	cur := doc
	for _, key := range strings.Split(path, ".") {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[key]
			if !ok {
				return "", false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				return "", false
			}
			cur = x[i]
		default:
			return "", false
		}
	}
	switch x := cur.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return "", false
	}
	return string(b), true
}

func expandWith(st *State, r *Runner, s string, esc func(string) string) string {
	return expand(s, escaped(st.Params, esc), func(name string) (string, bool) {
		v, ok := r.system(st, name)
		return esc(v), ok
	})
}

func escaped(params map[string]string, esc func(string) string) map[string]string {
	out := make(map[string]string, len(params))
	for k, v := range params {
		out[k] = esc(v)
	}
	return out
}

// urlEscape escapes a value for any part of a URL.
func urlEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// jsonEscape escapes a value as the content of a JSON string.
func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// secretNotSet: a tenant secret a step needs is not there; the step
// takes its failure branch with this as the reason.
type secretNotSet struct{ name, why string }

func (e *secretNotSet) Error() string {
	if e.why != "" {
		return e.why
	}
	return fmt.Sprintf("tenant secret %q is not set", e.name)
}

// secret reads one of the tenant's secrets from config. A secret that is
// not set is a *secretNotSet; an outage is any other error (retried).
func (r *Runner) secret(ctx context.Context, tenant, name string) (string, error) {
	if r.secrets == nil {
		return "", &secretNotSet{name: name, why: "tenant secrets are not available to workflow-runner"}
	}
	res, err := r.secrets.GetTenantSecret(ctx, &configv1.GetTenantSecretRequest{TenantId: tenant, Name: name})
	switch status.Code(err) {
	case codes.OK:
		return res.GetValue(), nil
	case codes.NotFound, codes.InvalidArgument:
		return "", &secretNotSet{name: name}
	}
	return "", fmt.Errorf("get tenant secret %q: %w", name, err)
}

// headerSecrets reads the secrets a Web Request's header values reference
// (${secret.NAME}).
func (r *Runner) headerSecrets(ctx context.Context, st *State, a *workflowdef.Activity) (map[string]string, error) {
	var out map[string]string
	for _, v := range a.StringMapParam("headers") {
		for _, m := range paramRef.FindAllStringSubmatch(v, -1) {
			name, ok := strings.CutPrefix(m[1], workflowdef.SecretPrefix)
			if !ok {
				continue
			}
			if _, done := out[name]; done {
				continue
			}
			val, err := r.secret(ctx, st.Tenant, name)
			if err != nil {
				return nil, err
			}
			if out == nil {
				out = map[string]string{}
			}
			out[name] = val
		}
	}
	return out, nil
}

// expandHeader fills a header value in one pass: ${secret.NAME} with the
// tenant's secret, other references as parameters. A substituted value is
// never scanned again, so a customer's "${secret.x}" stays text.
func (r *Runner) expandHeader(st *State, v string, secrets map[string]string) string {
	return paramRef.ReplaceAllStringFunc(v, func(m string) string {
		if name, ok := strings.CutPrefix(m[2:len(m)-1], workflowdef.SecretPrefix); ok {
			return oneLine(secrets[name])
		}
		return expandWith(st, r, m, oneLine)
	})
}

// oneLine keeps a header value on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ", "\x00", "").Replace(s)
}

// applyWeb stores what a Web Request returned and picks its branch.
func (r *Runner) applyWeb(st *State, a *workflowdef.Activity, res webResult) string {
	if p := a.StringParam("status_parameter"); p != "" {
		st.Params[p] = strconv.Itoa(res.status)
	}
	if p := a.StringParam("error_parameter"); p != "" {
		st.Params[p] = res.failure
	}
	if p := a.StringParam("save_to"); p != "" && res.failure == "" {
		st.Params[p] = string(res.body)
	}
	for k, v := range res.params {
		if v == nil {
			delete(st.Params, k)
		} else {
			st.Params[k] = *v
		}
	}
	if res.failure != "" {
		// Never the body or header values: they may carry secrets.
		r.log.Info("web request failed", "tenant", st.Tenant, "session", st.SessionID, "activity", a.ID,
			"status", res.status, "reason", res.failure)
		return "failure"
	}
	return "success"
}
