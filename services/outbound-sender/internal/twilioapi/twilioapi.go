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
	"net/http"
	"sync"
	"time"

	twilio "github.com/twilio/twilio-go"

	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
)

// Credentials of one Twilio account, as a connector holds them.
type Credentials = twilioclient.Credentials

func credentialsKey(c Credentials) string {
	h := sha256.Sum256([]byte(c.AccountSID + "\x00" + c.APIKeySID + "\x00" + c.APIKeySecret + "\x00" + c.Region + "\x00" + c.Edge))
	return hex.EncodeToString(h[:])
}

// OriginalHostHeader carries the host twilio-go meant to call when the
// transport redirects the request to an emulator.
const OriginalHostHeader = twilioclient.OriginalHostHeader

// Options of a client factory (pkg/twilioclient).
type Options = twilioclient.Options

// NewTransport returns the HTTP transport for Twilio calls.
func NewTransport() *http.Transport { return twilioclient.NewTransport() }

// NewClient returns a REST client for creds, on their region's hosts.
func NewClient(creds Credentials, o Options) *twilio.RestClient {
	return twilioclient.NewClient(creds, o)
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
	k := credentialsKey(creds)
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
