package chathandler_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/chattest"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// stack boots the all-in-one stack on free ports for one test.
func stack(t *testing.T) devstack.Info { return devstacktest.Start(t) }

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// jetStream reads the stack's CHAT stream with a connection of its own.
func jetStream(t *testing.T, info devstack.Info) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(info.NATSURL, nats.UserInfo(info.NATSAuth.User, info.NATSAuth.Password))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func newMsg() *chatv1.MessageReceived            { return &chatv1.MessageReceived{} }
func newDelivery() *chatv1.DeliveryUpdated       { return &chatv1.DeliveryUpdated{} }
func newConv() *chatv1.ConversationAdded         { return &chatv1.ConversationAdded{} }
func newPart() *chatv1.ParticipantAdded          { return &chatv1.ParticipantAdded{} }
func newState() *chatv1.ConversationStateUpdated { return &chatv1.ConversationStateUpdated{} }

func msgSID(sid string) func(*chatv1.MessageReceived) bool {
	return func(m *chatv1.MessageReceived) bool { return m.GetMessageSid() == sid }
}

func send(t *testing.T, ctx context.Context, sim *simclient.Client, m simclient.CustomerMessage) simclient.CustomerMessageResult {
	t.Helper()
	res, err := sim.SendMessage(ctx, m)
	if err != nil {
		t.Fatalf("customer sends %q to %s: %v", m.Body, m.To, err)
	}
	for _, ev := range res.Events {
		if ev.Status != http.StatusOK && ev.FallbackStatus != http.StatusOK {
			t.Fatalf("webhook %s answered %d (fallback %d): %s", ev.Event, ev.Status, ev.FallbackStatus, ev.Error)
		}
	}
	return res
}

