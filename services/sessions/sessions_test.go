package sessions_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

const authKey = "0101010101010101010101010101010101010101010101010101010101010101"

// fakeConfig answers sign-ins: alice is an agent, carl is an admin only,
// dora an agent without the IM license, ann an analyst.
type fakeConfig struct {
	configv1.UnimplementedLookupServiceServer
}

func (fakeConfig) AuthenticateUser(_ context.Context, r *configv1.AuthenticateUserRequest) (*configv1.AuthenticateUserResponse, error) {
	users := map[string]*configv1.User{
		"alice@acme.example": {Id: "alice", DisplayName: "Alice", ImLicense: true, Roles: []configv1.Role{configv1.Role_ROLE_AGENT}},
		"bob@acme.example":   {Id: "bob", DisplayName: "Bob", ImLicense: true, Roles: []configv1.Role{configv1.Role_ROLE_AGENT}},
		"carl@acme.example":  {Id: "carl", DisplayName: "Carl", Roles: []configv1.Role{configv1.Role_ROLE_ADMIN}},
		"dora@acme.example":  {Id: "dora", DisplayName: "Dora", Roles: []configv1.Role{configv1.Role_ROLE_AGENT}},
		"ann@acme.example":   {Id: "ann", DisplayName: "Ann", Roles: []configv1.Role{configv1.Role_ROLE_ANALYST}},
	}
	if r.GetEmail() == "locked@acme.example" || r.GetSourceAddress() == "198.51.100.66" {
		st, _ := status.New(codes.ResourceExhausted, "too many failed sign-ins; try again later").
			WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(90 * time.Second)})
		return nil, st.Err()
	}
	u, ok := users[r.GetEmail()]
	if r.GetTenantId() != "acme" || !ok || r.GetPassword() != "pw" {
		return nil, status.Error(codes.NotFound, "no such user")
	}
	return &configv1.AuthenticateUserResponse{User: u}, nil
}

// fakeDistribution accepts every offer and remembers presence.
type fakeDistribution struct {
	distributionv1.UnimplementedDistributionServiceServer
	mu       sync.Mutex
	presence map[string]distributionv1.Presence
	accepted []string
	// failStates: the next GetAgentState calls to refuse, with an error
	// not retried (an unavailable one is, for 20 s).
	failStates int
}

