package workflowrunner_test

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	workflowrunner "github.com/switchboard-cc/switchboard/services/workflow-runner"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

const restartBotKey = "restart-bot-signing-key-0123456789"

// botConfig serves one service whose workflow talks to a bot and queues on
// its handoff, and the tenant's signing key to service callers.
type botConfig struct {
	configv1.UnimplementedServiceServiceServer
	configv1.UnimplementedWorkflowServiceServer
	configv1.UnimplementedLookupServiceServer
	flow *workflowdef.Definition
}

func (botConfig) GetService(_ context.Context, r *configv1.GetServiceRequest) (*configv1.GetServiceResponse, error) {
	return &configv1.GetServiceResponse{Service: &configv1.Service{Id: r.GetId(), TenantId: "acme", Name: "Desk", WorkflowId: "wf"}}, nil
}

func (c botConfig) GetWorkflow(context.Context, *configv1.GetWorkflowRequest) (*configv1.GetWorkflowResponse, error) {
	p, err := workflowdef.ToProto(c.flow)
	if err != nil {
		return nil, err
	}
	return &configv1.GetWorkflowResponse{Workflow: &configv1.Workflow{Id: "wf", Version: 1, Definition: p}}, nil
}

func (botConfig) GetTenantSecret(ctx context.Context, r *configv1.GetTenantSecretRequest) (*configv1.GetTenantSecretResponse, error) {
	if c := authn.FromContext(ctx); c == nil || !c.Has(authn.RoleService) {
		return nil, status.Error(codes.PermissionDenied, "services only")
	}
	if r.GetTenantId() != "acme" || r.GetName() != "bot_signing_key" {
		return nil, status.Error(codes.NotFound, "no such secret")
	}
	return &configv1.GetTenantSecretResponse{Value: restartBotKey}, nil
}

// A restart of workflow-runner between the turns of a bot conversation
// loses nothing and repeats nothing: the customer's messages written while
// it was down are relayed once each, as the next turns, the bot is asked
// once per turn, and its replies reach the customer once.
func TestRestartMidBotConversation(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	key := []byte("0123456789abcdef0123456789abcdef")
	keys, _ := authn.NewKeys(key)
	ns := natstest.Start(t)
	b, err := bus.Connect(ns.ClientURL(), t.Name(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)

	var mu sync.Mutex
	var turns []int
	var keysSeen []string
	bot := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !runner.VerifyBot(restartBotKey, r.Header.Get(runner.HeaderBotTimestamp), body, r.Header.Get(runner.HeaderBotSignature)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req runner.BotRequest
		if err := json.Unmarshal(body, &req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		turns = append(turns, req.Turn)
		keysSeen = append(keysSeen, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		switch req.Turn {
		case 1:
			io.WriteString(w, `{"replies":[{"text":"Hi, what can I do?"}]}`)
		case 2:
			io.WriteString(w, `{"replies":[{"text":"You said: `+req.Message.Text+`. Which booking?"}],"parameters":{"topic":"`+req.Message.Text+`"}}`)
		default:
			io.WriteString(w, `{"replies":[{"text":"Booking `+req.Message.Text+` (`+req.Parameters["topic"]+`): a colleague takes over."}],"action":"handoff","reason":"agent"}`)
		}
	}))
	t.Cleanup(bot.Close)
	pool := x509.NewCertPool()
	pool.AddCert(bot.Certificate())

	flow := &workflowdef.Definition{Start: "bot", Activities: []workflowdef.Activity{
		{ID: "bot", Type: "bot", Params: map[string]any{"url": bot.URL + "/hook", "secret": "bot_signing_key"},
			Next: map[string]string{"handoff": "queue", "end": "queue", "failure": "queue"}},
		{ID: "queue", Type: "queue_task"},
	}}
	if err := workflowdef.Validate(flow); err != nil {
		t.Fatal(err)
	}
	srv := grpcserver.New(log, keys)
	cfgSrv := botConfig{flow: flow}
	configv1.RegisterServiceServiceServer(srv.Server, cfgSrv)
	configv1.RegisterWorkflowServiceServer(srv.Server, cfgSrv)
	configv1.RegisterLookupServiceServer(srv.Server, cfgSrv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopSrv := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, lis) }()
	t.Cleanup(func() { stopSrv(); <-served })
	cc, err := grpcserver.Dial(lis.Addr().String(), keys, workflowrunner.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cfg := workflowrunner.Defaults()
	cfg.AuthKeys = hex.EncodeToString(key)
	cfg.WebAllowHosts = []string{"127.0.0.1"}

	start := func() (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- workflowrunner.Run(rctx, cfg, workflowrunner.Deps{Bus: b, ConfigConn: cc, AuthKeys: keys, WebRootCAs: pool}, log)
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	texts := func() []string {
		s, err := b.JS.Stream(ctx, subjects.StreamOutbound)
		if err != nil {
			return nil
		}
		c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var o outboundv1.OutboundMessageRequested
			if err := proto.Unmarshal(m.Data(), &o); err == nil {
				out = append(out, o.GetBody())
			}
		}
		return out
	}
	kv := func() jetstream.KeyValue {
		kv, err := b.JS.KeyValue(ctx, subjects.BucketWorkflowInstances)
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	waitTurnSaved := func(turn string) {
		t.Helper()
		waitFor(t, "turn "+turn+" saved", func() bool {
			e, err := kv().Get(ctx, "acme.ss_b1")
			return err == nil && strings.Contains(string(e.Value()), `"turn":`+turn+`,`) && strings.Contains(string(e.Value()), `"status":"waiting"`)
		})
	}
	say := func(id, body string) {
		t.Helper()
		if _, err := b.Publish(ctx, subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: "ss_b1", MessageId: id,
			Sender: sessionv1.SenderKind_SENDER_KIND_CUSTOMER, Body: body, OccurredAt: timestamppb.Now()}, bus.MsgID(id)); err != nil {
			t.Fatal(err)
		}
	}

	stop := start()
	conv := &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+15550100"}
	if _, err := b.Publish(ctx, subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: "ss_b1",
		ServiceId: "desk", Conversation: conv, StartedAt: timestamppb.Now()}, bus.MsgID("start-b1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bot's greeting", func() bool { return len(texts()) == 1 })
	waitTurnSaved("1")
	stop()

	say("m1", "change") // while the runner is down
	stop = start()
	waitFor(t, "the second turn's reply", func() bool { return len(texts()) == 2 })
	waitTurnSaved("2")
	stop()

	say("m2", "B-42") // down again
	stop = start()
	defer stop()
	waitFor(t, "the handoff's reply", func() bool { return len(texts()) == 3 })
	waitFor(t, "the Queue Task after the handoff", func() bool {
		e, err := kv().Get(ctx, "acme.ss_b1")
		return err == nil && strings.Contains(string(e.Value()), `"status":"queued"`)
	})

	want := []string{"Hi, what can I do?", "You said: change. Which booking?", "Booking B-42 (change): a colleague takes over."}
	if got := texts(); !slices.Equal(got, want) {
		t.Errorf("customer got %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(turns, []int{1, 2, 3}) {
		t.Errorf("the bot was asked for turns %v, want 1, 2, 3 once each", turns)
	}
	if !slices.Equal(keysSeen, []string{"ss_b1-bot-1", "ss_b1-bot-2", "ss_b1-bot-3"}) {
		t.Errorf("Idempotency-Keys %q", keysSeen)
	}
}
