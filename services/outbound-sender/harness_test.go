package outboundsender_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	outboundsender "github.com/switchboard-cc/switchboard/services/outbound-sender"
	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// The emulated Twilio account and the tenant's entries.
const (
	tenant = "acme"
	// otherTenant sends through the same emulated account (cross-tenant
	// tests); the relay reports its status callbacks too.
	otherTenant  = "globex"
	accountSID   = "AC00000000000000000000000000000001"
	apiKeySID    = "SK00000000000000000000000000000001"
	apiKeySecret = "keySecret0123456789"
	authToken    = "authToken0123456789"
	chatService  = "IS00000000000000000000000000000001"
	msgService   = "MG00000000000000000000000000000001"

	smsNumber   = "+15550100001"          // Programmable Messaging, SMS
	waNumber    = "whatsapp:+15550100002" // Programmable Messaging, WhatsApp
	convNumber  = "+15550100003"          // Conversations autocreation
	poolNumber  = "+15550100004"          // in the Messaging Service pool
	quietNumber = "+15550100005"          // no inbound webhook: Switchboard never sees its STOPs

	entrySMS  = "sms-entry"
	entryWA   = "wa-entry"
	entryConv = "conv-entry"
	entryPool = "pool-entry"
	authKey   = "0202020202020202020202020202020202020202020202020202020202020202"
)

// contractDir is Twilio's OpenAPI documents, ../shared/twilio-oai from the
// repository root; "" when absent.
func contractDir() string {
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "twilio-oai"))
	if err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "twilio_api_v2010.json")); err != nil {
		return ""
	}
	return dir
}

// staticCredentials answers every entry of the tenant with the account.
type staticCredentials struct{}

func (staticCredentials) SendingCredentials(_ context.Context, t, entry string) (*configv1.GetSendingCredentialsResponse, error) {
	if (t != tenant && t != otherTenant) || entry == "unknown-entry" {
		return nil, status.Error(codes.NotFound, "no such entry")
	}
	secret := apiKeySecret
	if entry == "bad-auth-entry" {
		secret = "revokedSecret0123"
	}
	return &configv1.GetSendingCredentialsResponse{
		AccountSid: accountSID, ApiKeySid: apiKeySID, ApiKeySecret: secret, Region: "us1",
		Entry: &configv1.MessagingEntry{Id: entry, TenantId: t, ConnectorId: "main"},
	}, nil
}

type harness struct {
	t      *testing.T
	bus    *bus.Bus
	sim    *simclient.Client
	simURL string
	relay  string
	// grpc calls OutboundService as a supervisor of the tenant.
	grpc     outboundv1.OutboundServiceClient
	grpcAddr string
	keys     *authn.Keys
	natsURL  string
	mongo    string
	db       string

	ev *events
}

type events struct {
	mu   sync.Mutex
	list []event
}

// with returns the harness for a subtest.
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

type event struct {
	subject string
	msg     proto.Message
}

type options struct {
	cfg       func(*outboundsender.Config)
	transport http.RoundTripper
	// noService starts only the emulator, the bus and the relay.
	noService bool
}

func simAccount(relay string) twiliosim.Account {
	base := relay + "/api/acs/chat-handler/tenants/" + tenant
	return twiliosim.Account{
		AccountSID: accountSID, AuthToken: authToken, APIKeys: map[string]string{apiKeySID: apiKeySecret},
		Numbers: []twiliosim.PhoneNumber{
			{Address: smsNumber, SmsURL: base + "/messaging/inbound"},
			{Address: waNumber, SmsURL: base + "/messaging/inbound"},
			{Address: convNumber, ConversationsServiceSID: chatService},
			{Address: poolNumber, SmsURL: base + "/messaging/inbound", MessagingServiceSID: msgService},
			{Address: quietNumber},
		},
		ConversationsServices: []twiliosim.ConversationsService{{SID: chatService, PostWebhookURL: base + "/twilio-callbacks"}},
		MessagingServices:     []twiliosim.MessagingService{{SID: msgService, StatusCallback: base + "/messaging/status"}},
	}
}