// Customer messages on the Conversations path (the demo SMS number with
// autocreation): the conversation, its participant, messages with and
// without a body and with media, delivery receipts of the greeting, and
// the conversation closing, each once on the CHAT stream.
func TestConversationsEndToEnd(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	js := jetStream(t, info)
	const customer = "+15551110001"

	first := send(t, ctx, sim, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Hello, where is my parcel?"})
	if first.Path != "conversations" || first.ConversationSID == "" {
		t.Fatalf("emulator took path %q conversation %q, want an autocreated conversation", first.Path, first.ConversationSID)
	}
	conv := first.ConversationSID

	convs := chattest.Find(t, js, subjects.ChatConversationAdded("demo"), newConv, func(c *chatv1.ConversationAdded) bool {
		return c.GetConversation().GetConversationSid() == conv
	})
	if len(convs) != 1 {
		t.Fatalf("%d ConversationAdded for %s, want 1", len(convs), conv)
	}
	if c := convs[0].GetConversation(); c.GetCustomerAddress() != customer || c.GetBusinessAddress() != devstack.DemoSMSNumber ||
		c.GetChannel() != messagingv1.Channel_CHANNEL_SMS || convs[0].GetEntryId() != "sms-front-desk" || convs[0].GetServiceId() != "support" {
		t.Errorf("ConversationAdded = %v", convs[0])
	}
	parts := chattest.Find(t, js, subjects.ChatParticipantAdded("demo"), newPart, func(p *chatv1.ParticipantAdded) bool {
		return p.GetConversationSid() == conv
	})
	if len(parts) != 1 || parts[0].GetParticipantSid() != first.ParticipantSID || parts[0].GetAddress() != customer ||
		parts[0].GetProxyAddress() != devstack.DemoSMSNumber {
		t.Fatalf("ParticipantAdded = %v, want one for %s", parts, first.ParticipantSID)
	}
	msgs := chattest.Find(t, js, subjects.ChatMessageReceived("demo"), newMsg, msgSID(first.MessageSID))
	if len(msgs) != 1 || msgs[0].GetBody() != "Hello, where is my parcel?" || msgs[0].GetConversation().GetConversationSid() != conv ||
		msgs[0].GetParticipantSid() != first.ParticipantSID || msgs[0].GetIdempotencyToken() == "" {
		t.Fatalf("MessageReceived = %v", msgs)
	}

	// The workflow greets the customer through the conversation; Twilio
	// reports the greeting's delivery with onDeliveryUpdated.
	deliveries := chattest.WaitFind(t, js, subjects.ChatDeliveryUpdated("demo"), 2, newDelivery, func(d *chatv1.DeliveryUpdated) bool {
		return d.GetConversationSid() == conv
	})
	seen := map[messagingv1.DeliveryStatus]bool{}
	for _, d := range deliveries {
		seen[d.GetStatus()] = true
		if d.GetPath() != messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS || !strings.HasPrefix(d.GetDeliveryReceiptSid(), "DY") ||
			!strings.HasPrefix(d.GetMessageSid(), "IM") {
			t.Errorf("DeliveryUpdated = %v", d)
		}
	}
	if !seen[messagingv1.DeliveryStatus_DELIVERY_STATUS_SENT] || !seen[messagingv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED] {
		t.Errorf("delivery statuses %v, want sent and delivered", seen)
	}

	// Media without a body.
	photo := send(t, ctx, sim, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber,
		Media: []simclient.Media{{URL: "https://example.com/photo.jpg", ContentType: "image/jpeg", Filename: "photo.jpg", Size: 2048}}})
	msgs = chattest.Find(t, js, subjects.ChatMessageReceived("demo"), newMsg, msgSID(photo.MessageSID))
	if len(msgs) != 1 || msgs[0].GetBody() != "" || len(msgs[0].GetMedia()) != 1 ||
		!strings.HasPrefix(msgs[0].GetMedia()[0].GetSid(), "ME") || msgs[0].GetMedia()[0].GetContentType() != "image/jpeg" ||
		msgs[0].GetMedia()[0].GetFilename() != "photo.jpg" {
		t.Fatalf("media message = %v", msgs)
	}

	// Three deliveries of one webhook: one message.
	dup := send(t, ctx, sim, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "are you there?", Deliveries: 3})
	if dup.Webhook == nil || dup.Webhook.Attempts != 3 {
		t.Fatalf("emulator delivered %+v, want 3 attempts", dup.Webhook)
	}
	if n := len(chattest.Find(t, js, subjects.ChatMessageReceived("demo"), newMsg, msgSID(dup.MessageSID))); n != 1 {
		t.Errorf("message delivered 3 times is on the stream %d times, want 1", n)
	}

	// Twilio's timer closes the conversation.
	if err := sim.SetConversationState(ctx, conv, "closed", ""); err != nil {
		t.Fatal(err)
	}
	states := chattest.WaitFind(t, js, subjects.ChatConversationStateUpdated("demo"), 1, newState, func(s *chatv1.ConversationStateUpdated) bool {
		return s.GetConversationSid() == conv
	})
	if len(states) != 1 || states[0].GetStateTo() != chatv1.ConversationState_CONVERSATION_STATE_CLOSED ||
		states[0].GetStateFrom() != chatv1.ConversationState_CONVERSATION_STATE_ACTIVE || states[0].GetReason() != "TIMER" {
		t.Errorf("ConversationStateUpdated = %v", states)
	}

	// A new customer whose webhooks arrive in reverse order (the message
	// before its conversation), each three times.
	const late = "+15551110002"
	ooo := send(t, ctx, sim, simclient.CustomerMessage{From: late, To: devstack.DemoSMSNumber, Body: "out of order", OutOfOrder: true, Deliveries: 3})
	if len(ooo.Events) != 3 || ooo.Events[0].Event != webhook.EventMessageAdded {
		t.Fatalf("emulator sent %+v, want onMessageAdded first of 3 events", ooo.Events)
	}
	if n := len(chattest.Find(t, js, subjects.ChatMessageReceived("demo"), newMsg, msgSID(ooo.MessageSID))); n != 1 {
		t.Errorf("out-of-order message on the stream %d times, want 1", n)
	}
	if n := len(chattest.Find(t, js, subjects.ChatConversationAdded("demo"), newConv, func(c *chatv1.ConversationAdded) bool {
		return c.GetConversation().GetConversationSid() == ooo.ConversationSID
	})); n != 1 {
		t.Errorf("out-of-order ConversationAdded on the stream %d times, want 1", n)
	}
	if n := len(chattest.Find(t, js, subjects.ChatParticipantAdded("demo"), newPart, func(p *chatv1.ParticipantAdded) bool {
		return p.GetConversationSid() == ooo.ConversationSID
	})); n != 1 {
		t.Errorf("out-of-order ParticipantAdded on the stream %d times, want 1", n)
	}
}

