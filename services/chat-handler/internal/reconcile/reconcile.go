// Package reconcile fills the gaps an outage leaves: Twilio does not retry
// Conversations webhooks and sends each status callback once, so what it
// sent while no chat-handler answered is lost unless it is read back. A
// run lists a messaging entry's history from Twilio's REST API (Messages
// by date sent on the Programmable Messaging path, each conversation's
// messages on the Conversations path) and publishes every customer message
// and every outbound message's current delivery status on the CHAT stream
// exactly as the webhook would have: same event, same dedupe id. What
// already reached Switchboard is dropped downstream (JetStream's duplicate
// window, then sessions' record of every inbound MessageSid), so a run
// may cover more than the gap and may be repeated.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	twilio "github.com/twilio/twilio-go"
	api "github.com/twilio/twilio-go/rest/api/v2010"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/chatwebhook"
	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

// MaxWindow bounds one run: older history than this is no gap an outage
// left, and sessions' records of what it has seen may have been purged
// by retention (a message that old would open a new chat).
const MaxWindow = 7 * 24 * time.Hour

// Emitter publishes an event and waits for JetStream's acknowledgement.
type Emitter interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// Credentials answers the connector behind a messaging entry (the config
// service's GetSendingCredentials).
type Credentials interface {
	GetSendingCredentials(ctx context.Context, tenant, entryID string) (*configv1.GetSendingCredentialsResponse, error)
}

// Options of a Reconciler.
type Options struct {
	// TwilioBaseURL redirects Twilio calls (the emulator); nil for Twilio.
	TwilioBaseURL *url.URL
	// AllowHTTPMedia as the webhook handler's.
	AllowHTTPMedia bool
	// PageSize of Twilio list calls; 0 is 200.
	PageSize int
}

// Reconciler reads Twilio's history and publishes what is missing.
type Reconciler struct {
	creds  Credentials
	routes route.Resolver
	pub    Emitter
	opts   Options
	log    *slog.Logger
}

// New returns a Reconciler.
func New(creds Credentials, routes route.Resolver, pub Emitter, opts Options, log *slog.Logger) *Reconciler {
	if opts.PageSize <= 0 {
		opts.PageSize = 200
	}
	return &Reconciler{creds: creds, routes: routes, pub: pub, opts: opts, log: log}
}

// Report says what one run did.
type Report = chatwebhook.ReconcileReport

// Window checks a run's bounds: since before until, until not in the
// future (a later one is cut to now), at most MaxWindow.
func Window(since, until, now time.Time) (time.Time, time.Time, error) {
	if until.IsZero() || until.After(now) {
		until = now
	}
	switch {
	case since.IsZero():
		return since, until, errors.New("since is required")
	case !since.Before(until):
		return since, until, fmt.Errorf("since %s is not before until %s", since.Format(time.RFC3339), until.Format(time.RFC3339))
	case until.Sub(since) > MaxWindow:
		return since, until, fmt.Errorf("the window %s to %s is longer than %s", since.Format(time.RFC3339), until.Format(time.RFC3339), MaxWindow)
	}
	return since, until, nil
}

// Run reconciles the given messaging entries of a tenant over [since,
// until). A problem with one entry is reported and the others still run;
// the error is for a canceled context.
func (r *Reconciler) Run(ctx context.Context, tenant string, entries []*configv1.MessagingEntry, since, until time.Time) (*Report, error) {
	rep := &Report{Tenant: tenant, Since: since, Until: until}
	for _, e := range entries {
		if e.GetTenantId() != "" && e.GetTenantId() != tenant {
			continue
		}
		rep.Entries++
		if err := r.entry(ctx, tenant, e, since, until, rep); err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("entry %s: %v", e.GetId(), err))
			r.log.WarnContext(ctx, "reconciliation of an entry stopped", "tenant", tenant, "entry", e.GetId(), "err", err)
		}
	}
	r.log.InfoContext(ctx, "reconciled from Twilio's history", "tenant", tenant, "since", since, "until", until,
		"entries", rep.Entries, "listed", rep.Listed, "customer_messages", rep.CustomerMessages,
		"statuses", rep.Statuses, "refused", rep.Refused, "problems", len(rep.Problems))
	return rep, nil
}