func start(t *testing.T, o options) *harness {
	t.Helper()
	t.Setenv("TWILIO_EDGE", "")
	t.Setenv("TWILIO_REGION", "")
	ns := natstest.Start(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := bus.Connect(ns.ClientURL(), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamChat, subjects.StreamOutbound, subjects.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, bus: b, natsURL: ns.ClientURL(), mongo: mongotest.URI(t), db: mongotest.DatabaseName(t), ev: &events{}}
	sub, err := b.NC.Subscribe(subjects.DomainOutbound+".>", h.collect)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	// The relay plays chat-handler: Twilio's webhooks become CHAT events.
	relayLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay := &http.Server{Handler: relayHandler(b), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = relay.Serve(relayLis) }()
	t.Cleanup(func() { _ = relay.Close() })
	h.relay = "http://" + relayLis.Addr().String()

	simLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.simURL = "http://" + simLis.Addr().String()
	simDone := make(chan error, 1)
	go func() {
		simDone <- twiliosim.Run(ctx, twiliosim.Config{
			Accounts: []twiliosim.Account{simAccount(h.relay)}, StatusDelay: 5 * time.Millisecond, ContractDir: contractDir(),
		}, twiliosim.Deps{Listener: simLis}, log.With("service", "twilio-sim"))
	}()
	h.sim = simclient.New(h.simURL, nil)
	if err := h.sim.WaitReady(timeout(t)); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	if !o.noService {
		h.runService(ctx, o, log, done)
	} else {
		close(done)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err, ok := <-done:
			if ok && err != nil {
				t.Errorf("outboundsender.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("outbound-sender did not stop within 30s")
		}
		<-simDone
	})
	return h
}

func (h *harness) runService(ctx context.Context, o options, log *slog.Logger, done chan error) {
	t := h.t
	mc, err := mongodb.Connect(context.Background(), h.mongo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = mc.Database(h.db).Drop(context.Background())
		_ = mc.Disconnect(context.Background())
	})
	keys, _ := authn.ParseKeys(authKey)
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := outboundsender.Defaults()
	cfg.NATSURL, cfg.MongoURI, cfg.Database, cfg.AuthKeys = h.natsURL, h.mongo, h.db, authKey
	cfg.TwilioBaseURL, cfg.StatusCallbackBaseURL = h.simURL, h.relay
	cfg.TwilioTimeout = 5 * time.Second
	cfg.SMSRate, cfg.WhatsAppRate = "1000seg/s", "1000msg/s"
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	go func() {
		done <- outboundsender.Run(ctx, cfg, outboundsender.Deps{
			Bus: h.bus, Mongo: mc, AuthKeys: keys, GRPCListener: glis, Credentials: staticCredentials{}, Transport: o.transport,
		}, log.With("service", outboundsender.Name))
	}()
	h.grpcAddr, h.keys = glis.Addr().String(), keys
	h.grpc = h.client(authn.Claims{Tenant: tenant, Roles: []string{authn.RoleSupervisor}, Name: "test", RegisteredClaims: jwt.RegisteredClaims{Subject: "tester"}})
}