func (f *fakeDistribution) AcceptTask(_ context.Context, r *distributionv1.AcceptTaskRequest) (*distributionv1.AcceptTaskResponse, error) {
	if r.GetOfferId() == "gone" {
		return nil, status.Error(codes.FailedPrecondition, "offer is no longer open")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accepted = append(f.accepted, r.GetOfferId())
	return &distributionv1.AcceptTaskResponse{TaskId: "tk1", SessionId: strings.TrimPrefix(r.GetOfferId(), "of-")}, nil
}

func (f *fakeDistribution) DeclineTask(context.Context, *distributionv1.DeclineTaskRequest) (*distributionv1.DeclineTaskResponse, error) {
	return &distributionv1.DeclineTaskResponse{}, nil
}

func (f *fakeDistribution) SetAgentPresence(_ context.Context, r *distributionv1.SetAgentPresenceRequest) (*distributionv1.SetAgentPresenceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.presence[r.GetAgentId()] = r.GetPresence()
	return &distributionv1.SetAgentPresenceResponse{State: &distributionv1.AgentState{AgentId: r.GetAgentId(), Presence: r.GetPresence()}}, nil
}

func (f *fakeDistribution) GetAgentState(_ context.Context, r *distributionv1.GetAgentStateRequest) (*distributionv1.GetAgentStateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failStates > 0 {
		f.failStates--
		return nil, status.Error(codes.NotFound, "agent not known yet")
	}
	return &distributionv1.GetAgentStateResponse{State: &distributionv1.AgentState{AgentId: r.GetAgentId(), Presence: f.presence[r.GetAgentId()]}}, nil
}

func (f *fakeDistribution) presenceOf(agent string) distributionv1.Presence {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.presence[agent]
}

type harness struct {
	url  string
	bus  *bus.Bus
	keys *authn.Keys
	dist *fakeDistribution
	out  *fakeOutbound
}

func serveGRPC(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func start(t *testing.T, opts ...func(*sessions.Config, *sessions.Deps)) *harness {
	t.Helper()
	ns := natstest.Start(t)
	b, err := bus.Connect(ns.ClientURL(), "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	mc, err := mongodb.Connect(context.Background(), mongotest.URI(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	keys, _ := authn.ParseKeys(authKey)
	dist := &fakeDistribution{presence: map[string]distributionv1.Presence{}}
	cfgConn := serveGRPC(t, func(s *grpc.Server) { configv1.RegisterLookupServiceServer(s, fakeConfig{}) })
	distConn := serveGRPC(t, func(s *grpc.Server) { distributionv1.RegisterDistributionServiceServer(s, dist) })
	out := &fakeOutbound{states: map[string]*outboundv1.ContactState{}}
	outConn := serveGRPC(t, func(s *grpc.Server) { outboundv1.RegisterOutboundServiceServer(s, out) })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sessions.Defaults()
	cfg.HTTPAddr, cfg.NATSURL, cfg.MongoURI, cfg.Database, cfg.AuthKeys = lis.Addr().String(), ns.ClientURL(), mongotest.URI(t), mongotest.DatabaseName(t), authKey
	deps := sessions.Deps{Listener: lis, Bus: b, Mongo: mc, ConfigConn: cfgConn, DistributionConn: distConn, OutboundConn: outConn, AuthKeys: keys}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- sessions.Run(ctx, cfg, deps, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sessions.Run: %v", err)
		}
	})
	h := &harness{url: "http://" + lis.Addr().String(), bus: b, keys: keys, dist: dist, out: out}
	waitFor(t, "sessions serving", func() bool {
		_, err := agentclient.Login(context.Background(), h.url, "acme", "x@acme.example", "bad")
		return err != nil && strings.Contains(err.Error(), "401")
	})
	return h
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (h *harness) agent(t *testing.T, email string) *agentclient.Conn {
	t.Helper()
	ctx := ctxT(t)
	tok, err := agentclient.Login(ctx, h.url, "acme", email, "pw")
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.Dial(ctx, h.url, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.WaitFor(ctx, "snapshot", nil); err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *harness) publish(t *testing.T, subject string, ev proto.Message, msgID string) {
	t.Helper()
	if _, err := h.bus.Publish(context.Background(), subject, ev, bus.MsgID(msgID)); err != nil {
		t.Fatal(err)
	}
}

// streamEvents returns the events published on a subject so far.
func (h *harness) streamEvents(t *testing.T, stream, subject string) []jetstream.RawStreamMsg {
	t.Helper()
	s, err := h.bus.JS.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err == nil && m.Subject == subject {
			out = append(out, *m)
		}
	}
	return out
}

func inbound(sid, customer, body string) *chatv1.MessageReceived {
	return &chatv1.MessageReceived{
		TenantId: "acme", MessageSid: sid, EntryId: "e1", ServiceId: "support", Body: body,
		Conversation: &messagingv1.ConversationRef{
			Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING,
			CustomerAddress: customer, BusinessAddress: "+12025550100",
		},
		ReceivedAt: timestamppb.Now(),
	}
}

func sessionIDs(t *testing.T, h *harness) []string {
	var ids []string
	for _, m := range h.streamEvents(t, subjects.StreamSession, subjects.SessionStarted("acme")) {
		var ev sessionv1.SessionStarted
		_ = proto.Unmarshal(m.Data, &ev)
		ids = append(ids, ev.GetSessionId())
	}
	return ids
}

func TestLoginRejections(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	tests := []struct {
		name, tenant, email, pw, want string
	}{
		{"wrong password", "acme", "alice@acme.example", "nope", "401"},
		{"unknown user", "acme", "zed@acme.example", "pw", "401"},
		{"bad tenant id", "Not A Slug", "alice@acme.example", "pw", "400"},
		{"missing password", "acme", "alice@acme.example", "", "400"},
		// The right password of someone with no role a token serves
		// (an agent without the IM license) answers as a wrong one: the
		// sign-in confirms nobody's password.
		{"no role a token serves", "acme", "dora@acme.example", "pw", "401: wrong tenant, email or password"},
	}
	for _, tt := range tests {
		_, err := agentclient.Login(ctx, h.url, tt.tenant, tt.email, tt.pw)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Login error = %v, want status %s", tt.name, err, tt.want)
		}
	}
}

// Admins and analysts get tokens with their roles (for config and
// reporting); the agent websocket refuses them.
func TestLoginIssuesEveryTokenRole(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	for email, want := range map[string][]string{
		"alice@acme.example": {authn.RoleAgent},
		"carl@acme.example":  {authn.RoleAdmin},
		"ann@acme.example":   {authn.RoleAnalyst},
	} {
		s, err := agentclient.SignIn(ctx, h.url, "acme", email, "pw")
		if err != nil {
			t.Fatalf("%s: %v", email, err)
		}
		c, err := h.keys.Verify(s.Token)
		if err != nil || !slices.Equal(c.Roles, want) || !slices.Equal(s.Roles, want) {
			t.Errorf("%s: token roles %v (%v), answer roles %v; want %v", email, c.Roles, err, s.Roles, want)
		}
		if want[0] == authn.RoleAgent {
			continue
		}
		if _, err := agentclient.Dial(ctx, h.url, s.Token); !agentclient.IsCode(err, "unauthenticated") {
			t.Errorf("%s: websocket with the token: %v, want unauthenticated", email, err)
		}
	}
}

func TestSocketAuthentication(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	forged, _ := authn.NewKeys([]byte(strings.Repeat("x", 32)))
	forgedTok, _ := forged.Mint(authn.Claims{Tenant: "acme", Roles: []string{authn.RoleAgent}, RegisteredClaims: jwt.RegisteredClaims{Subject: "alice"}}, time.Hour)
	adminTok, _ := h.keys.Mint(authn.Claims{Tenant: "acme", Roles: []string{authn.RoleAdmin}, RegisteredClaims: jwt.RegisteredClaims{Subject: "carl"}}, time.Hour)
	for name, send := range map[string]func(c *agentclient.Conn) error{
		"first frame not auth": func(c *agentclient.Conn) error {
			_, err := c.Request(ctx, "ping", map[string]string{})
			return err
		},
		"forged token": func(c *agentclient.Conn) error {
			_, err := c.Request(ctx, "auth", map[string]string{"token": forgedTok})
			return err
		},
		"admin token": func(c *agentclient.Conn) error {
			_, err := c.Request(ctx, "auth", map[string]string{"token": adminTok})
			return err
		},
	} {
		c, err := agentclient.DialRaw(ctx, h.url)
		if err != nil {
			t.Fatal(err)
		}
		if err := send(c); !agentclient.IsCode(err, "unauthenticated") {
			t.Errorf("%s: got %v, want an unauthenticated error", name, err)
		}
		waitFor(t, name+": socket closed", func() bool { return c.Closed() != nil })
		if !strings.Contains(c.Closed().Error(), "4401") {
			t.Errorf("%s: close = %v, want status 4401", name, c.Closed())
		}
	}
}

func TestBadFramesAreRejectedAndChangeNothing(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	raw := []struct {
		name, frame, code string
	}{
		{"not json", `{nope`, "bad_frame"},
		{"wrong version", `{"v":2,"type":"ping","id":"a"}`, "unsupported_version"},
		{"no type", `{"v":1,"id":"b"}`, "bad_frame"},
		{"unknown type", `{"v":1,"type":"teleport","id":"c"}`, "unknown_type"},
		{"no id", `{"v":1,"type":"offer.accept","data":{"offer_id":"x"}}`, "invalid"},
		{"unknown field", `{"v":1,"type":"offer.accept","id":"d","data":{"offer":"x"}}`, "invalid"},
		{"missing offer id", `{"v":1,"type":"offer.accept","id":"e","data":{}}`, "invalid"},
		{"bad presence", `{"v":1,"type":"presence.set","id":"f","data":{"presence":"asleep"}}`, "invalid"},
	}
	for _, r := range raw {
		before := alice.Len()
		if err := alice.WriteRaw(ctx, []byte(r.frame)); err != nil {
			t.Fatal(err)
		}
		f, err := alice.WaitFrom(ctx, before, "error", nil)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if got := f.Field("code"); got != r.code {
			t.Errorf("%s: error code %q (%s), want %q", r.name, got, f.Field("message"), r.code)
		}
	}
	// Commands on sessions that do not exist or are not yours.
	for name, tc := range map[string]struct {
		typ  string
		data map[string]string
		code string
	}{
		"send to unknown session": {"message.send", map[string]string{"session_id": "ss_nope", "body": "hi", "client_msg_id": "m1"}, "not_found"},
		"empty body":              {"message.send", map[string]string{"session_id": "ss_nope", "body": "  ", "client_msg_id": "m1"}, "invalid"},
		"too long":                {"message.send", map[string]string{"session_id": "ss_nope", "body": strings.Repeat("a", 1601), "client_msg_id": "m1"}, "invalid"},
		"bad client id":           {"message.send", map[string]string{"session_id": "ss_nope", "body": "hi", "client_msg_id": "a/b"}, "invalid"},
		"terminate unknown":       {"session.terminate", map[string]string{"session_id": "ss_nope"}, "not_found"},
		"accept closed offer":     {"offer.accept", map[string]string{"offer_id": "gone"}, "conflict"},
	} {
		_, err := alice.Request(ctx, tc.typ, tc.data)
		if !agentclient.IsCode(err, tc.code) {
			t.Errorf("%s: got %v, want %s", name, err, tc.code)
		}
	}
	if alice.Closed() != nil {
		t.Errorf("socket closed after rejected frames: %v", alice.Closed())
	}
	if n := len(h.streamEvents(t, subjects.StreamOutbound, subjects.OutboundRequested("acme"))); n != 0 {
		t.Errorf("%d outbound requests published by rejected frames, want 0", n)
	}
	// An oversized frame closes the socket (1009) rather than being read.
	if err := alice.WriteRaw(ctx, []byte(`{"v":1,"type":"ping","id":"big","data":{"x":"`+strings.Repeat("a", 70<<10)+`"}}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "oversized frame closes the socket", func() bool { return alice.Closed() != nil })
}

// The conversation's first message opens a session; an agent who accepts it
// gets the transcript, replies (idempotently), and terminates; the next
// message opens a new session. A copy of a message that arrives after the
// JetStream dedupe window reaches the agent once.
func TestSessionLifecycle(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	bob := h.agent(t, "bob@acme.example")
	if got := h.dist.presenceOf("alice"); got != distributionv1.Presence_PRESENCE_AVAILABLE {
		t.Errorf("alice's presence after connecting = %v, want AVAILABLE", got)
	}

	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM1", "+15550001", "hello"), "SM1")
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	sid := sessionIDs(t, h)[0]

	h.publish(t, subjects.TaskOffered("acme"), &distributionv1.TaskOffered{TenantId: "acme", TaskId: "tk1", SessionId: sid, AgentId: "alice", OfferId: "of-" + sid, ServiceName: "Support", Conversation: inbound("", "+15550001", "").GetConversation()}, "o1")
	offer, err := alice.WaitFor(ctx, "offer.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if offer.Field("customer") != "+15550001" || offer.Field("service_name") != "Support" || offer.Field("channel") != "sms" {
		t.Errorf("offer card = %s", offer.Data)
	}
	if bob.Count("offer.created", nil) != 0 {
		t.Error("bob saw alice's offer")
	}
	if _, err := alice.Request(ctx, "offer.accept", map[string]string{"offer_id": "of-" + sid}); err != nil {
		t.Fatal(err)
	}
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk1", SessionId: sid, AgentId: "alice", OfferId: "of-" + sid, AcceptedAt: timestamppb.Now()}, "a1")
	assigned, err := alice.WaitFor(ctx, "session.assigned", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(assigned.Data), `"body":"hello"`) {
		t.Errorf("assigned transcript lacks the first message: %s", assigned.Data)
	}

	// Bob cannot write into or end Alice's session.
	if _, err := bob.Request(ctx, "message.send", map[string]string{"session_id": sid, "body": "hi", "client_msg_id": "x"}); !agentclient.IsCode(err, "forbidden") {
		t.Errorf("bob sends into alice's session: %v, want forbidden", err)
	}
	if _, err := bob.Request(ctx, "session.terminate", map[string]string{"session_id": sid}); !agentclient.IsCode(err, "forbidden") {
		t.Errorf("bob terminates alice's session: %v, want forbidden", err)
	}

	// The same reply sent twice (a client retry) is one outbound request.
	for i := 0; i < 2; i++ {
		if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": sid, "body": "How can I help?", "client_msg_id": "r1"}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := h.streamEvents(t, subjects.StreamOutbound, subjects.OutboundRequested("acme"))
	if len(reqs) != 1 {
		t.Fatalf("%d outbound requests for one reply, want 1", len(reqs))
	}
	var req outboundv1.OutboundMessageRequested
	_ = proto.Unmarshal(reqs[0].Data, &req)
	if req.GetSessionId() != sid || req.GetAgentId() != "alice" || req.GetAuthor() != "Alice" || req.GetConversation().GetCustomerAddress() != "+15550001" || req.GetEntryId() != "e1" {
		t.Errorf("outbound request = %v", &req)
	}
	if _, err := alice.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), "How can I help?") }); err != nil {
		t.Fatal(err)
	}

	// The customer's second message, then the same SID again past the dedupe
	// window (a different Nats-Msg-Id gets it past JetStream).
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM2", "+15550001", "my order"), "SM2")
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM2", "+15550001", "my order"), "SM2-hours-later")
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM3", "+15550001", "marker"), "SM3")
	if _, err := alice.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), "SM3") }); err != nil {
		t.Fatal(err)
	}
	if n := alice.Count("message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), `"id":"SM2"`) }); n != 1 {
		t.Errorf("SM2 reached the agent %d times, want 1", n)
	}
	if n := len(sessionIDs(t, h)); n != 1 {
		t.Errorf("%d sessions for one conversation, want 1", n)
	}

	if _, err := alice.Request(ctx, "session.terminate", map[string]string{"session_id": sid}); err != nil {
		t.Fatal(err)
	}
	ended := h.streamEvents(t, subjects.StreamSession, subjects.SessionEnded("acme"))
	if len(ended) != 1 {
		t.Fatalf("%d SessionEnded events, want 1", len(ended))
	}
	var ev sessionv1.SessionEnded
	_ = proto.Unmarshal(ended[0].Data, &ev)
	if ev.GetOutcome() != sessionv1.Outcome_OUTCOME_HANDLED || ev.GetAgentId() != "alice" {
		t.Errorf("SessionEnded = %v, want HANDLED by alice", &ev)
	}
	// It counts the transcript for reporting: hello, SM2 (once, however
	// often Twilio sent it) and SM3, one SMS segment each; the one reply.
	if n := ev.GetMessages(); n.GetInbound() != 3 || n.GetSegmentsIn() != 3 || n.GetOutbound() != 1 {
		t.Errorf("SessionEnded counts %v, want 3 in (3 segments), 1 out", n)
	}
	if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": sid, "body": "late", "client_msg_id": "r2"}); !agentclient.IsCode(err, "conflict") {
		t.Errorf("send after terminate: %v, want conflict", err)
	}

	// Twilio retries SM2 a day later, after the session ended: it is
	// recognised and opens nothing. Then the customer writes again: a new
	// session, which SM4 starts.
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM2", "+15550001", "my order"), "SM2-next-day")
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM4", "+15550001", "one more thing"), "SM4")
	waitFor(t, "second session", func() bool { return len(sessionIDs(t, h)) == 2 })
	if ids := sessionIDs(t, h); ids[1] == sid {
		t.Errorf("new message reused the ended session %s", sid)
	}
	var firsts []string
	for _, m := range h.streamEvents(t, subjects.StreamSession, subjects.SessionStarted("acme")) {
		var ev sessionv1.SessionStarted
		_ = proto.Unmarshal(m.Data, &ev)
		firsts = append(firsts, ev.GetFirstMessageSid())
	}
	if got, want := strings.Join(firsts, ","), "SM1,SM4"; got != want {
		t.Errorf("sessions started by %s, want %s (a late retry opens no session)", got, want)
	}

	// Closing the last socket makes the agent offline.
	alice.Close()
	waitFor(t, "alice offline", func() bool { return h.dist.presenceOf("alice") == distributionv1.Presence_PRESENCE_OFFLINE })
}

// What the workflow collected comes with the offer: the card shows it, the
// session keeps it, and the assigned chat and a reconnect's snapshot
// carry it.
func TestOfferAndChatCarryTheWorkflowsParameters(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM1", "+15550001", "hello"), "SM1")
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	sid := sessionIDs(t, h)[0]
	params := map[string]string{"order": "A-1042", "language": "de", "note": `<img src=x onerror=alert(1)>`}

	h.publish(t, subjects.TaskOffered("acme"), &distributionv1.TaskOffered{TenantId: "acme", TaskId: "tk1", SessionId: sid, AgentId: "alice",
		OfferId: "of-" + sid, ServiceName: "Support", Conversation: inbound("", "+15550001", "").GetConversation(), Parameters: params}, "o1")
	var offer struct {
		Parameters map[string]string `json:"parameters"`
	}
	f, err := alice.WaitFor(ctx, "offer.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Decode(&offer); err != nil || !maps.Equal(offer.Parameters, params) {
		t.Errorf("offer card parameters = %v (%v), want %v", offer.Parameters, err, params)
	}
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk1", SessionId: sid, AgentId: "alice", OfferId: "of-" + sid, AcceptedAt: timestamppb.Now()}, "a1")
	var chat struct {
		Parameters map[string]string `json:"parameters"`
	}
	f, err = alice.WaitFor(ctx, "session.assigned", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Decode(&chat); err != nil || !maps.Equal(chat.Parameters, params) {
		t.Errorf("assigned chat parameters = %v (%v), want %v", chat.Parameters, err, params)
	}

	again := h.agent(t, "alice@acme.example") // a reload
	var snap struct {
		Sessions []struct {
			SessionID  string            `json:"session_id"`
			Parameters map[string]string `json:"parameters"`
		} `json:"sessions"`
	}
	f, err = again.WaitFor(ctx, "snapshot", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Decode(&snap); err != nil || len(snap.Sessions) != 1 || !maps.Equal(snap.Sessions[0].Parameters, params) {
		t.Errorf("snapshot sessions = %+v (%v), want the chat with %v", snap.Sessions, err, params)
	}
}

// A conversation Twilio closes, and a workflow's Disconnect, end the
// session; the customer's next message opens a new one.
func TestSessionsEndedFromOutside(t *testing.T) {
	h := start(t)
	conv := func(sid, customer, body, ch string) *chatv1.MessageReceived {
		ev := inbound(sid, customer, body)
		ev.Conversation.Path = messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS
		ev.Conversation.ConversationSid = ch
		return ev
	}
	ended := func() map[string]*sessionv1.SessionEnded {
		out := map[string]*sessionv1.SessionEnded{}
		for _, m := range h.streamEvents(t, subjects.StreamSession, subjects.SessionEnded("acme")) {
			var ev sessionv1.SessionEnded
			_ = proto.Unmarshal(m.Data, &ev)
			out[ev.GetSessionId()] = &ev
		}
		return out
	}

	h.publish(t, subjects.ChatMessageReceived("acme"), conv("IM1", "+15550007", "hi", "CH1"), "IM1")
	waitFor(t, "first session", func() bool { return len(sessionIDs(t, h)) == 1 })
	first := sessionIDs(t, h)[0]
	h.publish(t, subjects.ChatConversationStateUpdated("acme"), &chatv1.ConversationStateUpdated{
		TenantId: "acme", ConversationSid: "CH1", StateFrom: chatv1.ConversationState_CONVERSATION_STATE_INACTIVE,
		StateTo: chatv1.ConversationState_CONVERSATION_STATE_CLOSED, Reason: "TIMER",
	}, "closed-CH1")
	waitFor(t, "session ended by the closed conversation", func() bool { return ended()[first] != nil })
	if ev := ended()[first]; ev.GetOutcome() != sessionv1.Outcome_OUTCOME_NOT_HANDLED || !strings.Contains(ev.GetReason(), "closed") {
		t.Errorf("SessionEnded = %v, want NOT_HANDLED because the conversation closed", ev)
	}

	h.publish(t, subjects.ChatMessageReceived("acme"), conv("IM2", "+15550007", "hello again", "CH2"), "IM2")
	waitFor(t, "second session", func() bool { return len(sessionIDs(t, h)) == 2 })
	second := sessionIDs(t, h)[1]
	h.publish(t, subjects.WorkflowEndRequested("acme"), &workflowv1.SessionEndRequested{TenantId: "acme", SessionId: second, Activity: "closed-bye"}, "end-2")
	waitFor(t, "session ended by the workflow", func() bool { return ended()[second] != nil })
	if ev := ended()[second]; ev.GetOutcome() != sessionv1.Outcome_OUTCOME_NOT_HANDLED || !strings.Contains(ev.GetReason(), "closed-bye") {
		t.Errorf("SessionEnded = %v, want NOT_HANDLED naming the Disconnect activity", ev)
	}

	// Alice accepted the second session's offer just as it ended: she is
	// told it ended, not handed a chat she could neither answer nor end.
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk-late", SessionId: second, AgentId: "alice", OfferId: "of-late", AcceptedAt: timestamppb.Now()}, "a-late")
	late, err := alice.WaitFor(ctx, "session.ended", func(f agentclient.Frame) bool { return f.Field("session_id") == second })
	if err != nil {
		t.Fatalf("no session.ended for an accept after the end: %v", err)
	}
	if late.Field("outcome") != "not_handled" {
		t.Errorf("session.ended after a late accept = %s, want outcome not_handled", late.Data)
	}
	if n := alice.Count("session.assigned", nil); n != 0 {
		t.Errorf("alice was assigned an ended session (%d frames)", n)
	}

	h.publish(t, subjects.ChatMessageReceived("acme"), conv("IM3", "+15550007", "one more", "CH3"), "IM3")
	waitFor(t, "third session", func() bool { return len(sessionIDs(t, h)) == 3 })
	third := sessionIDs(t, h)[2]
	h.publish(t, subjects.WorkflowEndRequested("acme"), &workflowv1.SessionEndRequested{TenantId: "acme", SessionId: third, Activity: "ask",
		Cause: workflowv1.EndCause_END_CAUSE_INACTIVITY}, "end-3")
	waitFor(t, "session ended for inactivity", func() bool { return ended()[third] != nil })
	if ev := ended()[third]; ev.GetOutcome() != sessionv1.Outcome_OUTCOME_ABANDONED || !strings.Contains(ev.GetReason(), "did not answer") {
		t.Errorf("SessionEnded = %v, want ABANDONED because the customer did not answer", ev)
	}

	// A Disconnect that says why: no agent in time, out of hours.
	for i, c := range []struct {
		cause   workflowv1.EndCause
		outcome sessionv1.Outcome
	}{
		{workflowv1.EndCause_END_CAUSE_NO_AGENT, sessionv1.Outcome_OUTCOME_NO_AGENT},
		{workflowv1.EndCause_END_CAUSE_OUT_OF_HOURS, sessionv1.Outcome_OUTCOME_OUT_OF_HOURS},
	} {
		sid := fmt.Sprintf("IM%d", 4+i)
		h.publish(t, subjects.ChatMessageReceived("acme"), conv(sid, "+15550007", "are you there?", "CH"+sid), sid)
		waitFor(t, "session "+sid, func() bool { return len(sessionIDs(t, h)) == 4+i })
		id := sessionIDs(t, h)[3+i]
		h.publish(t, subjects.WorkflowEndRequested("acme"), &workflowv1.SessionEndRequested{TenantId: "acme", SessionId: id, Activity: "bye", Cause: c.cause}, "end-"+sid)
		waitFor(t, "session ended by "+c.cause.String(), func() bool { return ended()[id] != nil })
		if ev := ended()[id]; ev.GetOutcome() != c.outcome || !strings.Contains(ev.GetReason(), "(bye)") {
			t.Errorf("SessionEnded after %v = %v, want %v naming the activity", c.cause, ev, c.outcome)
		}
	}
}

// A session with no message for its tenant's stale_after (24 hours by
// default) is ended as expired by the sweep, for the agent and on the
// SESSION stream; a fresh one is left alone.
func TestStaleSessionsEnd(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	h := start(t, func(c *sessions.Config, d *sessions.Deps) {
		c.StaleSweepEvery = 100 * time.Millisecond
		d.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM-stale", "+15550077", "anyone?"), "SM-stale")
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	sid := sessionIDs(t, h)[0]
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk-stale", SessionId: sid, AgentId: "alice", OfferId: "of-stale", AcceptedAt: timestamppb.Now()}, "a-stale")
	if _, err := alice.WaitFor(ctx, "session.assigned", nil); err != nil {
		t.Fatal(err)
	}
	// Several sweeps run on the real clock: nothing is stale yet.
	time.Sleep(500 * time.Millisecond)
	if n := alice.Count("session.ended", nil); n != 0 {
		t.Fatalf("a fresh session was ended (%d frames)", n)
	}
	clock.Add(int64(25 * time.Hour))
	ended, err := alice.WaitFor(ctx, "session.ended", func(f agentclient.Frame) bool { return f.Field("session_id") == sid })
	if err != nil {
		t.Fatalf("the stale session never ended: %v", err)
	}
	if ended.Field("outcome") != "expired" || !strings.Contains(ended.Field("reason"), "stale") {
		t.Errorf("ended %s, want outcome expired for staleness", ended.Data)
	}
	evs := h.streamEvents(t, subjects.StreamSession, subjects.SessionEnded("acme"))
	if len(evs) != 1 {
		t.Errorf("%d SessionEnded events, want 1", len(evs))
	}
}
