package sim

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/webhook"
)

// plan is how an outbound message's delivery plays out.
type plan struct {
	delay       time.Duration
	outOfOrder  bool
	errorCode   int
	finalStatus string // failed or undelivered when errorCode is set
}

type step struct {
	status string
	code   int
}

// failWith forces a failure, keeping the timing options.
func (p plan) failWith(code int, status string) plan {
	p.errorCode, p.finalStatus = code, status
	return p
}

// steps are the statuses after the initial one; each gets a callback.
func (p plan) steps() []step {
	switch {
	case p.errorCode == 0:
		return []step{{"sent", 0}, {"delivered", 0}}
	case p.finalStatus == "undelivered":
		return []step{{"sent", 0}, {"undelivered", p.errorCode}}
	default:
		return []step{{"failed", p.errorCode}}
	}
}

// defaultFinalStatus is undelivered for carrier (30xxx) errors, which happen
// after the message left Twilio, and failed otherwise.
func defaultFinalStatus(code int) string {
	if code >= 30000 && code < 31000 {
		return "undelivered"
	}
	return "failed"
}

// takePlan resolves the delivery options for a send to `to`, consuming the
// first matching rule. Called with e.mu held.
func (e *Engine) takePlan(to string) plan {
	d := e.delivery
	p := plan{delay: time.Duration(d.DelayMS) * time.Millisecond, outOfOrder: d.OutOfOrder, errorCode: d.ErrorCode, finalStatus: d.FinalStatus}
	for i, r := range e.rules {
		if r.To != "" && r.To != to {
			continue
		}
		if r.DelayMS != nil {
			p.delay = time.Duration(*r.DelayMS) * time.Millisecond
		}
		if r.OutOfOrder != nil {
			p.outOfOrder = *r.OutOfOrder
		}
		if r.ErrorCode != nil {
			p.errorCode = *r.ErrorCode
			p.finalStatus = r.FinalStatus
		}
		r.Count--
		if r.Count <= 0 {
			e.rules = slices.Delete(e.rules, i, i+1)
		}
		break
	}
	if p.errorCode != 0 && p.finalStatus == "" {
		p.finalStatus = defaultFinalStatus(p.errorCode)
	}
	return p
}

func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runMessaging moves a Programmable Messaging message through its statuses
// and sends a status callback for each (none for the initial status).
func (e *Engine) runMessaging(ctx context.Context, m *message, p plan) {
	var held []webhook.Event
	for _, st := range p.steps() {
		if !wait(ctx, p.delay) {
			return
		}
		e.mu.Lock()
		now := e.clock.now()
		m.status, m.errorCode, m.updated = st.status, st.code, now
		m.fromChosen = true
		if st.status == "sent" {
			m.sent = now
		}
		ev, ok := e.statusCallback(m, st, now)
		e.mu.Unlock()
		if !ok {
			continue
		}
		if p.outOfOrder {
			held = append(held, ev)
			continue
		}
		e.hooks.Deliver(ctx, ev)
	}
	for i := len(held) - 1; i >= 0; i-- {
		e.hooks.Deliver(ctx, held[i])
	}
}

// statusCallback builds the callback for a status change. Called with e.mu held.
func (e *Engine) statusCallback(m *message, st step, now time.Time) (webhook.Event, bool) {
	acct := e.accounts[m.accountSID]
	if m.statusCallback == "" || acct == nil {
		return webhook.Event{}, false
	}
	p := url.Values{}
	p.Set("MessageSid", m.sid)
	p.Set("SmsSid", m.sid)
	p.Set("MessageStatus", st.status)
	p.Set("SmsStatus", st.status)
	p.Set("AccountSid", m.accountSID)
	p.Set("From", m.from)
	p.Set("To", m.to)
	p.Set("ApiVersion", "2010-04-01")
	if m.mgSID != "" {
		p.Set("MessagingServiceSid", m.mgSID)
	}
	failed := st.status == "failed" || st.status == "undelivered"
	if failed {
		p.Set("ErrorCode", strconv.Itoa(st.code))
	}
	if ch, number := channelOf(m.to); ch == "whatsapp" {
		p.Set("ChannelPrefix", "whatsapp")
		p.Set("ChannelInstallSid", "XE"+strings.ToLower(m.accountSID[2:]))
		p.Set("ChannelToAddress", number)
		p.Set("StructuredMessage", "false")
		if failed {
			p.Set("ChannelStatusMessage", errorText(st.code))
		}
		if st.status == "delivered" {
			p.Set("EventType", "DELIVERED")
		}
	} else if st.status == "delivered" || st.status == "undelivered" {
		p.Set("RawDlrDoneDate", now.Format("0601021504"))
	}
	return webhook.Event{
		Kind:       webhook.KindStatusCallback,
		Event:      st.status,
		AccountSID: m.accountSID,
		MessageSID: m.sid,
		AuthToken:  acct.AuthToken,
		URL:        m.statusCallback,
		Method:     "POST",
		Params:     p,
		Token:      webhook.NewToken(),
		Timeout:    e.opts.MessagingTimeout,
		Retries:    e.opts.WebhookRetries,
	}, true
}