func (r *Reconciler) entry(ctx context.Context, tenant string, e *configv1.MessagingEntry, since, until time.Time, rep *Report) error {
	cr, err := r.creds.GetSendingCredentials(ctx, tenant, e.GetId())
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	client := twilioclient.NewClient(twilioclient.Credentials{
		AccountSID: cr.GetAccountSid(), APIKeySID: cr.GetApiKeySid(), APIKeySecret: cr.GetApiKeySecret(),
		Region: cr.GetRegion(), Edge: cr.GetEdge(),
	}, twilioclient.Options{BaseURL: r.opts.TwilioBaseURL})
	if cr.GetEntry() != nil {
		e = cr.GetEntry()
	}
	if e.GetPath() == messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS || (e.GetPath() == messagingv1.TwilioPath_TWILIO_PATH_UNSPECIFIED && e.GetConversationsServiceSid() != "") {
		return r.conversations(ctx, client, tenant, cr.GetAccountSid(), e.GetConversationsServiceSid(), since, until, rep)
	}
	for _, addr := range e.GetBusinessAddresses() {
		if err := r.messaging(ctx, client, tenant, cr.GetAccountSid(), addr, since, until, rep); err != nil {
			return fmt.Errorf("%s: %w", webhook.RedactAddress(addr), err)
		}
	}
	return nil
}

// messaging lists the messages to and from one business address, oldest
// first, and publishes each customer message as the inbound webhook and
// each outbound message's status as its status callback would have.
func (r *Reconciler) messaging(ctx context.Context, client *twilio.RestClient, tenant, account, addr string, since, until time.Time, rep *Report) error {
	rt, err := r.routes.Resolve(ctx, tenant, "", addr)
	if err != nil {
		return err
	}
	list := func(to, from string) ([]api.ApiV2010Message, error) {
		p := &api.ListMessageParams{}
		p.SetDateSentAfter(since).SetDateSentBefore(until).SetPageSize(r.opts.PageSize)
		if to != "" {
			p.SetTo(to)
		}
		if from != "" {
			p.SetFrom(from)
		}
		return client.Api.ListMessage(p)
	}
	in, err := list(addr, "")
	if err != nil {
		return fmt.Errorf("list messages to it: %w", err)
	}
	out, err := list("", addr)
	if err != nil {
		return fmt.Errorf("list messages from it: %w", err)
	}
	msgs := slices.Concat(in, out)
	slices.SortStableFunc(msgs, func(a, b api.ApiV2010Message) int { return sentAt(a).Compare(sentAt(b)) })
	for _, m := range msgs {
		at := sentAt(m)
		if at.Before(since) || !at.Before(until) {
			continue // Twilio's date filters are by day
		}
		rep.Listed++
		if err := ctx.Err(); err != nil {
			return err
		}
		inbound := str(m.Direction) == "inbound"
		p := url.Values{"MessageSid": {str(m.Sid)}, "AccountSid": {account}, "From": {str(m.From)}, "To": {str(m.To)}}
		if ms := str(m.MessagingServiceSid); ms != "" {
			p.Set("MessagingServiceSid", ms)
		}
		in := webhook.Input{Params: p, Route: rt, Now: at, AllowHTTPMedia: r.opts.AllowHTTPMedia}
		var ev *webhook.Event
		if inbound {
			if rt.Disabled {
				rep.Refused++
				continue
			}
			p.Set("Body", str(m.Body))
			p.Set("NumSegments", str(m.NumSegments))
			if err := r.media(client, m, p); err != nil {
				// Not published without its media: a later run (once
				// Twilio answers) must still be able to add it whole.
				rep.Problems = append(rep.Problems, fmt.Sprintf("message %s left for a later run: its media: %v", str(m.Sid), err))
				continue
			}
			ev, err = webhook.InboundEvent(in, false)
		} else {
			st := str(m.Status)
			if st == "" || st == "accepted" || st == "scheduled" {
				continue // nothing a status callback would say yet
			}
			p.Set("MessageStatus", st)
			if m.ErrorCode != nil && *m.ErrorCode != 0 {
				p.Set("ErrorCode", strconv.Itoa(*m.ErrorCode))
			}
			in.Now = updatedAt(m, at)
			ev, err = webhook.StatusEvent(in)
		}
		if err != nil {
			return fmt.Errorf("message %s: %w", str(m.Sid), err)
		}
		if err := r.pub.Emit(ctx, ev.Subject, ev.Msg, ev.ID); err != nil {
			return fmt.Errorf("publish %s: %w", ev.ID, err)
		}
		if inbound {
			rep.CustomerMessages++
		} else {
			rep.Statuses++
		}
	}
	return nil
}

