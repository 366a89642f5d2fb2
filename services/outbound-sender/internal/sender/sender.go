// Package sender turns outbound message requests into Twilio API calls.
// A ledger record is written before the call and completed after it, so a
// redelivered request whose message Twilio already accepted is not sent
// again.
package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
)

// Emitter publishes one event under a dedupe id.
type Emitter interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// Options of the sender.
type Options struct {
	// TwilioBaseURL redirects every Twilio call (the emulator); nil for Twilio.
	TwilioBaseURL *url.URL
	// StatusCallbackBaseURL is chat-handler's public base URL; Messaging
	// sends ask Twilio for status callbacks there.
	StatusCallbackBaseURL string
	Timeout               time.Duration
}

// Sender handles OutboundMessageRequested.
type Sender struct {
	pub    Emitter
	lookup configv1.LookupServiceClient
	ledger *mongo.Collection
	opts   Options
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]cachedClient // tenant/entry -> client
}

type cachedClient struct {
	c  *twilio.RestClient
	at time.Time
}

// New returns a sender with its ledger in db.
func New(pub Emitter, lookup configv1.LookupServiceClient, db *mongo.Database, opts Options, log *slog.Logger) *Sender {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	return &Sender{pub: pub, lookup: lookup, ledger: db.Collection("ledger"), opts: opts, log: log, now: time.Now, clients: map[string]cachedClient{}}
}

// ledgerDoc is one outbound message's record.
type ledgerDoc struct {
	ID        string    `bson:"_id"`
	Tenant    string    `bson:"tenant"`
	RequestID string    `bson:"request_id"`
	SessionID string    `bson:"session_id,omitempty"`
	State     string    `bson:"state"` // pending | sent | failed
	TwilioSID string    `bson:"twilio_sid,omitempty"`
	Status    string    `bson:"status,omitempty"`
	ErrorCode int32     `bson:"error_code,omitempty"`
	ErrorMsg  string    `bson:"error_message,omitempty"`
	Attempts  int32     `bson:"attempts"`
	CreatedAt time.Time `bson:"created_at"`
	UpdatedAt time.Time `bson:"updated_at"`
}

// Handle sends one request.
func (s *Sender) Handle(ctx context.Context, m *bus.Message) error {
	var req outboundv1.OutboundMessageRequested
	if err := m.Decode(&req); err != nil {
		return err
	}
	if err := validate(&req, m.Tenant()); err != nil {
		return bus.Permanent(err)
	}
	key := req.GetTenantId() + "/" + req.GetRequestId()
	doc, err := s.begin(ctx, key, &req)
	if err != nil {
		return err
	}
	switch doc.State {
	case "sent":
		return s.emitSent(ctx, &req, doc)
	case "failed":
		return s.emitFailed(ctx, &req, doc)
	}
	c, err := s.client(ctx, req.GetTenantId(), req.GetEntryId())
	if err != nil {
		if status.Code(err) == codes.NotFound || status.Code(err) == codes.InvalidArgument {
			return s.fail(ctx, key, &req, doc, 0, fmt.Sprintf("no sending credentials for entry %q", req.GetEntryId()))
		}
		return err
	}
	doc.Attempts++
	sid, st, err := s.send(c, &req)
	if err != nil {
		var te *client.TwilioRestError
		if errors.As(err, &te) && te.Status >= 400 && te.Status < 500 && te.Status != 429 {
			return s.fail(ctx, key, &req, doc, int32(te.Code), te.Message)
		}
		_ = s.save(ctx, key, bson.M{"attempts": doc.Attempts})
		return fmt.Errorf("send %s: %w", req.GetRequestId(), err)
	}
	doc.State, doc.TwilioSID, doc.Status = "sent", sid, st
	if err := s.save(ctx, key, bson.M{"state": "sent", "twilio_sid": sid, "status": st, "attempts": doc.Attempts}); err != nil {
		// Twilio has the message: do not send it again on redelivery.
		s.log.Error("ledger update after a successful send", "request_id", req.GetRequestId(), "twilio_sid", sid, "err", err)
	}
	return s.emitSent(ctx, &req, doc)
}