// WhatsApp on the Programmable Messaging path (the demo WhatsApp sender):
// the inbound message with profile name, WaId and media, answered with
// empty TwiML, and the status callbacks of the greeting, in order, out of
// order and failing with an ErrorCode.
func TestMessagingEndToEnd(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	js := jetStream(t, info)
	const business = "whatsapp:+12025550101"

	const ann = "whatsapp:+15552220001"
	in := send(t, ctx, sim, simclient.CustomerMessage{From: ann, To: business, Body: "Hola", ProfileName: "Ann",
		Media: []simclient.Media{{URL: "https://example.com/receipt.pdf", ContentType: "application/pdf"}}})
	if in.Path != "messaging" {
		t.Fatalf("emulator took path %q, want messaging", in.Path)
	}
	msgs := chattest.Find(t, js, subjects.ChatMessageReceived("demo"), newMsg, msgSID(in.MessageSID))
	if len(msgs) != 1 {
		t.Fatalf("%d MessageReceived for %s, want 1", len(msgs), in.MessageSID)
	}
	m := msgs[0]
	if m.GetBody() != "Hola" || m.GetProfileName() != "Ann" || m.GetWaId() != "15552220001" || m.GetEntryId() != "whatsapp-front-desk" ||
		len(m.GetMedia()) != 1 || !isTwilioMediaURL(m.GetMedia()[0].GetUrl(), m.GetAccountSid(), in.MessageSID) || m.GetMedia()[0].GetContentType() != "application/pdf" ||
		m.GetConversation().GetChannel() != messagingv1.Channel_CHANNEL_WHATSAPP || m.GetConversation().GetPath() != messagingv1.TwilioPath_TWILIO_PATH_MESSAGING ||
		m.GetConversation().GetBusinessAddress() != business || m.GetConversation().GetCustomerAddress() != ann {
		t.Errorf("MessageReceived = %v", m)
	}
	// The emulator parsed chat-handler's answer as TwiML asking for nothing.
	if len(in.Replies) != 0 {
		t.Errorf("TwiML answer made Twilio send %v, want nothing", in.Replies)
	}

	statuses := func(to string, n int) map[messagingv1.DeliveryStatus]*chatv1.DeliveryUpdated {
		t.Helper()
		greeting, err := sim.WaitInbox(ctx, to, 1)
		if err != nil {
			t.Fatal(err)
		}
		sid := greeting[0].SID
		got := chattest.WaitFind(t, js, subjects.ChatDeliveryUpdated("demo"), n, newDelivery, func(d *chatv1.DeliveryUpdated) bool {
			return d.GetMessageSid() == sid
		})
		out := map[messagingv1.DeliveryStatus]*chatv1.DeliveryUpdated{}
		for _, d := range got {
			if d.GetPath() != messagingv1.TwilioPath_TWILIO_PATH_MESSAGING || d.GetEntryId() != "whatsapp-front-desk" {
				t.Errorf("DeliveryUpdated = %v", d)
			}
			out[d.GetStatus()] = d
		}
		if len(got) != n {
			t.Errorf("%d status events for %s, want %d: %v", len(got), sid, n, got)
		}
		return out
	}
	// The greeting to Ann: sent, then delivered.
	if st := statuses(ann, 2); st[messagingv1.DeliveryStatus_DELIVERY_STATUS_SENT] == nil || st[messagingv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED] == nil {
		t.Errorf("statuses %v, want sent and delivered", st)
	}

	// Callbacks out of order: delivered arrives before sent; both are kept.
	const bo = "whatsapp:+15552220002"
	yes := true
	if _, err := sim.AddDeliveryRule(ctx, simclient.DeliveryRule{To: bo, DeliveryOptions: simclient.DeliveryOptions{OutOfOrder: &yes}}); err != nil {
		t.Fatal(err)
	}
	send(t, ctx, sim, simclient.CustomerMessage{From: bo, To: business, Body: "hi"})
	if st := statuses(bo, 2); st[messagingv1.DeliveryStatus_DELIVERY_STATUS_SENT] == nil || st[messagingv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED] == nil {
		t.Errorf("out-of-order statuses %v, want sent and delivered", st)
	}

	// A carrier failure: sent, then undelivered with ErrorCode 30007.
	const cy = "whatsapp:+15552220003"
	code := 30007
	if _, err := sim.AddDeliveryRule(ctx, simclient.DeliveryRule{To: cy, DeliveryOptions: simclient.DeliveryOptions{ErrorCode: &code}}); err != nil {
		t.Fatal(err)
	}
	send(t, ctx, sim, simclient.CustomerMessage{From: cy, To: business, Body: "hi"})
	st := statuses(cy, 2)
	if u := st[messagingv1.DeliveryStatus_DELIVERY_STATUS_UNDELIVERED]; u == nil || u.GetErrorCode() != 30007 {
		t.Errorf("statuses %v, want undelivered with 30007", st)
	}

	// Three deliveries of one inbound webhook: one message.
	dup := send(t, ctx, sim, simclient.CustomerMessage{From: ann, To: business, Body: "again", Deliveries: 3})
	if dup.Webhook == nil || dup.Webhook.Attempts != 3 {
		t.Fatalf("emulator delivered %+v, want 3 attempts", dup.Webhook)
	}
	if n := len(chattest.Find(t, js, subjects.ChatMessageReceived("demo"), newMsg, msgSID(dup.MessageSID))); n != 1 {
		t.Errorf("message delivered 3 times is on the stream %d times, want 1", n)
	}
}

