package sender

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/contacts"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/ledger"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
)

// Refusal is why a send is refused before calling Twilio.
type Refusal struct {
	Reason outboundv1.FailureReason
	// Code is what Twilio would have answered (21610, 63016).
	Code    int32
	Message string
}

// Check says whether a message on conv would be refused now; content
// reports whether it is a template (allowed outside the WhatsApp window).
func Check(st contacts.State, template bool) *Refusal {
	if st.OptedOut {
		when := ""
		if !st.ConsentChangedAt.IsZero() {
			when = " on " + st.ConsentChangedAt.UTC().Format("2006-01-02 15:04 MST")
		}
		how := "replied STOP"
		if st.ConsentSource == "twilio:21610" {
			how = "is on Twilio's opt-out list for this sender (21610)"
		}
		return &Refusal{
			Reason: outboundv1.FailureReason_FAILURE_REASON_OPTED_OUT, Code: 21610,
			Message: "The customer opted out of messages from this sender (" + how + when + "). Nothing can be sent until they reply START.",
		}
	}
	if st.WindowApplies && !st.WindowOpen && !template {
		last := "has never written to this WhatsApp number"
		if !st.LastInboundAt.IsZero() {
			last = "last wrote " + st.LastInboundAt.UTC().Format("2006-01-02 15:04 MST")
		}
		return &Refusal{
			Reason: outboundv1.FailureReason_FAILURE_REASON_WHATSAPP_WINDOW_CLOSED, Code: 63016,
			Message: "Outside the WhatsApp 24-hour window: the customer " + last + ". Free-form messages are not allowed; send an approved template instead.",
		}
	}
	return nil
}

// State is the contact state of a conversation now, read through the
// cache.
func (s *Sender) State(ctx context.Context, tenant string, conv *messagingv1.ConversationRef) (contacts.State, error) {
	return s.state(ctx, tenant, conv, false)
}

// FreshState is State read from the database.
func (s *Sender) FreshState(ctx context.Context, tenant string, conv *messagingv1.ConversationRef) (contacts.State, error) {
	return s.state(ctx, tenant, conv, true)
}

// Invalidate drops a customer's cached contact (another process changed it).
func (s *Sender) Invalidate(tenant, customer string) { s.d.Contacts.Invalidate(tenant, customer) }

func (s *Sender) state(ctx context.Context, tenant string, conv *messagingv1.ConversationRef, fresh bool) (contacts.State, error) {
	customer, keys := contacts.Keys(conv)
	get := s.d.Contacts.Get
	if fresh {
		get = s.d.Contacts.GetFresh
	}
	c, err := get(ctx, tenant, customer)
	if err != nil {
		return contacts.State{}, err
	}
	return contacts.StateOf(c, keys, conv.GetChannel(), s.opts.Now()), nil
}

// refuse fails the request when a rule forbids it. A refusal waits until
// every customer message already published is applied, so a START or a
// WhatsApp message still in flight does not cause a wrong refusal.
func (s *Sender) refuse(ctx context.Context, req *outboundv1.OutboundMessageRequested) (bool, error) {
	st, err := s.State(ctx, req.GetTenantId(), req.GetConversation())
	if err != nil {
		return false, err
	}
	r := Check(st, req.GetContentSid() != "")
	if r == nil {
		return false, nil
	}
	if s.d.Progress != nil {
		deadline := s.opts.Now().Add(s.opts.CatchUpWait)
		for {
			ok, err := s.d.Progress.CaughtUp(ctx, req.GetTenantId())
			if err != nil {
				return false, fmt.Errorf("check customer messages are applied: %w", err)
			}
			if ok {
				break
			}
			if s.opts.Now().After(deadline) {
				return false, fmt.Errorf("request %q: customer messages are still being applied; retrying before refusing", req.GetRequestId())
			}
			if err := s.sleepUntil(ctx, s.opts.Now().Add(50*time.Millisecond)); err != nil {
				return false, err
			}
		}
		if st, err = s.FreshState(ctx, req.GetTenantId(), req.GetConversation()); err != nil {
			return false, err
		}
		if r = Check(st, req.GetContentSid() != ""); r == nil {
			return false, nil
		}
	}
	return true, s.fail(ctx, req, true, r.Code, r.Message, r.Reason, 0)
}