// media adds MediaUrlN and MediaContentTypeN as the inbound webhook has
// them: the media resource's URL without its .json.
func (r *Reconciler) media(client *twilio.RestClient, m api.ApiV2010Message, p url.Values) error {
	n, _ := strconv.Atoi(str(m.NumMedia))
	p.Set("NumMedia", strconv.Itoa(n))
	if n == 0 {
		return nil
	}
	items, err := client.Api.ListMedia(str(m.Sid), &api.ListMediaParams{})
	if err != nil {
		return err
	}
	base := "https://" + twilioclient.Host("api", "", "")
	if r.opts.TwilioBaseURL != nil {
		base = strings.TrimSuffix(r.opts.TwilioBaseURL.String(), "/")
	}
	for i, md := range items {
		idx := strconv.Itoa(i)
		p.Set("MediaUrl"+idx, base+strings.TrimSuffix(str(md.Uri), ".json"))
		p.Set("MediaContentType"+idx, str(md.ContentType))
	}
	p.Set("NumMedia", strconv.Itoa(len(items)))
	return nil
}

// conversations lists every conversation of the service that can still
// take messages and publishes the customer messages added in the window
// as onMessageAdded would have.
func (r *Reconciler) conversations(ctx context.Context, client *twilio.RestClient, tenant, account, service string, since, until time.Time, rep *Report) error {
	rt, err := r.routes.Resolve(ctx, tenant, service, "")
	if err != nil {
		return err
	}
	var convs []conversations.ConversationsV1ServiceConversation
	for _, state := range []string{"active", "inactive"} {
		p := &conversations.ListServiceConversationParams{}
		p.SetState(state).SetPageSize(min(r.opts.PageSize, 100))
		page, err := client.ConversationsV1.ListServiceConversation(service, p)
		if err != nil {
			return fmt.Errorf("list %s conversations: %w", state, err)
		}
		convs = append(convs, page...)
	}
	for _, c := range convs {
		if c.DateCreated != nil && !c.DateCreated.Before(until) {
			continue
		}
		if err := r.conversation(ctx, client, account, service, str(c.Sid), str(c.MessagingServiceSid), rt, since, until, rep); err != nil {
			return fmt.Errorf("conversation %s: %w", str(c.Sid), err)
		}
	}
	return nil
}

