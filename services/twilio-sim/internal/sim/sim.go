// Package sim is the Twilio emulator: its state (accounts, messages,
// conversations, opt-outs, WhatsApp windows), Twilio's REST endpoints, the
// webhooks it sends and the /sim API that plays the customer's phone.
package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/webhook"
)

// Options configure an Engine.
type Options struct {
	Accounts []simapi.Account
	// ConversationsTimeout bounds each Conversations webhook request (Twilio: 5 s).
	ConversationsTimeout time.Duration
	// MessagingTimeout bounds each Messaging webhook and status callback (Twilio: 15 s).
	MessagingTimeout time.Duration
	// WebhookRetries is how often a request is repeated after a connection
	// failure (Twilio: once).
	WebhookRetries int
	// StatusDelay is the wait before each status change of an outbound message.
	StatusDelay time.Duration
	// WebhookClient sends webhooks; nil builds one.
	WebhookClient *http.Client
	// Contract, when set, checks every REST exchange.
	Contract Contract
}

// Contract checks REST requests and responses against Twilio's OpenAPI
// descriptions and keeps the violations it finds.
type Contract interface {
	// Wrap returns h with every exchange checked.
	Wrap(h http.Handler) http.Handler
	Violations() []simapi.Violation
	// Exchanges are the REST calls checked, with the host each was meant for.
	Exchanges() []simapi.Exchange
	Reset()
}

// Engine is the emulator.
type Engine struct {
	log   *slog.Logger
	opts  Options
	hooks *webhook.Deliverer
	clock clock
	// started dates the accounts and numbers.
	started time.Time

	// bg bounds background work (status progressions); cancelled by Close.
	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed bool

	mu            sync.Mutex
	accounts      map[string]*account
	keys          map[string]string // API key SID → account SID
	numbers       map[string]*account
	messages      map[string]*message        // SM/MM/IM SID → message
	history       map[string][]*message      // account SID → its 2010-04-01 messages, by seq
	convList      map[string][]*conversation // account SID → its conversations, by seq
	seq           uint64                     // last seq given to a message or conversation; never reset
	outbound      []*message                 // everything the business sent, oldest first
	conversations map[string]*conversation
	pairs         map[pair]*conversation // active conversation of (customer, proxy)
	optOuts       map[optKey]bool
	windows       map[pair]time.Time // (customer, business) → latest inbound
	lastSender    map[pair]string    // (customer, MG) → pool number last written to
	media         map[string]*media
	faults        []*simapi.Fault
	delivery      simapi.DeliveryDefaults
	rules         []*simapi.DeliveryRule
}

// pair is a customer address and a business address.
type pair struct{ customer, business string }

// optKey is an opt-out block: the sender (a number, or a Messaging Service
// for its whole pool) and the customer.
type optKey struct{ scope, customer string }

// New returns an Engine. Accounts must have been validated.
func New(opts Options, log *slog.Logger) *Engine {
	bg, stop := context.WithCancel(context.Background())
	e := &Engine{
		log:   log,
		opts:  opts,
		hooks: webhook.New(opts.WebhookClient, log),
		bg:    bg,
		stop:  stop,
	}
	e.delivery = simapi.DeliveryDefaults{DelayMS: int(opts.StatusDelay / time.Millisecond)}
	e.started = time.Now().UTC().Truncate(time.Second)
	e.resetState()
	e.accounts = map[string]*account{}
	for _, a := range opts.Accounts {
		e.accounts[a.AccountSID] = newAccount(a)
	}
	e.reindex()
	return e
}

// resetState forgets messages, conversations, logs and faults; accounts stay.
func (e *Engine) resetState() {
	e.messages = map[string]*message{}
	e.history = map[string][]*message{}
	e.outbound = nil
	e.conversations = map[string]*conversation{}
	e.convList = map[string][]*conversation{}
	e.pairs = map[pair]*conversation{}
	e.optOuts = map[optKey]bool{}
	e.windows = map[pair]time.Time{}
	e.lastSender = map[pair]string{}
	e.media = map[string]*media{}
	e.faults = nil
	e.rules = nil
	e.delivery = simapi.DeliveryDefaults{DelayMS: int(e.opts.StatusDelay / time.Millisecond)}
}

// reindex rebuilds the key and number indexes after accounts changed.
func (e *Engine) reindex() {
	e.keys = map[string]string{}
	e.numbers = map[string]*account{}
	for sid, a := range e.accounts {
		for k := range a.APIKeys {
			e.keys[k] = sid
		}
		for addr := range a.numbers {
			e.numbers[addr] = a
		}
	}
}

// Close stops background work and waits for it.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.stop()
	e.wg.Wait()
}

// goBackground runs f unless the engine is closing.
func (e *Engine) goBackground(f func(ctx context.Context)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f(e.bg)
	}()
}

// Handler serves Twilio's REST API and the /sim API.
func (e *Engine) Handler() http.Handler {
	rest := http.NewServeMux()
	e.routeREST(rest)
	var restH http.Handler = e.restMiddleware(rest)
	if e.opts.Contract != nil {
		restH = e.opts.Contract.Wrap(restH)
	}

	mux := http.NewServeMux()
	mux.Handle("/2010-04-01/", restH)
	mux.Handle("/v1/", restH)
	e.routeSim(mux)
	return mux
}

// clock is the emulator's time: real time plus an offset tests can advance.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().UTC().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func (c *clock) state() simapi.Clock {
	c.mu.Lock()
	off := c.offset
	c.mu.Unlock()
	return simapi.Clock{Now: time.Now().UTC().Add(off), OffsetSeconds: off.Seconds()}
}

// newSID returns a Twilio-shaped SID: prefix and 32 lowercase hex digits.
func newSID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Date formats Twilio uses.
const (
	rfc2822   = "Mon, 02 Jan 2006 15:04:05 -0700"
	iso8601   = "2006-01-02T15:04:05Z"
	iso8601ms = "2006-01-02T15:04:05.000Z"
)

// twilioError is Twilio's error body.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
}

func writeTwilioError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, twilioError{Code: code, Message: msg, MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), Status: status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeSimError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, simapi.Error{Error: err.Error()})
}

// decodeJSON reads a JSON request body into v, rejecting unknown fields so
// typos in test setups surface.
func decodeJSON(r *http.Request, v any) error {
	return decodeJSONLimit(r, v, 4<<20)
}

// decodeJSONLimit is decodeJSON for a body of at most limit bytes.
func decodeJSONLimit(r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode request body: %w", err)
	}
	return nil
}

var errNotFound = errors.New("not found")