// optOut records an opt-out Twilio told us about.
func (s *Sender) optOut(ctx context.Context, tenant string, conv *messagingv1.ConversationRef, source, cause string) error {
	customer, keys := contacts.Keys(conv)
	c, err := s.d.Contacts.SetConsent(ctx, tenant, customer, keys, true, source, s.opts.Now())
	if err != nil {
		return err
	}
	return s.emitContact(ctx, tenant, conv, c, cause)
}

// emitContact publishes a customer's state after a change, from the
// document the change wrote (no read-back); cause names the change within
// the tenant (a message SID, a refused request).
func (s *Sender) emitContact(ctx context.Context, tenant string, conv *messagingv1.ConversationRef, c *contacts.Contact, cause string) error {
	_, keys := contacts.Keys(conv)
	st := contacts.StateOf(c, keys, conv.GetChannel(), s.opts.Now())
	return s.d.Pub.Emit(ctx, subjects.OutboundContactUpdated(tenant), &outboundv1.OutboundContactUpdated{
		TenantId: tenant, Conversation: conv, State: ContactStateProto(st), OccurredAt: timestamppb.New(s.opts.Now()),
	}, eventID(tenant, "contact", cause))
}

// ContactStateProto converts a state.
func ContactStateProto(st contacts.State) *outboundv1.ContactState {
	p := &outboundv1.ContactState{
		OptedOut: st.OptedOut, ConsentSource: st.ConsentSource,
		WindowApplies: st.WindowApplies, WindowOpen: st.WindowOpen,
	}
	if !st.ConsentChangedAt.IsZero() {
		p.ConsentChangedAt = timestamppb.New(st.ConsentChangedAt)
	}
	if !st.WindowExpiresAt.IsZero() {
		p.WindowExpiresAt = timestamppb.New(st.WindowExpiresAt)
	}
	if !st.LastInboundAt.IsZero() {
		p.LastInboundAt = timestamppb.New(st.LastInboundAt)
	}
	return p
}

// HandleInbound applies a customer message (chat.message.received) to the
// contacts: Twilio's opt-out keywords (or OptOutType under Advanced
// Opt-Out) change consent, and a WhatsApp message opens the window.
func (s *Sender) HandleInbound(ctx context.Context, m *bus.Message) error {
	var ev chatv1.MessageReceived
	if err := m.Decode(&ev); err != nil {
		return err
	}
	conv := ev.GetConversation()
	tenant := m.Tenant()
	customer, keys := contacts.Keys(conv)
	if customer == "" || len(keys) == 0 || ev.GetTenantId() != tenant {
		return nil // nothing a send could be checked against
	}
	at := s.opts.Now()
	if ev.GetReceivedAt() != nil {
		at = ev.GetReceivedAt().AsTime()
	}
	var stored *contacts.Contact
	if conv.GetChannel() == messagingv1.Channel_CHANNEL_WHATSAPP {
		c, err := s.d.Contacts.TouchInbound(ctx, tenant, customer, keys, at)
		if err != nil {
			return err
		}
		stored = c
	}
	kw, source := "", ""
	switch ev.GetOptOutType() {
	case messagingv1.OptOutType_OPT_OUT_TYPE_STOP:
		kw, source = contacts.KeywordStop, "opt_out_type:STOP"
	case messagingv1.OptOutType_OPT_OUT_TYPE_START:
		kw, source = contacts.KeywordStart, "opt_out_type:START"
	case messagingv1.OptOutType_OPT_OUT_TYPE_HELP:
		kw = contacts.KeywordHelp
	default:
		// Twilio's default keyword handling applies to SMS only.
		if conv.GetChannel() != messagingv1.Channel_CHANNEL_WHATSAPP {
			if kw = contacts.Keyword(ev.GetBody()); kw != "" {
				source = "keyword:" + kw
			}
		}
	}
	switch kw {
	case contacts.KeywordStop, contacts.KeywordStart:
		c, err := s.d.Contacts.SetConsent(ctx, tenant, customer, keys, kw == contacts.KeywordStop, source, at)
		if err != nil {
			return err
		}
		s.log.InfoContext(ctx, "customer consent changed", "tenant", tenant, "keyword", kw, "message_sid", ev.GetMessageSid())
		stored = c
	}
	if stored == nil {
		return nil
	}
	return s.emitContact(ctx, tenant, conv, stored, ev.GetMessageSid())
}

