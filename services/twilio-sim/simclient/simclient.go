// Package simclient drives the Twilio emulator's /sim API from tests: it
// plays the customer's phone (SendMessage, Inbox), inspects what the
// emulator did (Webhooks, Messages, ContractViolations) and steers it
// (faults, delivery outcomes, the clock, Reset).
package simclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
)

// The /sim API's JSON shapes.
type (
	Account               = simapi.Account
	PhoneNumber           = simapi.PhoneNumber
	ConversationsService  = simapi.ConversationsService
	MessagingService      = simapi.MessagingService
	ContentTemplate       = simapi.ContentTemplate
	CustomerMessage       = simapi.CustomerMessage
	CustomerMessageResult = simapi.CustomerMessageResult
	Media                 = simapi.Media
	WebhookSummary        = simapi.WebhookSummary
	OutboundMessage       = simapi.OutboundMessage
	WebhookAttempt        = simapi.WebhookAttempt
	Fault                 = simapi.Fault
	DeliveryOptions       = simapi.DeliveryOptions
	DeliveryRule          = simapi.DeliveryRule
	DeliveryState         = simapi.DeliveryState
	Clock                 = simapi.Clock
	Violation             = simapi.Violation
	Exchange              = simapi.Exchange
)

// DefaultPollInterval is how often the Wait methods ask again.
const DefaultPollInterval = 20 * time.Millisecond

// Client talks to one emulator.
type Client struct {
	base string
	hc   *http.Client
	// PollInterval is how often the Wait methods ask again.
	PollInterval time.Duration
}

// New returns a client for the emulator at baseURL (for example
// "http://127.0.0.1:8089"). A nil hc uses a client with a 2 minute timeout:
// a customer message answers only after its webhooks, and a Messaging
// webhook that times out (15 s), is retried and falls back takes 45 s.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc, PollInterval: DefaultPollInterval}
}

// BaseURL is the emulator's address.
func (c *Client) BaseURL() string { return c.base }

// Error is a non-2xx answer of the /sim API.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("twilio-sim: status %d: %s", e.Status, e.Message) }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		var e simapi.Error
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return fmt.Errorf("%s %s: %w", method, path, &Error{Status: resp.StatusCode, Message: e.Error})
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// Ready reports whether the emulator answers.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/sim/health", nil, nil)
}

// WaitReady polls until the emulator answers or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	return c.poll(ctx, func() (bool, error) { return c.Ready(ctx) == nil, nil })
}

// SendMessage has a customer send a message to a business number. It
// returns after the webhooks the message causes have been delivered.
func (c *Client) SendMessage(ctx context.Context, m CustomerMessage) (CustomerMessageResult, error) {
	var res CustomerMessageResult
	err := c.do(ctx, http.MethodPost, "/sim/customers/messages", m, &res)
	return res, err
}

// Inbox lists what the business sent to a customer address, oldest first.
func (c *Client) Inbox(ctx context.Context, address string) ([]OutboundMessage, error) {
	var out []OutboundMessage
	err := c.do(ctx, http.MethodGet, "/sim/customers/messages?address="+url.QueryEscape(address), nil, &out)
	return out, err
}

// WaitInbox polls until the customer's inbox holds at least n messages and
// returns them; it fails when ctx ends first.
func (c *Client) WaitInbox(ctx context.Context, address string, n int) ([]OutboundMessage, error) {
	var got []OutboundMessage
	err := c.poll(ctx, func() (bool, error) {
		var err error
		got, err = c.Inbox(ctx, address)
		return err == nil && len(got) >= n, err
	})
	if err != nil {
		return got, fmt.Errorf("wait for %d messages to %s (have %d): %w", n, address, len(got), err)
	}
	return got, nil
}

