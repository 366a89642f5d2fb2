// Package contacts keeps what outbound-sender must respect about each
// customer before calling Twilio: consent (STOP/START, and Twilio's 21610
// answers) and the WhatsApp 24-hour customer-service window (opened by each
// inbound message, closed after 24 hours or when Twilio reports 63016).
//
// Twilio keys both by sender and customer: an opt-out applies to the number
// the customer wrote to, or to the whole Messaging Service when the number
// is in one; the window runs per business number and customer. A
// conversation names its sender by up to three scope keys — its Messaging
// Service ("mg:MG…"), its business number ("num:+1…"), and on the
// Conversations path its Conversations service ("svc:IS…", since the
// customer's messages there do not carry the business number). A change is
// recorded under every key of the conversation it was seen on; a send is
// refused when any key of its conversation says so. On the Conversations
// path this is broader than Twilio (an opt-out covers the service's other
// numbers for that customer), which errs on the side of not texting.
//
// One document per tenant and customer ("<tenant>/<customer>") holds every
// scope, so a send reads one document by _id.
package contacts

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// Window is WhatsApp's customer-service window.
const Window = 24 * time.Hour

// Keys returns the customer and the scope keys of a conversation.
func Keys(c *messagingv1.ConversationRef) (customer string, keys []string) {
	if mg := c.GetMessagingServiceSid(); mg != "" {
		keys = append(keys, "mg:"+mg)
	}
	if b := c.GetBusinessAddress(); b != "" {
		keys = append(keys, "num:"+b)
	}
	if c.GetPath() == messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS && c.GetChatServiceSid() != "" {
		keys = append(keys, "svc:"+c.GetChatServiceSid())
	}
	return c.GetCustomerAddress(), keys
}

// Scope is what is known for one sender scope and customer.
type Scope struct {
	OptedOut         bool      `bson:"opted_out"`
	ConsentSource    string    `bson:"consent_source,omitempty"`
	ConsentChangedAt time.Time `bson:"consent_changed_at,omitempty"`
	LastInboundAt    time.Time `bson:"last_inbound_at,omitempty"`
	// WindowClosedAt is when Twilio said the window was closed (63016);
	// only an inbound message after it opens the window again.
	WindowClosedAt time.Time `bson:"window_closed_at,omitempty"`
}

// Contact is one customer of a tenant.
type Contact struct {
	ID     string           `bson:"_id"`
	Scopes map[string]Scope `bson:"scopes"`
}

// State is the verdict for one conversation at one time.
type State struct {
	OptedOut         bool
	ConsentSource    string
	ConsentChangedAt time.Time
	// WindowApplies on WhatsApp; WindowOpen until WindowExpiresAt.
	WindowApplies   bool
	WindowOpen      bool
	WindowExpiresAt time.Time
	LastInboundAt   time.Time
}

// StateOf combines the scopes of keys at now. c may be nil (never seen).
func StateOf(c *Contact, keys []string, channel messagingv1.Channel, now time.Time) State {
	st := State{WindowApplies: channel == messagingv1.Channel_CHANNEL_WHATSAPP}
	var closed time.Time
	if c != nil {
		for _, k := range keys {
			s, ok := c.Scopes[k]
			if !ok {
				continue
			}
			if s.ConsentChangedAt.After(st.ConsentChangedAt) {
				st.ConsentSource, st.ConsentChangedAt = s.ConsentSource, s.ConsentChangedAt
			}
			st.OptedOut = st.OptedOut || s.OptedOut
			if s.LastInboundAt.After(st.LastInboundAt) {
				st.LastInboundAt = s.LastInboundAt
			}
			if s.WindowClosedAt.After(closed) {
				closed = s.WindowClosedAt
			}
		}
	}
	if st.WindowApplies && !st.LastInboundAt.IsZero() && st.LastInboundAt.After(closed) {
		exp := st.LastInboundAt.Add(Window)
		if now.Before(exp) {
			st.WindowOpen, st.WindowExpiresAt = true, exp
		}
	}
	return st
}