// runConversation moves the customer's delivery receipt of a conversation
// message through its statuses, posting onDeliveryUpdated for each.
func (e *Engine) runConversation(ctx context.Context, m *message, p plan) {
	var held []webhook.Event
	for _, st := range p.steps() {
		if !wait(ctx, p.delay) {
			return
		}
		e.mu.Lock()
		now := e.clock.now()
		r := m.receipt
		r.status, r.errorCode, r.updated = st.status, st.code, now
		m.status, m.errorCode = st.status, st.code
		conv := e.conversations[m.conversationSID]
		var ev webhook.Event
		ok := false
		if conv != nil {
			params := convParams(conv, "onDeliveryUpdated", "")
			params.Set("MessageSid", m.sid)
			params.Set("DeliveryReceiptSid", r.sid)
			params.Set("ChannelMessageSid", m.channelSID)
			params.Set("ParticipantSid", r.participantSID)
			params.Set("Status", st.status)
			if st.status == "failed" || st.status == "undelivered" {
				params.Set("ErrorCode", strconv.Itoa(st.code))
			}
			params.Set("DateCreated", r.created.Format(iso8601ms))
			params.Set("DateUpdated", now.Format(iso8601ms))
			ev, ok = e.convEvent(conv, "onDeliveryUpdated", m.sid, params)
		}
		e.mu.Unlock()
		if !ok {
			continue
		}
		if p.outOfOrder {
			held = append(held, ev)
			continue
		}
		e.hooks.Deliver(ctx, ev)
	}
	for i := len(held) - 1; i >= 0; i-- {
		e.hooks.Deliver(ctx, held[i])
	}
}

// convParams are the parameters every Conversations event carries; the
// deliverer adds RetryCount.
func convParams(c *conversation, eventType, source string) url.Values {
	p := url.Values{}
	p.Set("AccountSid", c.accountSID)
	p.Set("ChatServiceSid", c.serviceSID)
	p.Set("ConversationSid", c.sid)
	p.Set("EventType", eventType)
	if source != "" {
		p.Set("Source", source)
	}
	return p
}

// convEvent addresses an event to the conversation's service webhook if the
// service posts that event. Called with e.mu held.
func (e *Engine) convEvent(c *conversation, eventType, messageSID string, params url.Values) (webhook.Event, bool) {
	acct := e.accounts[c.accountSID]
	if acct == nil {
		return webhook.Event{}, false
	}
	svc := acct.convServices[c.serviceSID]
	if svc == nil || svc.PostWebhookURL == "" || !slices.Contains(filters(svc), eventType) {
		return webhook.Event{}, false
	}
	return webhook.Event{
		Kind:            webhook.KindConversations,
		Event:           eventType,
		AccountSID:      c.accountSID,
		MessageSID:      messageSID,
		AuthToken:       acct.AuthToken,
		URL:             svc.PostWebhookURL,
		Method:          svc.Method,
		Params:          params,
		Token:           webhook.NewToken(),
		Timeout:         e.opts.ConversationsTimeout,
		Retries:         e.opts.WebhookRetries,
		RetryCountParam: true,
	}, true
}

// deliveryState is the answer of GET /sim/delivery. Called with e.mu held.
func (e *Engine) deliveryState() simapi.DeliveryState {
	st := simapi.DeliveryState{Default: e.delivery, Rules: []simapi.DeliveryRule{}}
	for _, r := range e.rules {
		st.Rules = append(st.Rules, *r)
	}
	return st
}