// InboundKey orders customer messages per tenant and customer, the key of
// their contact document: one customer's messages apply in order, different
// customers' at once.
func InboundKey(m *bus.Message) (string, error) {
	var ev chatv1.MessageReceived
	if err := m.Decode(&ev); err != nil {
		return "", err
	}
	if c := ev.GetConversation().GetCustomerAddress(); c != "" {
		return m.Tenant() + "/" + c, nil
	}
	return m.Subject, nil
}

// DeliveryKey orders status reports per tenant and Twilio SID, the key of
// the ledger's message document.
func DeliveryKey(m *bus.Message) (string, error) {
	var ev chatv1.DeliveryUpdated
	if err := m.Decode(&ev); err != nil {
		return "", err
	}
	if sid := ev.GetMessageSid(); sid != "" {
		return m.Tenant() + "/" + sid, nil
	}
	return m.Subject, nil
}

// lateReport bounds how long a status report for an unknown SID is
// retried: the report may have overtaken the ledger write of its send.
const lateReport = 2 * time.Minute

// HandleDelivery applies a status report (chat.delivery.updated) to the
// ledger: the timeline records every report once, the status only moves
// forward, and each forward move is published.
func (s *Sender) HandleDelivery(ctx context.Context, m *bus.Message) error {
	var ev chatv1.DeliveryUpdated
	if err := m.Decode(&ev); err != nil {
		return err
	}
	tenant, sid := m.Tenant(), ev.GetMessageSid()
	if sid == "" || ev.GetTenantId() != tenant {
		return bus.Permanentf("delivery update on %s lacks a message sid or names another tenant", m.Subject)
	}
	raw := ev.GetRawStatus()
	if raw == "" {
		raw = StatusName(ev.GetStatus())
	}
	at := s.opts.Now()
	if ev.GetOccurredAt() != nil {
		at = ev.GetOccurredAt().AsTime()
	}
	before, err := s.d.Ledger.Report(ctx, tenant, sid, ledger.Change{Status: raw, ErrorCode: ev.GetErrorCode(), At: at}, s.opts.Now())
	if errors.Is(err, ledger.ErrNotFound) {
		if s.opts.Now().Sub(at) < lateReport {
			return fmt.Errorf("status %s for %s: no ledger record yet", raw, sid)
		}
		s.log.DebugContext(ctx, "status report for a message outbound-sender did not send", "tenant", tenant, "message_sid", sid)
		return nil
	}
	if err != nil {
		return err
	}
	msg := *before
	msg.Timeline = append(append([]ledger.Change(nil), before.Timeline...), ledger.Change{Status: raw, ErrorCode: ev.GetErrorCode(), At: at})
	msg.Settle()
	// Only a report that moved the status forward is published; a repeat
	// or a late report changes nothing anyone sees.
	if msg.Status == before.Status {
		return nil
	}
	errMsg := ""
	if msg.ErrorCode != 0 {
		errMsg = twilioapi.Meaning(int(msg.ErrorCode))
	}
	switch msg.ErrorCode {
	case 21610, 63016:
		req, err := s.d.Ledger.Request(ctx, tenant, msg.RequestID)
		if err != nil {
			return err
		}
		if err := s.reportedClosed(ctx, tenant, convFromLedger(req.Conversation), msg.ErrorCode, sid, at); err != nil {
			return err
		}
	}
	return s.d.Pub.Emit(ctx, subjects.OutboundDeliveryUpdated(tenant), &outboundv1.OutboundDeliveryUpdated{
		TenantId: tenant, RequestId: msg.RequestID, SessionId: msg.SessionID, TwilioSid: sid,
		Status: DeliveryStatus(msg.Status), ErrorCode: msg.ErrorCode, ErrorMessage: errMsg,
		OccurredAt: timestamppb.New(at), RawStatus: raw, ResendOf: msg.ResendOf,
	}, eventID(tenant, msg.RequestID, msg.Status))
}

