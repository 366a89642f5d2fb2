// Package twilioclient builds twilio-go REST clients for a connector's
// credentials: the API key, and the region and edge whose hosts the calls
// go to (api.<edge>.<region>.twilio.com, conversations.<edge>.<region>.…;
// us1 without an edge is Twilio's default api.twilio.com). In development
// and tests every Twilio host is rewritten to the emulator by the HTTP
// transport, never by changing twilio-go's URLs, and the host twilio-go
// meant to call travels in X-Original-Host.
package twilioclient

import (
	"net"
	"net/http"
	"net/url"
	"time"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
)

// Credentials of one Twilio account, as a connector holds them. APIKeySID
// may also be the Account SID, with the Auth Token as the secret.
type Credentials struct {
	AccountSID   string
	APIKeySID    string
	APIKeySecret string
	Region       string
	Edge         string
}

// OriginalHostHeader carries the host twilio-go meant to call when the
// transport redirects the request to an emulator.
const OriginalHostHeader = "X-Original-Host"

// Rewrite sends every request to target (scheme and host) instead of
// Twilio, recording the intended host in X-Original-Host.
type Rewrite struct {
	Target *url.URL
	Base   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t Rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(OriginalHostHeader, r.URL.Host)
	r.URL.Scheme, r.URL.Host, r.Host = t.Target.Scheme, t.Target.Host, t.Target.Host
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// NewTransport returns the HTTP transport for Twilio calls: keep-alive
// connections enough for many concurrent calls (http.DefaultTransport keeps
// only two idle connections per host).
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Options of a client.
type Options struct {
	// BaseURL redirects every call there (the emulator); nil for Twilio.
	BaseURL *url.URL
	// Timeout bounds one HTTP call (twilio-go takes no context); 0 is 10 s.
	Timeout time.Duration
	// Transport carries the calls; nil uses NewTransport().
	Transport http.RoundTripper
}

// NewClient returns a REST client for creds.
func NewClient(creds Credentials, o Options) *twilio.RestClient {
	rt := o.Transport
	if rt == nil {
		rt = NewTransport()
	}
	if o.BaseURL != nil {
		rt = Rewrite{Target: o.BaseURL, Base: rt}
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	base := &client.Client{
		Credentials: client.NewCredentials(creds.APIKeySID, creds.APIKeySecret),
		HTTPClient:  &http.Client{Transport: rt, Timeout: o.Timeout},
	}
	base.SetAccountSid(creds.AccountSID)
	c := twilio.NewRestClientWithParams(twilio.ClientParams{Client: base})
	// Always set both: twilio-go otherwise picks them up from TWILIO_EDGE
	// and TWILIO_REGION in the environment. us1 is Twilio's default host.
	region := creds.Region
	if region == "us1" && creds.Edge == "" {
		region = ""
	}
	c.SetRegion(region)
	c.SetEdge(creds.Edge)
	return c
}

// Host is the host a client for region and edge calls for product ("api",
// "conversations"): product.twilio.com for us1 without an edge, else
// product.<edge>.<region>.twilio.com (the region defaulting to us1), as
// twilio-go builds it.
func Host(product, region, edge string) string {
	if region == "us1" && edge == "" {
		region = ""
	}
	if edge != "" && region == "" {
		region = "us1"
	}
	h := product
	if edge != "" {
		h += "." + edge
	}
	if region != "" {
		h += "." + region
	}
	return h + ".twilio.com"
}