func (r *Reconciler) conversation(ctx context.Context, client *twilio.RestClient, account, service, conv, msgService string, rt *route.Route, since, until time.Time, rep *Report) error {
	p := &conversations.ListServiceConversationMessageParams{}
	p.SetOrder("asc").SetPageSize(min(r.opts.PageSize, 100))
	msgs, err := client.ConversationsV1.ListServiceConversationMessage(service, conv, p)
	if err != nil {
		return fmt.Errorf("list messages: %w", err)
	}
	for _, m := range msgs {
		if m.DateCreated == nil || m.DateCreated.Before(since) || !m.DateCreated.Before(until) {
			continue
		}
		rep.Listed++
		if err := ctx.Err(); err != nil {
			return err
		}
		params := url.Values{
			"EventType": {webhook.EventMessageAdded}, "AccountSid": {account}, "ChatServiceSid": {service},
			"ConversationSid": {conv}, "MessageSid": {str(m.Sid)}, "Author": {str(m.Author)}, "Body": {str(m.Body)},
			"Index": {strconv.Itoa(m.Index)}, "ParticipantSid": {str(m.ParticipantSid)},
			"Attributes": {str(m.Attributes)}, "DateCreated": {m.DateCreated.UTC().Format(time.RFC3339)},
		}
		if msgService != "" {
			params.Set("MessagingServiceSid", msgService)
		}
		if m.Media != nil && len(*m.Media) > 0 {
			b, err := json.Marshal(conversationMedia(*m.Media))
			if err != nil {
				return err
			}
			params.Set("Media", string(b))
		}
		ev, err := webhook.ConversationsEvent(webhook.Input{Params: params, Route: rt, Now: *m.DateCreated, AllowHTTPMedia: r.opts.AllowHTTPMedia})
		if err != nil {
			return fmt.Errorf("message %s: %w", str(m.Sid), err)
		}
		if ev == nil {
			// Not the customer's: an agent's or a workflow's message, whose
			// delivery receipts may have been lost.
			if err := r.receipts(ctx, client, account, service, conv, str(m.Sid), rt, rep); err != nil {
				return fmt.Errorf("receipts of %s: %w", str(m.Sid), err)
			}
			continue
		}
		if rt.Disabled {
			rep.Refused++
			continue
		}
		if err := r.pub.Emit(ctx, ev.Subject, ev.Msg, ev.ID); err != nil {
			return fmt.Errorf("publish %s: %w", ev.ID, err)
		}
		rep.CustomerMessages++
	}
	return nil
}

// receipts publishes a message's delivery receipts as onDeliveryUpdated
// would have (one per receipt, its current status).
func (r *Reconciler) receipts(ctx context.Context, client *twilio.RestClient, account, service, conv, msg string, rt *route.Route, rep *Report) error {
	list, err := client.ConversationsV1.ListServiceConversationMessageReceipt(service, conv, msg,
		&conversations.ListServiceConversationMessageReceiptParams{})
	if err != nil {
		return err
	}
	for _, rc := range list {
		if str(rc.Status) == "" {
			continue
		}
		p := url.Values{
			"EventType": {webhook.EventDeliveryUpdated}, "AccountSid": {account}, "ChatServiceSid": {service},
			"ConversationSid": {conv}, "MessageSid": {msg}, "DeliveryReceiptSid": {str(rc.Sid)},
			"Status": {str(rc.Status)}, "ParticipantSid": {str(rc.ParticipantSid)},
			"ChannelMessageSid": {str(rc.ChannelMessageSid)},
		}
		if rc.ErrorCode != 0 {
			p.Set("ErrorCode", strconv.Itoa(rc.ErrorCode))
		}
		now := time.Now()
		if rc.DateUpdated != nil {
			p.Set("DateUpdated", rc.DateUpdated.UTC().Format(time.RFC3339))
			now = *rc.DateUpdated
		}
		ev, err := webhook.ConversationsEvent(webhook.Input{Params: p, Route: rt, Now: now})
		if err != nil {
			return err
		}
		if err := r.pub.Emit(ctx, ev.Subject, ev.Msg, ev.ID); err != nil {
			return fmt.Errorf("publish %s: %w", ev.ID, err)
		}
		rep.Statuses++
	}
	return nil
}

// conversationMedia renames the REST media items' fields to the webhook's
// (sid → Sid, …).
func conversationMedia(items []any) []map[string]any {
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		m, _ := it.(map[string]any)
		out = append(out, map[string]any{
			"Sid": m["sid"], "Filename": m["filename"], "ContentType": m["content_type"], "Size": m["size"],
		})
	}
	return out
}

// sentAt is when Twilio sent (or received) the message: date_sent, else
// date_created (RFC 1123 with a numeric zone).
func sentAt(m api.ApiV2010Message) time.Time {
	for _, s := range []*string{m.DateSent, m.DateCreated} {
		if t, err := time.Parse(time.RFC1123Z, str(s)); err == nil {
			return t
		}
	}
	return time.Time{}
}

func updatedAt(m api.ApiV2010Message, fallback time.Time) time.Time {
	if t, err := time.Parse(time.RFC1123Z, str(m.DateUpdated)); err == nil {
		return t
	}
	return fallback
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