// reportedClosed applies what a delivery failure says about the customer:
// 21610 they opted out, 63016 the WhatsApp window is closed.
func (s *Sender) reportedClosed(ctx context.Context, tenant string, conv *messagingv1.ConversationRef, code int32, sid string, at time.Time) error {
	switch code {
	case 21610:
		if err := s.optOut(ctx, tenant, conv, "twilio:21610", sid); err != nil {
			return err
		}
	case 63016:
		customer, keys := contacts.Keys(conv)
		c, err := s.d.Contacts.CloseWindow(ctx, tenant, customer, keys, at)
		if err != nil {
			return err
		}
		if err := s.emitContact(ctx, tenant, conv, c, sid+":63016"); err != nil {
			return err
		}
	}
	return nil
}

// ErrNotFound is returned by Delivery for an unknown request.
var ErrNotFound = errors.New("not found")

// Delivery assembles one request's ledger record.
func (s *Sender) Delivery(ctx context.Context, tenant, requestID string) (*outboundv1.Delivery, error) {
	req, err := s.d.Ledger.Request(ctx, tenant, requestID)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("%w: request %q", ErrNotFound, requestID)
	}
	if err != nil {
		return nil, err
	}
	d := &outboundv1.Delivery{
		TenantId: tenant, RequestId: requestID, SessionId: req.SessionID, EntryId: req.EntryID,
		Conversation: convFromLedger(req.Conversation), Origin: outboundv1.Origin(req.Origin),
		Status: messagingv1.DeliveryStatus_DELIVERY_STATUS_PENDING, Attempts: int32(req.Attempts),
		ResendOf: req.ResendOf, NumSegments: int32(req.Segments),
		RequestedAt: timestamppb.New(req.RequestedAt), CreatedAt: timestamppb.New(req.CreatedAt),
	}
	out, err := s.d.Ledger.Outcome(ctx, tenant, requestID)
	if errors.Is(err, ledger.ErrNotFound) {
		return d, nil
	}
	if err != nil {
		return nil, err
	}
	d.Attempts, d.ResentAs, d.TwilioSid = int32(out.Attempts), out.ResentAs, out.TwilioSID
	d.Status, d.ErrorCode, d.ErrorMessage = DeliveryStatus(out.Status), out.ErrorCode, out.ErrorMessage
	d.FailureReason = outboundv1.FailureReason(out.Reason)
	d.NumSegments = int32(out.Segments)
	d.Timeline = append(d.Timeline, &outboundv1.StatusChange{Status: DeliveryStatus(out.Status), RawStatus: out.Status, ErrorCode: out.ErrorCode, At: timestamppb.New(out.DecidedAt)})
	if out.State != ledger.StateSent {
		return d, nil
	}
	msg, err := s.d.Ledger.Message(ctx, tenant, out.TwilioSID)
	if errors.Is(err, ledger.ErrNotFound) {
		return d, nil
	}
	if err != nil {
		return nil, err
	}
	d.Status = DeliveryStatus(msg.Status)
	if msg.ErrorCode != 0 {
		d.ErrorCode, d.ErrorMessage = msg.ErrorCode, twilioapi.Meaning(int(msg.ErrorCode))
		d.FailureReason = outboundv1.FailureReason_FAILURE_REASON_TWILIO
	}
	for _, c := range msg.Timeline {
		d.Timeline = append(d.Timeline, &outboundv1.StatusChange{Status: DeliveryStatus(c.Status), RawStatus: c.Status, ErrorCode: c.ErrorCode, At: timestamppb.New(c.At)})
	}
	return d, nil
}
