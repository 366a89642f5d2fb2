package sessions_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// Media URLs that are not http(s) are not stored and never reach the
// agent, whoever published them; the message itself is kept.
func TestUnsafeMediaURLsAreNotStored(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	ev := inbound("SM_MEDIA1", "+15550009", "see attached")
	ev.Media = []*messagingv1.Media{
		{Url: "https://api.twilio.com/m/ok", ContentType: "image/jpeg"},
		{Url: "javascript:alert(document.cookie)", ContentType: "image/png"},
		{Url: "data:text/html,<script>alert(1)</script>", ContentType: "text/html"},
		{Url: "http://127.0.0.1:8089/m/sim", ContentType: "image/gif"},
	}
	h.publish(t, subjects.ChatMessageReceived("acme"), ev, "SM_MEDIA1")
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	sid := sessionIDs(t, h)[0]
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk-" + sid, SessionId: sid, AgentId: "alice",
		OfferId: "of-" + sid, AcceptedAt: timestamppb.Now()}, "acc-"+sid)
	assigned, err := alice.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == sid })
	if err != nil {
		t.Fatal(err)
	}
	data := string(assigned.Data)
	for _, want := range []string{`"body":"see attached"`, "https://api.twilio.com/m/ok", "http://127.0.0.1:8089/m/sim"} {
		if !strings.Contains(data, want) {
			t.Errorf("assigned transcript lacks %s: %s", want, data)
		}
	}
	for _, bad := range []string{"javascript:", "data:text/html"} {
		if strings.Contains(data, bad) {
			t.Errorf("assigned transcript carries a %s URL: %s", bad, data)
		}
	}
}