// client calls OutboundService with a token carrying claims.
func (h *harness) client(c authn.Claims) outboundv1.OutboundServiceClient {
	h.t.Helper()
	tok, err := h.keys.Mint(c, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	conn, err := grpc.NewClient(h.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = conn.Close() })
	return outboundv1.NewOutboundServiceClient(conn)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var eventTypes = map[string]func() proto.Message{
	subjects.KindOutboundRequested:      func() proto.Message { return &outboundv1.OutboundMessageRequested{} },
	subjects.KindOutboundSent:           func() proto.Message { return &outboundv1.OutboundMessageSent{} },
	subjects.KindOutboundFailed:         func() proto.Message { return &outboundv1.OutboundMessageFailed{} },
	subjects.KindOutboundDeliveryUpdate: func() proto.Message { return &outboundv1.OutboundDeliveryUpdated{} },
	subjects.KindOutboundContactUpdated: func() proto.Message { return &outboundv1.OutboundContactUpdated{} },
}

func (h *harness) collect(m *nats.Msg) {
	s, err := subjects.Parse(m.Subject)
	if err != nil {
		return
	}
	mk, ok := eventTypes[s.Kind()]
	if !ok {
		return
	}
	msg := mk()
	if proto.Unmarshal(m.Data, msg) != nil {
		return
	}
	h.ev.mu.Lock()
	h.ev.list = append(h.ev.list, event{m.Subject, msg})
	h.ev.mu.Unlock()
}

// find returns the events of a kind that match.
func find[T proto.Message](h *harness, kind string, match func(T) bool) []T {
	h.ev.mu.Lock()
	defer h.ev.mu.Unlock()
	var out []T
	for _, e := range h.ev.list {
		s, _ := subjects.Parse(e.subject)
		if s.Kind() != kind {
			continue
		}
		if v, ok := e.msg.(T); ok && (match == nil || match(v)) {
			out = append(out, v)
		}
	}
	return out
}

// waitEvent polls until an event of kind matches.
func waitEvent[T proto.Message](t *testing.T, h *harness, kind string, match func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got := find(h, kind, match); len(got) > 0 {
			return got[0]
		}
		if time.Now().After(deadline) {
			var zero T
			t.Fatalf("no %s event matched within 30s", kind)
			return zero
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sentFor(id string) func(*outboundv1.OutboundMessageSent) bool {
	return func(e *outboundv1.OutboundMessageSent) bool { return e.GetRequestId() == id }
}

func failedFor(id string) func(*outboundv1.OutboundMessageFailed) bool {
	return func(e *outboundv1.OutboundMessageFailed) bool { return e.GetRequestId() == id }
}

func (h *harness) waitSent(id string) *outboundv1.OutboundMessageSent {
	h.t.Helper()
	return waitEvent(h.t, h, subjects.KindOutboundSent, sentFor(id))
}

func (h *harness) waitFailed(id string) *outboundv1.OutboundMessageFailed {
	h.t.Helper()
	return waitEvent(h.t, h, subjects.KindOutboundFailed, failedFor(id))
}

// request publishes an outbound request.
func (h *harness) request(r *outboundv1.OutboundMessageRequested) {
	h.t.Helper()
	h.publishRequest(r, r.GetRequestId())
}

func (h *harness) publishRequest(r *outboundv1.OutboundMessageRequested, msgID string) {
	h.t.Helper()
	r.TenantId = tenant
	if r.RequestedAt == nil {
		r.RequestedAt = timestamppb.Now()
	}
	if err := h.bus.Emit(context.Background(), subjects.OutboundRequested(tenant), r, msgID); err != nil {
		h.t.Fatal(err)
	}
}

func smsTo(customer string) *messagingv1.ConversationRef {
	return &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, CustomerAddress: customer, BusinessAddress: smsNumber}
}

func waTo(customer string) *messagingv1.ConversationRef {
	return &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_WHATSAPP, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, CustomerAddress: customer, BusinessAddress: waNumber}
}

// sentTo lists what the emulator holds as sent to customer by the business
// (REST sends only, not Twilio's own keyword auto-replies).
func (h *harness) sentTo(customer string) []simclient.OutboundMessage {
	h.t.Helper()
	msgs, err := h.sim.Inbox(context.Background(), customer)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []simclient.OutboundMessage
	for _, m := range msgs {
		if m.Path == "messaging" || m.Path == "conversations" {
			out = append(out, m)
		}
	}
	return out
}

// customerSays has the customer text a business number; the relay turns
// the webhook into a CHAT event.
func (h *harness) customerSays(from, to, body string) simclient.CustomerMessageResult {
	h.t.Helper()
	res, err := h.sim.SendMessage(timeout(h.t), simclient.CustomerMessage{From: from, To: to, Body: body})
	if err != nil {
		h.t.Fatal(err)
	}
	if res.Webhook == nil || res.Webhook.Status != http.StatusOK {
		h.t.Fatalf("customer message webhook: %+v", res.Webhook)
	}
	return res
}

func (h *harness) contact(conv *messagingv1.ConversationRef) *outboundv1.ContactState {
	h.t.Helper()
	res, err := h.grpc.GetContactState(context.Background(), &outboundv1.GetContactStateRequest{TenantId: tenant, Conversation: conv})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.GetState()
}

func (h *harness) delivery(id string) *outboundv1.Delivery {
	h.t.Helper()
	res, err := h.grpc.GetDelivery(context.Background(), &outboundv1.GetDeliveryRequest{TenantId: tenant, RequestId: id})
	if err != nil {
		h.t.Fatalf("get delivery %s: %v", id, err)
	}
	return res.GetDelivery()
}

// waitDelivery polls the ledger until done holds.
func (h *harness) waitDelivery(id string, done func(*outboundv1.Delivery) bool) *outboundv1.Delivery {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last *outboundv1.Delivery
	var lastErr error
	for time.Now().Before(deadline) {
		res, err := h.grpc.GetDelivery(context.Background(), &outboundv1.GetDeliveryRequest{TenantId: tenant, RequestId: id})
		lastErr = err
		if err == nil {
			last = res.GetDelivery()
			if done(last) {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("delivery %s never reached the expected state; last %v (%v)", id, last, lastErr)
	return nil
}

// relayHandler turns Twilio webhooks into the CHAT events chat-handler
// publishes (without signature checks or routing: one tenant).
func relayHandler(b *bus.Bus) http.Handler {
	mux := http.NewServeMux()
	base := "/api/acs/chat-handler/tenants/" + tenant
	publish := func(w http.ResponseWriter, r *http.Request, subject string, ev proto.Message, id string) {
		if err := b.Emit(r.Context(), subject, ev, id); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Response></Response>`))
	}
	mux.HandleFunc("POST /api/acs/chat-handler/tenants/{tenant}/messaging/status", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		t := r.PathValue("tenant")
		st := r.PostForm.Get("MessageStatus")
		code, _ := strconv.Atoi(r.PostForm.Get("ErrorCode"))
		sid := r.PostForm.Get("MessageSid")
		publish(w, r, subjects.ChatDeliveryUpdated(t), &chatv1.DeliveryUpdated{
			TenantId: t, MessageSid: sid, Status: statusEnum(st), RawStatus: st, ErrorCode: int32(code),
			OccurredAt: timestamppb.Now(), Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING,
		}, "delivery:"+t+"/"+sid+"::"+st)
	})
	mux.HandleFunc("POST "+base+"/messaging/inbound", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		p := r.PostForm
		ch := messagingv1.Channel_CHANNEL_SMS
		if strings.HasPrefix(p.Get("To"), "whatsapp:") {
			ch = messagingv1.Channel_CHANNEL_WHATSAPP
		}
		ev := &chatv1.MessageReceived{
			TenantId: tenant, MessageSid: p.Get("MessageSid"), EntryId: entrySMS, Body: p.Get("Body"), ReceivedAt: timestamppb.Now(),
			Conversation: &messagingv1.ConversationRef{Channel: ch, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING,
				CustomerAddress: p.Get("From"), BusinessAddress: p.Get("To"), MessagingServiceSid: p.Get("MessagingServiceSid")},
		}
		switch p.Get("OptOutType") {
		case "STOP":
			ev.OptOutType = messagingv1.OptOutType_OPT_OUT_TYPE_STOP
		case "START":
			ev.OptOutType = messagingv1.OptOutType_OPT_OUT_TYPE_START
		}
		publish(w, r, subjects.ChatMessageReceived(tenant), ev, p.Get("MessageSid"))
	})
	mux.HandleFunc("POST "+base+"/twilio-callbacks", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		p := r.PostForm
		switch p.Get("EventType") {
		case "onDeliveryUpdated":
			st := p.Get("Status")
			code, _ := strconv.Atoi(p.Get("ErrorCode"))
			publish(w, r, subjects.ChatDeliveryUpdated(tenant), &chatv1.DeliveryUpdated{
				TenantId: tenant, MessageSid: p.Get("MessageSid"), Status: statusEnum(st), RawStatus: st, ErrorCode: int32(code),
				OccurredAt: timestamppb.Now(), Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, ConversationSid: p.Get("ConversationSid"),
			}, "delivery:"+p.Get("MessageSid")+":"+p.Get("DeliveryReceiptSid")+":"+st)
		case "onMessageAdded":
			if p.Get("Source") == "API" {
				w.WriteHeader(http.StatusOK)
				return
			}
			publish(w, r, subjects.ChatMessageReceived(tenant), &chatv1.MessageReceived{
				TenantId: tenant, MessageSid: p.Get("MessageSid"), EntryId: entryConv, Body: p.Get("Body"), ReceivedAt: timestamppb.Now(),
				Conversation: &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS,
					CustomerAddress: p.Get("Author"), ChatServiceSid: p.Get("ChatServiceSid"), ConversationSid: p.Get("ConversationSid")},
			}, p.Get("MessageSid"))
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	return mux
}

func statusEnum(s string) messagingv1.DeliveryStatus {
	if v, ok := messagingv1.DeliveryStatus_value["DELIVERY_STATUS_"+strings.ToUpper(s)]; ok {
		return messagingv1.DeliveryStatus(v)
	}
	return messagingv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED
}

func rid(t *testing.T, suffix string) string {
	return fmt.Sprintf("%s-%s", strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()), suffix)
}