// acme is a second tenant with SMS on the Programmable Messaging path: a
// Messaging Service sender pool with Advanced Opt-Out whose webhook is set
// on the service, and a number whose primary URL is down so Twilio uses
// its fallback URL.
const (
	acmeAccount  = "AC11111111111111111111111111111111"
	acmeToken    = "11111111111111111111111111111111"
	acmeKey      = "SK11111111111111111111111111111111"
	acmeSecret   = "acmeSecret11111111111111111111111"
	acmeService  = "MG11111111111111111111111111111111"
	acmePoolA    = "+12025550191"
	acmePoolB    = "+12025550192"
	acmeFallback = "+12025550193"
	acmeSpecYAML = `
tenant:
  id: acme
  display_name: Acme
  modalities: {instant_messaging: true, twilio: true, sms: true, whatsapp: false}
organization_units:
  - {id: root, name: Acme}
connectors:
  - {id: twilio, name: Twilio, org_unit: root, account_sid: ` + acmeAccount + `, api_key_sid: ` + acmeKey + `, api_key_secret: ` + acmeSecret + `, auth_token: "` + acmeToken + `", region: us1}
messaging_entries:
  - {id: sms-pool, name: SMS pool, org_unit: root, connector: twilio, channel: sms, path: messaging, messaging_service_sid: ` + acmeService + `, business_addresses: ["` + acmePoolA + `", "` + acmePoolB + `"], disabled: %DISABLED%}
  - {id: sms-fallback, name: SMS with fallback, org_unit: root, connector: twilio, channel: sms, path: messaging, business_addresses: ["` + acmeFallback + `"]}
services:
  - {id: sales, name: Sales, org_unit: root, im: true, channels: [sms], messaging_entries: [sms-pool, sms-fallback], greeting: Thanks for contacting Acme!}
`
)

func applyAcme(t *testing.T, ctx context.Context, info devstack.Info, disabled bool) {
	t.Helper()
	applySpec(t, ctx, info, strings.Replace(acmeSpecYAML, "%DISABLED%", map[bool]string{true: "true", false: "false"}[disabled], 1))
}

