// Package twilioapi builds twilio-go clients for a connector's credentials
// and region/edge. In development and tests every Twilio host is rewritten
// to the emulator by the HTTP transport, never by changing twilio-go's URLs.
package twilioapi

import (
	"net/http"
	"net/url"
	"time"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
)

// Credentials of one Twilio account, as a connector holds them.
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

// NewClient returns a REST client for creds. baseURL, when non-empty,
// redirects all calls there (the emulator).
func NewClient(creds Credentials, baseURL *url.URL, timeout time.Duration) *twilio.RestClient {
	var rt http.RoundTripper = http.DefaultTransport
	if baseURL != nil {
		rt = Rewrite{Target: baseURL}
	}
	base := &client.Client{
		Credentials: client.NewCredentials(creds.APIKeySID, creds.APIKeySecret),
		HTTPClient:  &http.Client{Transport: rt, Timeout: timeout},
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