// WaitInboxMessage polls until a message to address satisfies match.
func (c *Client) WaitInboxMessage(ctx context.Context, address string, match func(OutboundMessage) bool) (OutboundMessage, error) {
	var found OutboundMessage
	err := c.poll(ctx, func() (bool, error) {
		got, err := c.Inbox(ctx, address)
		if err != nil {
			return false, err
		}
		for _, m := range got {
			if match(m) {
				found = m
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return found, fmt.Errorf("wait for a matching message to %s: %w", address, err)
	}
	return found, nil
}

// MessageFilter narrows Messages; empty fields match anything.
type MessageFilter struct {
	To, From, Path, AccountSID string
}

// Messages lists everything the business sent, oldest first.
func (c *Client) Messages(ctx context.Context, f MessageFilter) ([]OutboundMessage, error) {
	q := url.Values{}
	setIf(q, "to", f.To)
	setIf(q, "from", f.From)
	setIf(q, "path", f.Path)
	setIf(q, "account_sid", f.AccountSID)
	var out []OutboundMessage
	err := c.do(ctx, http.MethodGet, "/sim/messages?"+q.Encode(), nil, &out)
	return out, err
}

// WebhookFilter narrows Webhooks; empty fields match anything.
type WebhookFilter struct {
	// Kind is "messaging", "conversations", "status_callback" or "fallback".
	Kind string
	// Event is the EventType, "incoming", or a message status.
	Event      string
	MessageSID string
	AccountSID string
	AfterID    int64
}

// Webhooks lists the emulator's webhook attempts, oldest first.
func (c *Client) Webhooks(ctx context.Context, f WebhookFilter) ([]WebhookAttempt, error) {
	q := url.Values{}
	setIf(q, "kind", f.Kind)
	setIf(q, "event", f.Event)
	setIf(q, "message_sid", f.MessageSID)
	setIf(q, "account_sid", f.AccountSID)
	if f.AfterID > 0 {
		q.Set("after_id", strconv.FormatInt(f.AfterID, 10))
	}
	var out []WebhookAttempt
	err := c.do(ctx, http.MethodGet, "/sim/webhooks?"+q.Encode(), nil, &out)
	return out, err
}

// WaitWebhooks polls until at least n attempts match f.
func (c *Client) WaitWebhooks(ctx context.Context, f WebhookFilter, n int) ([]WebhookAttempt, error) {
	var got []WebhookAttempt
	err := c.poll(ctx, func() (bool, error) {
		var err error
		got, err = c.Webhooks(ctx, f)
		return err == nil && len(got) >= n, err
	})
	if err != nil {
		return got, fmt.Errorf("wait for %d webhooks (have %d): %w", n, len(got), err)
	}
	return got, nil
}

// InjectFault makes the next REST calls fail (429/20429 by default).
func (c *Client) InjectFault(ctx context.Context, f Fault) (Fault, error) {
	var out Fault
	err := c.do(ctx, http.MethodPost, "/sim/faults", f, &out)
	return out, err
}

// Faults lists the pending faults.
func (c *Client) Faults(ctx context.Context) ([]Fault, error) {
	var out []Fault
	err := c.do(ctx, http.MethodGet, "/sim/faults", nil, &out)
	return out, err
}

// ClearFaults removes pending faults.
func (c *Client) ClearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/sim/faults", nil, nil)
}

// SetDelivery changes the default delivery options of outbound messages.
func (c *Client) SetDelivery(ctx context.Context, o DeliveryOptions) (DeliveryState, error) {
	var out DeliveryState
	err := c.do(ctx, http.MethodPut, "/sim/delivery", o, &out)
	return out, err
}

// AddDeliveryRule shapes the delivery of the next matching sends.
func (c *Client) AddDeliveryRule(ctx context.Context, r DeliveryRule) (DeliveryState, error) {
	var out DeliveryState
	err := c.do(ctx, http.MethodPost, "/sim/delivery/rules", r, &out)
	return out, err
}

// ClearDeliveryRules removes pending delivery rules.
func (c *Client) ClearDeliveryRules(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/sim/delivery/rules", nil, nil)
}

// Clock returns the emulator's time.
func (c *Client) Clock(ctx context.Context) (Clock, error) {
	var out Clock
	err := c.do(ctx, http.MethodGet, "/sim/clock", nil, &out)
	return out, err
}

// AdvanceClock moves the emulator's time forward by d (for example past a
// WhatsApp 24-hour window).
func (c *Client) AdvanceClock(ctx context.Context, d time.Duration) (Clock, error) {
	var out Clock
	err := c.do(ctx, http.MethodPost, "/sim/clock/advance", simapi.ClockAdvance{Seconds: d.Seconds()}, &out)
	return out, err
}

// Reset clears messages, conversations, opt-outs, logs, faults, delivery
// rules and contract violations; accounts and the clock stay.
func (c *Client) Reset(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/sim/reset", nil, nil)
}

// PutAccount adds or replaces an account.
func (c *Client) PutAccount(ctx context.Context, a Account) error {
	return c.do(ctx, http.MethodPut, "/sim/accounts/"+url.PathEscape(a.AccountSID), a, nil)
}

// GetAccount returns an account's configuration.
func (c *Client) GetAccount(ctx context.Context, accountSID string) (Account, error) {
	var out Account
	err := c.do(ctx, http.MethodGet, "/sim/accounts/"+url.PathEscape(accountSID), nil, &out)
	return out, err
}

// ContractViolations lists the contract violations found so far (contract
// mode only).
func (c *Client) ContractViolations(ctx context.Context) ([]Violation, error) {
	var out []Violation
	err := c.do(ctx, http.MethodGet, "/sim/contract/violations", nil, &out)
	return out, err
}

// ClearContract forgets the contract violations and recorded requests.
func (c *Client) ClearContract(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/sim/contract/violations", nil, nil)
}

// ContractRequests lists the REST calls contract mode saw, oldest first,
// each with the host the client meant to call (X-Original-Host).
func (c *Client) ContractRequests(ctx context.Context) ([]Exchange, error) {
	var out []Exchange
	err := c.do(ctx, http.MethodGet, "/sim/contract/requests", nil, &out)
	return out, err
}

// SetConversationState changes a conversation's state as Twilio's timers
// would (reason TIMER unless given), firing onConversationStateUpdated.
func (c *Client) SetConversationState(ctx context.Context, conversationSID, state, reason string) error {
	return c.do(ctx, http.MethodPost, "/sim/conversations/"+url.PathEscape(conversationSID)+"/state",
		simapi.ConversationState{State: state, Reason: reason}, nil)
}

func (c *Client) poll(ctx context.Context, done func() (bool, error)) error {
	interval := c.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr error
	for {
		ok, err := done()
		if ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}