// applySpec applies a tenant file as the platform.
func applySpec(t *testing.T, ctx context.Context, info devstack.Info, yaml string) {
	t.Helper()
	spec, err := tenantspec.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := info.AuthKeys.Mint(authn.Claims{Roles: []string{authn.RolePlatform}, Name: "test", RegisteredClaims: jwt.RegisteredClaims{Subject: "test"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(info.ConfigAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := tenantspec.Apply(ctx, conn, spec); err != nil {
		t.Fatalf("apply tenant %s: %v", spec.Tenant.ID, err)
	}
}

func setupAcme(t *testing.T, ctx context.Context, info devstack.Info, sim *simclient.Client) {
	t.Helper()
	applyAcme(t, ctx, info, false)
	base := info.ChatHandlerURL + webhook.TenantPrefix + "acme"
	err := sim.PutAccount(ctx, simclient.Account{
		AccountSID: acmeAccount, AuthToken: acmeToken, APIKeys: map[string]string{acmeKey: acmeSecret},
		Numbers: []simclient.PhoneNumber{
			{Address: acmePoolA, MessagingServiceSID: acmeService},
			{Address: acmePoolB, MessagingServiceSID: acmeService},
			// Nothing listens on port 1: the connection fails and Twilio
			// calls the fallback URL.
			{Address: acmeFallback, SmsURL: "http://127.0.0.1:1/down", SmsFallbackURL: base + webhook.PathFallback},
		},
		MessagingServices: []simclient.MessagingService{{
			SID: acmeService, AdvancedOptOut: true, InboundURL: base + webhook.PathInbound + "?team=sales",
			StatusCallback: base + webhook.PathStatus,
		}},
	})
	if err != nil {
		t.Fatalf("configure the emulator for acme: %v", err)
	}
}

func TestSenderPoolOptOutFallback(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	js := jetStream(t, info)
	setupAcme(t, ctx, info, sim)
	const customer = "+15553330001"

	// MMS to the first sender of the pool, with three media items.
	var media []simclient.Media
	for _, u := range []string{"https://example.com/1.jpg", "https://example.com/2.png", "https://example.com/3.gif"} {
		media = append(media, simclient.Media{URL: u, ContentType: "image/" + u[len(u)-3:]})
	}
	mms := send(t, ctx, sim, simclient.CustomerMessage{From: customer, To: acmePoolA, Body: "see attached", Media: media})
	msgs := chattest.Find(t, js, subjects.ChatMessageReceived("acme"), newMsg, msgSID(mms.MessageSID))
	if len(msgs) != 1 || len(msgs[0].GetMedia()) != 3 || !isTwilioMediaURL(msgs[0].GetMedia()[2].GetUrl(), msgs[0].GetAccountSid(), mms.MessageSID) ||
		msgs[0].GetMedia()[2].GetContentType() != "image/gif" ||
		msgs[0].GetEntryId() != "sms-pool" || msgs[0].GetServiceId() != "sales" ||
		msgs[0].GetConversation().GetMessagingServiceSid() != acmeService {
		t.Fatalf("MMS = %v", msgs)
	}

	// The other sender of the pool: same webhook URL, same signature rules.
	other := send(t, ctx, sim, simclient.CustomerMessage{From: "+15553330002", To: acmePoolB, Body: "hi from the pool"})
	if msgs := chattest.Find(t, js, subjects.ChatMessageReceived("acme"), newMsg, msgSID(other.MessageSID)); len(msgs) != 1 ||
		msgs[0].GetConversation().GetBusinessAddress() != acmePoolB {
		t.Fatalf("pool message = %v", msgs)
	}

	// STOP, START and HELP with Advanced Opt-Out.
	for _, tt := range []struct {
		kw   string
		want messagingv1.OptOutType
	}{{"STOP", messagingv1.OptOutType_OPT_OUT_TYPE_STOP}, {"start", messagingv1.OptOutType_OPT_OUT_TYPE_START}, {"Help", messagingv1.OptOutType_OPT_OUT_TYPE_HELP}} {
		res := send(t, ctx, sim, simclient.CustomerMessage{From: customer, To: acmePoolA, Body: tt.kw})
		msgs := chattest.Find(t, js, subjects.ChatMessageReceived("acme"), newMsg, msgSID(res.MessageSID))
		if len(msgs) != 1 || msgs[0].GetOptOutType() != tt.want {
			t.Errorf("%s: MessageReceived = %v, want opt_out_type %v", tt.kw, msgs, tt.want)
		}
	}

	// The primary URL is down: Twilio calls the fallback URL.
	fb := send(t, ctx, sim, simclient.CustomerMessage{From: customer, To: acmeFallback, Body: "via the fallback"})
	if fb.Webhook == nil || fb.Webhook.Status == http.StatusOK || fb.Webhook.FallbackStatus != http.StatusOK {
		t.Fatalf("webhook summary %+v, want a failed primary and a 200 fallback", fb.Webhook)
	}
	msgs = chattest.Find(t, js, subjects.ChatMessageReceived("acme"), newMsg, msgSID(fb.MessageSID))
	if len(msgs) != 1 || !msgs[0].GetFallback() || msgs[0].GetFallbackErrorCode() != 11205 || msgs[0].GetEntryId() != "sms-fallback" {
		t.Fatalf("fallback message = %v", msgs)
	}

	// Status callbacks of the greeting to the pool customer, signed with
	// acme's token and routed by the pool sender.
	greeting, err := sim.WaitInboxMessage(ctx, "+15553330002", func(m simclient.OutboundMessage) bool { return m.Path == "messaging" })
	if err != nil {
		t.Fatal(err)
	}
	chattest.WaitFind(t, js, subjects.ChatDeliveryUpdated("acme"), 2, newDelivery, func(d *chatv1.DeliveryUpdated) bool {
		return d.GetMessageSid() == greeting.SID
	})

	// Switching the entry off refuses new messages with a 403 (once the
	// configuration change has reached chat-handler).
	applyAcme(t, ctx, info, true)
	var refused simclient.CustomerMessageResult
	for deadline := time.Now().Add(30 * time.Second); ; {
		res, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: acmePoolA, Body: "anyone?"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Webhook != nil && res.Webhook.Status == http.StatusForbidden {
			refused = res
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("disabled entry still answered %+v after 30s", res.Webhook)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(chattest.Find(t, js, subjects.ChatMessageReceived("acme"), newMsg, msgSID(refused.MessageSID))); n != 0 {
		t.Errorf("refused message is on the stream %d times", n)
	}
}

// Real webhooks taken from the emulator's log, altered the ways an
// attacker or a misconfigured proxy would: only the genuine one is taken.
func TestSignaturesEndToEnd(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	js := jetStream(t, info)
	setupAcme(t, ctx, info, sim)

	res := send(t, ctx, sim, simclient.CustomerMessage{From: "+15554440001", To: devstack.DemoSMSNumber, Body: "genuine"})
	attempts, err := sim.Webhooks(ctx, simclient.WebhookFilter{Kind: "conversations", Event: webhook.EventMessageAdded, MessageSID: res.MessageSID})
	if err != nil || len(attempts) != 1 {
		t.Fatalf("webhook log %v, %v: want one attempt", attempts, err)
	}
	a := attempts[0]
	replay := func(name, target string, params url.Values, sig string, hdr http.Header) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, a.Method, target, strings.NewReader(params.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sig != "" {
			req.Header.Set("X-Twilio-Signature", sig)
		}
		req.Header.Set("I-Twilio-Idempotency-Token", a.IdempotencyToken)
		for k, v := range hdr {
			req.Header[k] = v
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	genuine := url.Values(a.Params)
	changed := url.Values{}
	for k, v := range genuine {
		changed[k] = v
	}
	changed.Set("Body", "tampered")
	acmeURL := info.ChatHandlerURL + webhook.TenantPrefix + "acme" + webhook.PathConversations
	public := "https://switchboard.example.com" + webhook.TenantPrefix + "demo" + webhook.PathConversations
	for _, tt := range []struct {
		name   string
		target string
		params url.Values
		sig    string
		hdr    http.Header
		want   int
	}{
		{"exact replay (a Twilio retry)", a.URL, genuine, a.Signature, nil, 200},
		{"replayed with a changed body", a.URL, changed, a.Signature, nil, 403},
		{"signature missing", a.URL, genuine, "", nil, 403},
		{"forged with a guessed token", a.URL, changed, twiliosig.Sign("guessed", a.URL, changed), nil, 403},
		{"sent to another tenant's URL", acmeURL, genuine, a.Signature, nil, 403},
		{"another tenant's Auth Token", a.URL, changed, twiliosig.Sign(acmeToken, a.URL, changed), nil, 403},
		{"X-Forwarded-* from an untrusted peer", a.URL, changed, twiliosig.Sign("0123456789abcdef0123456789abcdef", public, changed),
			http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"switchboard.example.com"}}, 403},
	} {
		if got := replay(tt.name, tt.target, tt.params, tt.sig, tt.hdr); got != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.want)
		}
	}
	msgs := chattest.Find(t, js, subjects.ChatMessageReceived("demo"), newMsg, msgSID(res.MessageSID))
	if len(msgs) != 1 || msgs[0].GetBody() != "genuine" {
		t.Errorf("stream holds %v, want the genuine message once", msgs)
	}
}

// isTwilioMediaURL reports whether u is Twilio's URL of a media item of a
// message, as the Messaging webhook's MediaUrl{N} carries it.
func isTwilioMediaURL(u, account, messageSID string) bool {
	rest, ok := strings.CutPrefix(u, "https://api.twilio.com/2010-04-01/Accounts/"+account+"/Messages/"+messageSID+"/Media/ME")
	return ok && len(rest) == 32
}
