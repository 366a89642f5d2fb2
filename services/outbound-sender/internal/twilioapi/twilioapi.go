// Package twilioapi is outbound-sender's adapter to Twilio's REST API,
// built on twilio-go: it creates messages (Conversations or Programmable
// Messaging), finds a message Twilio may already have created for a request
// (reconciliation after a crash or an ambiguous answer), and classifies
// Twilio's errors. In development and tests every Twilio host is rewritten
// to the emulator by the HTTP transport, never by changing twilio-go's URLs.
package twilioapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"sync"
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

func (c Credentials) key() string {
	h := sha256.Sum256([]byte(c.AccountSID + "\x00" + c.APIKeySID + "\x00" + c.APIKeySecret + "\x00" + c.Region + "\x00" + c.Edge))
	return hex.EncodeToString(h[:])
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
// connections enough for many concurrent sends (http.DefaultTransport keeps
// only two idle connections per host, so concurrent senders would keep
// opening new ones).
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

// Options of a client factory.
type Options struct {
	// BaseURL redirects every call there (the emulator); nil for Twilio.
	BaseURL *url.URL
	// Timeout bounds one HTTP call (twilio-go takes no context).
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

// Clients caches one REST client per set of credentials, so connections are
// reused across sends. A rotated secret is a new key; old clients are
// dropped after idle.
type Clients struct {
	opts Options
	mu   sync.Mutex
	byID map[string]*cached
}

type cached struct {
	c    *twilio.RestClient
	used time.Time
}

// NewClients returns a client cache. The transport is shared by all.
func NewClients(o Options) *Clients {
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	return &Clients{opts: o, byID: map[string]*cached{}}
}

const clientIdle = 10 * time.Minute

// For returns the client for creds.
func (cs *Clients) For(creds Credentials) *twilio.RestClient {
	k := creds.key()
	now := time.Now()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.byID[k]; ok {
		c.used = now
		return c.c
	}
	for id, c := range cs.byID {
		if now.Sub(c.used) > clientIdle {
			delete(cs.byID, id)
		}
	}
	c := NewClient(creds, cs.opts)
	cs.byID[k] = &cached{c: c, used: now}
	return c
}