// Store is the contacts collection, with a read cache for the send path.
//
// Every change is written here and then announced (OutboundContactUpdated);
// each process drops its cached copy of a customer when it writes one and
// when it sees the announcement (Invalidate), and after CacheTTL at the
// latest. A send on another replica in the milliseconds between a STOP
// being written and announced can still go out: Twilio itself refuses SMS to
// an opted-out customer (21610), which the ledger records.
type Store struct {
	c *mongo.Collection
	// locks serialise this process's updates of one customer: MongoDB
	// applies each update atomically, FerretDB reads and rewrites the
	// document, so two concurrent updates of one customer could lose one
	// there. Customers on different stripes update concurrently.
	locks [64]sync.Mutex

	cmu   sync.Mutex
	cache map[string]cached
	gen   map[string]uint64
	now   func() time.Time
}

type cached struct {
	c       *Contact
	expires time.Time
}

// CacheTTL bounds how long a cached customer is used without an update.
const CacheTTL = 30 * time.Second

// New returns the store in db.
func New(db *mongo.Database) *Store {
	return &Store{c: db.Collection("contacts"), cache: map[string]cached{}, gen: map[string]uint64{}, now: time.Now}
}

func id(tenant, customer string) string { return tenant + "/" + customer }

// Invalidate drops the cached copy of a customer.
func (s *Store) Invalidate(tenant, customer string) {
	k := id(tenant, customer)
	s.cmu.Lock()
	defer s.cmu.Unlock()
	delete(s.cache, k)
	s.gen[k]++
	if len(s.gen) > 100000 { // bounded: stale generations only matter for in-flight reads
		s.gen = map[string]uint64{}
	}
}

// Get reads a customer through the cache; nil when never seen.
func (s *Store) Get(ctx context.Context, tenant, customer string) (*Contact, error) {
	k := id(tenant, customer)
	now := s.now()
	s.cmu.Lock()
	if e, ok := s.cache[k]; ok && now.Before(e.expires) {
		s.cmu.Unlock()
		return e.c, nil
	}
	gen := s.gen[k]
	s.cmu.Unlock()
	c, err := s.GetFresh(ctx, tenant, customer)
	if err != nil {
		return nil, err
	}
	s.cmu.Lock()
	if s.gen[k] == gen {
		if len(s.cache) > 100000 {
			s.cache = map[string]cached{}
		}
		s.cache[k] = cached{c: c, expires: now.Add(CacheTTL)}
	}
	s.cmu.Unlock()
	return c, nil
}

// GetFresh reads a customer from the database; nil when never seen.
func (s *Store) GetFresh(ctx context.Context, tenant, customer string) (*Contact, error) {
	var c Contact
	err := s.c.FindOne(ctx, bson.M{"_id": id(tenant, customer)}).Decode(&c)
	if mongodb.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read contact: %w", err)
	}
	return &c, nil
}

// field names a scope's field; scope keys hold no dots ("num:+1…",
// "mg:MG…", "svc:IS…", "num:whatsapp:+1…").
func field(key, name string) string {
	return "scopes." + strings.ReplaceAll(key, ".", "_") + "." + name
}

func (s *Store) lock(k string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(k))
	return &s.locks[h.Sum32()%uint32(len(s.locks))]
}

// update applies upd to the customer's document by _id (operators that
// commute: $set of a consent change, $max of times) and returns the
// document as written, which also becomes this process's cached copy, so
// announcing the change needs no read-back.
func (s *Store) update(ctx context.Context, tenant, customer string, upd bson.M) (*Contact, error) {
	k := id(tenant, customer)
	mu := s.lock(k)
	mu.Lock()
	defer mu.Unlock()
	var c Contact
	err := s.c.FindOneAndUpdate(ctx, bson.M{"_id": k}, upd,
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&c)
	if err != nil {
		s.Invalidate(tenant, customer)
		return nil, fmt.Errorf("update contact: %w", err)
	}
	s.cmu.Lock()
	s.gen[k]++ // reads that started before this write must not cache what they got
	if len(s.cache) > 100000 {
		s.cache = map[string]cached{}
	}
	s.cache[k] = cached{c: &c, expires: s.now().Add(CacheTTL)}
	s.cmu.Unlock()
	return &c, nil
}

