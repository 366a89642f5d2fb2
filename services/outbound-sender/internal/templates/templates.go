// Package templates lists the WhatsApp templates (Twilio's Content API) an
// agent may send when a chat's 24-hour window has closed: per messaging
// entry, with the credentials of the entry's connector, cached per tenant
// and connector for a few minutes (agents open the picker often; the
// templates change rarely, and Twilio's list is paged).
package templates

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
)

// Credentials answers which Twilio account sends for a messaging entry.
type Credentials interface {
	SendingCredentials(ctx context.Context, tenant, entryID string) (*configv1.GetSendingCredentialsResponse, error)
}

// Twilio lists an account's Content templates (internal/twilioapi).
type Twilio interface {
	ListContent(creds twilioapi.Credentials) ([]twilioapi.Content, error)
}

// Errors the API maps to gRPC codes.
var (
	// ErrNoEntry: the tenant has no such messaging entry (or it has no
	// usable connector).
	ErrNoEntry = errors.New("no such messaging entry")
	// ErrTwilio: Twilio could not be asked or refused the credentials.
	ErrTwilio = errors.New("twilio content api")
)

// DefaultTTL is how long a connector's list is served from memory.
const DefaultTTL = 5 * time.Minute

// Catalog serves template lists.
type Catalog struct {
	creds Credentials
	tw    Twilio
	ttl   time.Duration
	now   func() time.Time

	mu     sync.Mutex
	cached map[string]cachedList
	calls  singleflight.Group
}

type cachedList struct {
	list []*outboundv1.Template
	at   time.Time
}

// New returns a catalog; ttl 0 is DefaultTTL, now nil is time.Now.
func New(creds Credentials, tw Twilio, ttl time.Duration, now func() time.Time) *Catalog {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Catalog{creds: creds, tw: tw, ttl: ttl, now: now, cached: map[string]cachedList{}}
}

// List returns the templates of the entry's connector that can be sent on
// WhatsApp, in Twilio's order.
func (c *Catalog) List(ctx context.Context, tenant, entryID string) ([]*outboundv1.Template, error) {
	creds, err := c.creds.SendingCredentials(ctx, tenant, entryID)
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
			return nil, fmt.Errorf("%w %q in tenant %q: %s", ErrNoEntry, entryID, tenant, status.Convert(err).Message())
		}
		return nil, fmt.Errorf("sending credentials of entry %q: %w", entryID, err)
	}
	// Keyed by tenant and connector: connector ids are unique only within
	// a tenant, and entries of one connector share one account.
	key := tenant + "/" + creds.GetEntry().GetConnectorId() + "/" + creds.GetAccountSid()
	now := c.now()
	c.mu.Lock()
	hit, ok := c.cached[key]
	c.mu.Unlock()
	if ok && now.Sub(hit.at) < c.ttl {
		return hit.list, nil
	}
	v, err, _ := c.calls.Do(key, func() (any, error) {
		tc := twilioapi.Credentials{AccountSID: creds.GetAccountSid(), APIKeySID: creds.GetApiKeySid(), APIKeySecret: creds.GetApiKeySecret(),
			Region: creds.GetRegion(), Edge: creds.GetEdge()}
		contents, err := c.tw.ListContent(tc)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTwilio, err)
		}
		list := FromContents(contents)
		c.mu.Lock()
		c.cached[key] = cachedList{list: list, at: c.now()}
		c.mu.Unlock()
		return list, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]*outboundv1.Template), nil
}

// bodyTypes are the content types an agent's template is shown by, in the
// order the text is taken from: the types of Twilio's Content document
// that carry a body and that WhatsApp delivers. A template with none of
// them (a location pin, an authentication code) is not listed.
var bodyTypes = []string{
	"twilio/text", "twilio/quick-reply", "twilio/call-to-action", "twilio/list-picker", "twilio/media",
	"whatsapp/card", "twilio/card", "twilio/carousel", "twilio/catalog",
}

var placeholderRe = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// FromContents turns Content resources into the templates agents see.
func FromContents(contents []twilioapi.Content) []*outboundv1.Template {
	out := []*outboundv1.Template{}
	for _, c := range contents {
		t := &outboundv1.Template{Sid: c.SID, FriendlyName: c.FriendlyName, Language: c.Language}
		for typ := range c.Types {
			t.Types = append(t.Types, typ)
		}
		sort.Strings(t.Types)
		for _, typ := range bodyTypes {
			obj, ok := c.Types[typ].(map[string]any)
			if !ok {
				continue
			}
			body, _ := obj["body"].(string)
			if body == "" && typ == "twilio/card" {
				body, _ = obj["title"].(string)
			}
			if body == "" {
				continue
			}
			t.ContentType, t.Body, t.Actions = typ, body, actions(obj)
			break
		}
		if t.Body == "" {
			continue
		}
		seen := map[string]bool{}
		for _, m := range placeholderRe.FindAllStringSubmatch(t.Body, -1) {
			if seen[m[1]] {
				continue
			}
			seen[m[1]] = true
			def, _ := c.Variables[m[1]].(string)
			t.Variables = append(t.Variables, &outboundv1.TemplateVariable{Name: m[1], DefaultValue: def})
		}
		out = append(out, t)
	}
	return out
}

// actions are the titles of a template's buttons and list items.
func actions(obj map[string]any) []string {
	var out []string
	for _, field := range []string{"actions", "items"} {
		list, _ := obj[field].([]any)
		for _, a := range list {
			m, _ := a.(map[string]any)
			for _, k := range []string{"title", "item"} {
				if s, _ := m[k].(string); s != "" {
					out = append(out, s)
					break
				}
			}
		}
	}
	return out
}