func validate(r *outboundv1.OutboundMessageRequested, tenant string) error {
	var missing []string
	if r.GetTenantId() != tenant {
		return fmt.Errorf("request names tenant %q on a subject of tenant %q", r.GetTenantId(), tenant)
	}
	if r.GetRequestId() == "" {
		missing = append(missing, "request_id")
	}
	if r.GetEntryId() == "" {
		missing = append(missing, "entry_id")
	}
	if r.GetConversation().GetCustomerAddress() == "" && r.GetConversation().GetConversationSid() == "" {
		missing = append(missing, "conversation")
	}
	if r.GetBody() == "" && len(r.GetMediaUrls()) == 0 && r.GetContentSid() == "" {
		missing = append(missing, "body, media or content_sid")
	}
	if len(missing) > 0 {
		return fmt.Errorf("outbound request lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// begin writes the pending ledger record, or returns the existing one.
func (s *Sender) begin(ctx context.Context, key string, r *outboundv1.OutboundMessageRequested) (*ledgerDoc, error) {
	now := s.now()
	doc := &ledgerDoc{ID: key, Tenant: r.GetTenantId(), RequestID: r.GetRequestId(), SessionID: r.GetSessionId(), State: "pending", CreatedAt: now, UpdatedAt: now}
	_, err := s.ledger.InsertOne(ctx, doc)
	if err == nil {
		return doc, nil
	}
	if !mongodb.IsDuplicateKey(err) {
		return nil, fmt.Errorf("ledger insert: %w", err)
	}
	var existing ledgerDoc
	if err := s.ledger.FindOne(ctx, bson.M{"_id": key}).Decode(&existing); err != nil {
		return nil, fmt.Errorf("ledger read: %w", err)
	}
	return &existing, nil
}

func (s *Sender) save(ctx context.Context, key string, set bson.M) error {
	set["updated_at"] = s.now()
	_, err := s.ledger.UpdateOne(ctx, bson.M{"_id": key}, bson.M{"$set": set})
	return err
}

func (s *Sender) fail(ctx context.Context, key string, r *outboundv1.OutboundMessageRequested, doc *ledgerDoc, code int32, msg string) error {
	doc.State, doc.ErrorCode, doc.ErrorMsg = "failed", code, msg
	if err := s.save(ctx, key, bson.M{"state": "failed", "error_code": code, "error_message": msg, "attempts": doc.Attempts}); err != nil {
		return fmt.Errorf("ledger update: %w", err)
	}
	return s.emitFailed(ctx, r, doc)
}

func (s *Sender) emitSent(ctx context.Context, r *outboundv1.OutboundMessageRequested, d *ledgerDoc) error {
	return s.pub.Emit(ctx, subjects.OutboundSent(r.GetTenantId()), &outboundv1.OutboundMessageSent{
		TenantId: r.GetTenantId(), RequestId: r.GetRequestId(), SessionId: r.GetSessionId(), TwilioSid: d.TwilioSID,
		Status: deliveryStatus(d.Status), Attempts: d.Attempts, SentAt: timestamppb.New(s.now()),
	}, r.GetRequestId()+":sent")
}

func (s *Sender) emitFailed(ctx context.Context, r *outboundv1.OutboundMessageRequested, d *ledgerDoc) error {
	return s.pub.Emit(ctx, subjects.OutboundFailed(r.GetTenantId()), &outboundv1.OutboundMessageFailed{
		TenantId: r.GetTenantId(), RequestId: r.GetRequestId(), SessionId: r.GetSessionId(), ErrorCode: d.ErrorCode,
		ErrorMessage: d.ErrorMsg, Attempts: d.Attempts, FailedAt: timestamppb.New(s.now()),
	}, r.GetRequestId()+":failed")
}

func deliveryStatus(s string) messagingv1.DeliveryStatus {
	if v, ok := messagingv1.DeliveryStatus_value["DELIVERY_STATUS_"+strings.ToUpper(s)]; ok {
		return messagingv1.DeliveryStatus(v)
	}
	return messagingv1.DeliveryStatus_DELIVERY_STATUS_QUEUED
}

const clientTTL = 30 * time.Second

func (s *Sender) client(ctx context.Context, tenant, entry string) (cachedClient, error) {
	k := tenant + "/" + entry
	s.mu.Lock()
	c, ok := s.clients[k]
	s.mu.Unlock()
	if ok && time.Since(c.at) < clientTTL {
		return c, nil
	}
	res, err := s.lookup.GetSendingCredentials(ctx, &configv1.GetSendingCredentialsRequest{TenantId: tenant, EntryId: entry})
	if err != nil {
		return cachedClient{}, err
	}
	c = cachedClient{
		c: twilioapi.NewClient(twilioapi.Credentials{
			AccountSID: res.GetAccountSid(), APIKeySID: res.GetApiKeySid(), APIKeySecret: res.GetApiKeySecret(),
			Region: res.GetRegion(), Edge: res.GetEdge(),
		}, s.opts.TwilioBaseURL, s.opts.Timeout),
		at: time.Now(),
	}
	s.mu.Lock()
	s.clients[k] = c
	s.mu.Unlock()
	return c, nil
}

// send calls Twilio once and returns the message SID and its status.
func (s *Sender) send(c cachedClient, r *outboundv1.OutboundMessageRequested) (string, string, error) {
	conv := r.GetConversation()
	if conv.GetPath() == messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS {
		p := &conversations.CreateServiceConversationMessageParams{}
		p.SetBody(r.GetBody())
		if a := r.GetAuthor(); a != "" {
			p.SetAuthor(a)
		}
		if r.GetContentSid() != "" {
			p.SetContentSid(r.GetContentSid())
			if r.GetContentVariables() != "" {
				p.SetContentVariables(r.GetContentVariables())
			}
		}
		p.SetAttributes(fmt.Sprintf(`{"switchboard_request_id":%q}`, r.GetRequestId()))
		msg, err := c.c.ConversationsV1.CreateServiceConversationMessage(conv.GetChatServiceSid(), conv.GetConversationSid(), p)
		if err != nil {
			return "", "", err
		}
		return deref(msg.Sid), "sent", nil
	}
	p := &twapi.CreateMessageParams{}
	p.SetTo(conv.GetCustomerAddress())
	if mg := conv.GetMessagingServiceSid(); mg != "" {
		p.SetMessagingServiceSid(mg)
	} else {
		p.SetFrom(conv.GetBusinessAddress())
	}
	if r.GetContentSid() != "" {
		p.SetContentSid(r.GetContentSid())
		if r.GetContentVariables() != "" {
			p.SetContentVariables(r.GetContentVariables())
		}
	} else {
		if r.GetBody() != "" {
			p.SetBody(r.GetBody())
		}
		if len(r.GetMediaUrls()) > 0 {
			p.SetMediaUrl(r.GetMediaUrls())
		}
	}
	if base := s.opts.StatusCallbackBaseURL; base != "" {
		p.SetStatusCallback(strings.TrimRight(base, "/") + "/api/acs/chat-handler/tenants/" + r.GetTenantId() + "/messaging/status")
	}
	msg, err := c.c.Api.CreateMessage(p)
	if err != nil {
		return "", "", err
	}
	st := "queued"
	if msg.Status != nil {
		st = *msg.Status
	}
	return deref(msg.Sid), st, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