// SetConsent records an opt-out (optedOut) or opt-in under every key and
// returns the customer as stored.
func (s *Store) SetConsent(ctx context.Context, tenant, customer string, keys []string, optedOut bool, source string, at time.Time) (*Contact, error) {
	set := bson.M{}
	for _, k := range keys {
		set[field(k, "opted_out")] = optedOut
		set[field(k, "consent_source")] = source
		set[field(k, "consent_changed_at")] = at
	}
	if len(set) == 0 {
		return s.Get(ctx, tenant, customer)
	}
	return s.update(ctx, tenant, customer, bson.M{"$set": set})
}

// TouchGranularity is how stale a recorded inbound time may be before a
// customer's next WhatsApp message is written: a customer who writes every
// few seconds costs one write per CacheTTL, not one per message. The window
// then looks at most this much shorter than it is, never longer, so a send
// is never allowed outside it.
const TouchGranularity = time.Minute

// TouchInbound records an inbound message at at under every key and
// returns the customer as stored; nil, and nothing written, when this
// process wrote or read the customer within CacheTTL with an open window
// and an inbound time under every key no more than TouchGranularity before
// at (nothing anyone needs to hear about changed).
func (s *Store) TouchInbound(ctx context.Context, tenant, customer string, keys []string, at time.Time) (*Contact, error) {
	max := bson.M{}
	for _, k := range keys {
		max[field(k, "last_inbound_at")] = at
	}
	if len(max) == 0 {
		return s.Get(ctx, tenant, customer)
	}
	if s.recentlyTouched(tenant, customer, keys, at) {
		return nil, nil
	}
	return s.update(ctx, tenant, customer, bson.M{"$max": max})
}

func (s *Store) recentlyTouched(tenant, customer string, keys []string, at time.Time) bool {
	s.cmu.Lock()
	e, ok := s.cache[id(tenant, customer)]
	s.cmu.Unlock()
	if !ok || e.c == nil || !s.now().Before(e.expires) {
		return false
	}
	for _, k := range keys {
		sc, ok := e.c.Scopes[k]
		if !ok || sc.LastInboundAt.Before(at.Add(-TouchGranularity)) || !sc.LastInboundAt.After(sc.WindowClosedAt) {
			return false
		}
	}
	return true
}

// CloseWindow records that Twilio found the window closed at at and
// returns the customer as stored.
func (s *Store) CloseWindow(ctx context.Context, tenant, customer string, keys []string, at time.Time) (*Contact, error) {
	max := bson.M{}
	for _, k := range keys {
		max[field(k, "window_closed_at")] = at
	}
	if len(max) == 0 {
		return s.Get(ctx, tenant, customer)
	}
	return s.update(ctx, tenant, customer, bson.M{"$max": max})
}

// Keyword classes.
const (
	KeywordNone  = ""
	KeywordStop  = "STOP"
	KeywordStart = "START"
	KeywordHelp  = "HELP"
)

// Twilio's default keywords on long codes and toll-free numbers: a single
// word, any case (docs/twilio-wire-facts §8).
var keywords = map[string]string{
	"STOP": KeywordStop, "STOPALL": KeywordStop, "UNSUBSCRIBE": KeywordStop, "CANCEL": KeywordStop,
	"END": KeywordStop, "QUIT": KeywordStop, "REVOKE": KeywordStop, "OPTOUT": KeywordStop,
	"START": KeywordStart, "YES": KeywordStart, "UNSTOP": KeywordStart,
	"HELP": KeywordHelp, "INFO": KeywordHelp,
}

// Keyword classifies an inbound body by Twilio's default keywords: the
// whole message, trimmed, must be one of them ("STOP please" is not).
func Keyword(body string) string {
	return keywords[strings.ToUpper(strings.TrimSpace(body))]
}
