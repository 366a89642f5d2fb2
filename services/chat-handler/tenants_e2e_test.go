package chathandler_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/chattest"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
)

// Two tenants receive genuine webhooks with the same MessageSid (Twilio
// SIDs are unique per Twilio, but nothing stops one tenant's admin from
// posting another's, and the emulator or a replayed capture reuses them).
// Both messages cross the shared CHAT stream and land in each tenant's
// session transcript: dedupe ids and store keys are tenant-scoped.
func TestSameMessageSIDInTwoTenantsEndToEnd(t *testing.T) {
	info := devstacktest.Start(t)
	ctx := timeout(t)
	js := jetStream(t, info)
	applyAcme(t, ctx, info, false)

	const sid = "SM70000000000000000000000000000001"
	demoConn := info.Demo.Connectors[0]
	base := info.ChatHandlerURL + webhook.TenantPrefix
	for _, w := range []chattest.Webhook{
		// acme's webhook comes first; demo's genuine one with the same
		// SID must not be taken for a duplicate of it.
		{URL: base + "acme" + webhook.PathInbound, Token: acmeToken, Params: url.Values{
			"MessageSid": {sid}, "AccountSid": {acmeAccount}, "From": {"+15557770001"}, "To": {acmePoolA}, "Body": {"to acme"}, "NumMedia": {"0"},
		}},
		{URL: base + "demo" + webhook.PathInbound, Token: demoConn.AuthToken, Params: url.Values{
			"MessageSid": {sid}, "AccountSid": {demoConn.AccountSID}, "From": {"whatsapp:+15557770002"}, "To": {"whatsapp:+12025550101"},
			"Body": {"to demo"}, "NumMedia": {"0"}, "ProfileName": {"Dee"},
		}},
	} {
		if got, body, _ := w.Do(t, nil); got != 200 {
			t.Fatalf("POST %s: status %d (%s), want 200", w.URL, got, body)
		}
	}
	for _, tn := range []string{"acme", "demo"} {
		if msgs := chattest.WaitFind(t, js, subjects.ChatMessageReceived(tn), 1, newMsg, msgSID(sid)); msgs[0].GetBody() != "to "+tn {
			t.Errorf("%s: MessageReceived = %v", tn, msgs)
		}
	}

	// Each tenant's transcript (sessions' TRANSCRIPT stream, a subject per
	// session) holds its own message.
	stored := map[string]string{}
	for deadline := time.Now().Add(30 * time.Second); len(stored) < 2; {
		for _, tn := range []string{"acme", "demo"} {
			cons, err := js.OrderedConsumer(ctx, subjects.StreamTranscript, jetstream.OrderedConsumerConfig{
				FilterSubjects: []string{subjects.Transcript(tn, "*")},
			})
			if err != nil {
				continue // the stream is created when sessions starts
			}
			batch, err := cons.FetchNoWait(100)
			if err != nil {
				t.Fatal(err)
			}
			for m := range batch.Messages() {
				var e struct {
					Message struct {
						ID   string `json:"ID"`
						Body string `json:"Body"`
					} `json:"m"`
				}
				if json.Unmarshal(m.Data(), &e) == nil && e.Message.ID == sid {
					stored[tn] = e.Message.Body
				}
			}
		}
		if len(stored) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transcripts hold %v after 30s, want the message of both tenants", stored)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if stored["acme"] != "to acme" || stored["demo"] != "to demo" {
		t.Errorf("transcripts hold %v, want each tenant's own message", stored)
	}
}
