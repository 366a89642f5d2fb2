package runner_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// contacts is a fake OutboundService: the WhatsApp window open or closed,
// or outbound-sender unreachable.
type contacts struct {
	mu     sync.Mutex
	open   bool
	down   bool
	asked  int
	convos []*messagingv1.ConversationRef
}

func (c *contacts) GetContactState(_ context.Context, r *outboundv1.GetContactStateRequest, _ ...grpc.CallOption) (*outboundv1.GetContactStateResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked++
	c.convos = append(c.convos, r.GetConversation())
	if c.down {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	wa := r.GetConversation().GetChannel() == messagingv1.Channel_CHANNEL_WHATSAPP
	return &outboundv1.GetContactStateResponse{State: &outboundv1.ContactState{WindowApplies: wa, WindowOpen: c.open}}, nil
}

// withContacts rebuilds the fixture's runner with an outbound-sender.
func (f *fixture) withContacts(c runner.Contacts) {
	f.r = runner.New(runner.Deps{Pub: f.pub, Services: f.svcs, Workflows: f.wfs, Distribution: f.dist, Store: f.store,
		Timers: f.timers, Now: f.clock.now, Contacts: c})
}

const templateSID = "HX0123456789abcdef0123456789abcdef"

var notice = &workflowdef.Definition{Start: "hello", Activities: []workflowdef.Activity{
	act("hello", "message", map[string]any{
		"text": "Hello ${customer_name}.", "text_sms": "Hello ${customer_name}, reply STOP to opt out.", "text_whatsapp": "Hello ${customer_name} 👋",
		"content_sid":       templateSID,
		"content_variables": map[string]any{"1": "${customer_name}", "2": "${note}", "ref": "line one\nline\ttwo"},
	}, then("queue")),
	act("queue", "queue_task", nil, nil),
}}

var plainNotice = &workflowdef.Definition{Start: "hello", Activities: []workflowdef.Activity{
	act("hello", "message", map[string]any{"text": "Hello ${customer_name}.", "text_sms": "Hi ${customer_name}."}, then("queue")),
	act("queue", "queue_task", nil, nil),
}}

func startOn(ch messagingv1.Channel, service string) *sessionv1.SessionStarted {
	ev := start("acme", sessionID, service)
	addr := "+15550100"
	if ch == messagingv1.Channel_CHANNEL_WHATSAPP {
		addr = "whatsapp:+15550100"
	}
	ev.Conversation = &messagingv1.ConversationRef{Channel: ch, CustomerAddress: addr, BusinessAddress: "+15550199"}
	ev.StartedAt = timestamppb.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	return ev
}

func requests(f *fixture) []*outboundv1.OutboundMessageRequested {
	var out []*outboundv1.OutboundMessageRequested
	for _, p := range f.pub.all() {
		if m, ok := p.event.(*outboundv1.OutboundMessageRequested); ok {
			out = append(out, m)
		}
	}
	return out
}

// Message sends the channel's text, and on WhatsApp outside the 24-hour
// window the template with its variables filled in.
func TestMessagePerChannelAndTemplate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		def       *workflowdef.Definition
		channel   messagingv1.Channel
		contacts  *contacts // nil: no outbound-sender configured
		wantBody  string
		wantSID   string
		wantVars  map[string]string
		wantAsked int
	}{
		{"SMS takes text_sms, never asks", notice, messagingv1.Channel_CHANNEL_SMS, &contacts{}, "Hello Dana, reply STOP to opt out.", "", nil, 0},
		{"WhatsApp inside the window takes text_whatsapp", notice, messagingv1.Channel_CHANNEL_WHATSAPP, &contacts{open: true}, "Hello Dana 👋", "", nil, 1},
		{"WhatsApp outside the window takes the template", notice, messagingv1.Channel_CHANNEL_WHATSAPP, &contacts{}, "Hello Dana 👋", templateSID,
			map[string]string{"1": "Dana", "2": "-", "ref": "line one line two"}, 1},
		{"WhatsApp without outbound-sender sends the text", notice, messagingv1.Channel_CHANNEL_WHATSAPP, nil, "Hello Dana 👋", "", nil, 0},
		{"WhatsApp without text_whatsapp falls back to text", plainNotice, messagingv1.Channel_CHANNEL_WHATSAPP, &contacts{}, "Hello Dana.", "", nil, 0},
		{"SMS with its own text", plainNotice, messagingv1.Channel_CHANNEL_SMS, &contacts{}, "Hi Dana.", "", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": validDef(t, tc.def)})
			if tc.contacts != nil {
				f.withContacts(tc.contacts)
			}
			if err := f.handle(t, startOn(tc.channel, "desk")); err != nil {
				t.Fatal(err)
			}
			reqs := requests(f)
			if len(reqs) != 1 {
				t.Fatalf("sent %d messages, want 1", len(reqs))
			}
			m := reqs[0]
			if m.GetBody() != tc.wantBody || m.GetContentSid() != tc.wantSID || m.GetRequestId() != sessionID+"-hello" {
				t.Errorf("sent body %q content %q as %q, want %q content %q as %q", m.GetBody(), m.GetContentSid(), m.GetRequestId(), tc.wantBody, tc.wantSID, sessionID+"-hello")
			}
			var vars map[string]string
			if m.GetContentVariables() != "" {
				if err := json.Unmarshal([]byte(m.GetContentVariables()), &vars); err != nil {
					t.Fatalf("content variables %q: %v", m.GetContentVariables(), err)
				}
			}
			if !maps.Equal(vars, tc.wantVars) {
				t.Errorf("content variables %v, want %v", vars, tc.wantVars)
			}
			if tc.contacts != nil && tc.contacts.asked != tc.wantAsked {
				t.Errorf("asked outbound-sender %d times, want %d", tc.contacts.asked, tc.wantAsked)
			}
			if tc.wantAsked > 0 && tc.contacts.convos[0].GetCustomerAddress() != "whatsapp:+15550100" {
				t.Errorf("asked about %v, want the session's conversation", tc.contacts.convos[0])
			}
		})
	}
}

// An outage of outbound-sender is retried: nothing is sent meanwhile,
// and the retry sends once.
func TestMessageTemplateOutageIsRetried(t *testing.T) {
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": validDef(t, notice)})
	c := &contacts{down: true}
	f.withContacts(c)
	err := f.handle(t, startOn(messagingv1.Channel_CHANNEL_WHATSAPP, "desk"))
	if err == nil || bus.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if n := len(f.pub.all()); n != 0 {
		t.Fatalf("published %q while outbound-sender was down", f.pub.ids())
	}
	c.mu.Lock()
	c.down = false
	c.mu.Unlock()
	for range 2 {
		if err := f.handle(t, startOn(messagingv1.Channel_CHANNEL_WHATSAPP, "desk")); err != nil {
			t.Fatal(err)
		}
	}
	reqs := requests(f)
	if len(reqs) != 1 || reqs[0].GetContentSid() != templateSID {
		t.Errorf("sent %v, want the template once", reqs)
	}
	if got := f.pub.steps(); !slices.Equal(got, []string{"hello next", "queue "}) {
		t.Errorf("steps %q", got)
	}
	for _, p := range f.pub.all() {
		if _, failed := p.event.(*workflowv1.WorkflowFailed); failed {
			t.Error("the outage failed the workflow")
		}
	}
}
