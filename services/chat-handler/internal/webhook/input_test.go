package webhook_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/chattest"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

func newReceived() *chatv1.MessageReceived { return &chatv1.MessageReceived{} }

func bySID(sid string) func(*chatv1.MessageReceived) bool {
	return func(m *chatv1.MessageReceived) bool { return m.GetMessageSid() == sid }
}

// Invalid UTF-8 in a signed webhook is never a 5xx (Twilio would retry the
// same bytes, then call the fallback URL with them, and the message would
// be lost): free text is repaired with U+FFFD and the message taken; an
// identifier that cannot be repaired is a 400 that says which.
func TestInvalidUTF8(t *testing.T) {
	e := newEnv(t, webhook.Options{}, nil)
	inbound := e.url(tenant, webhook.PathInbound)
	sms := func(sid string, kv ...string) url.Values {
		p := url.Values{"MessageSid": {sid}, "AccountSid": {acct}, "From": {customer}, "To": {smsNumber}, "Body": {"hi"}, "NumMedia": {"0"}}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Set(kv[i], kv[i+1])
		}
		return p
	}
	t.Run("body repaired, message taken (POST and GET)", func(t *testing.T) {
		for i, method := range []string{http.MethodPost, http.MethodGet} {
			sid := "SM9000000000000000000000000000000" + string(rune('1'+i))
			w := chattest.Webhook{Method: method, URL: inbound, Params: sms(sid, "Body", "caf\xe9 ok \xff\xfe", "ProfileName", "Jos\xe9"), Token: token,
				Header: http.Header{"I-Twilio-Idempotency-Token": {"tok-\xff"}}}
			expectStatus(t, w, 200)
			ms := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), newReceived, bySID(sid))
			if len(ms) != 1 || ms[0].GetBody() != "caf\uFFFD ok \uFFFD" || ms[0].GetProfileName() != "Jos\uFFFD" {
				t.Fatalf("%s: MessageReceived = %v, want each run of bad bytes replaced with one U+FFFD", method, ms)
			}
		}
	})
	t.Run("Conversations attributes and body repaired", func(t *testing.T) {
		p := convParams("onMessageAdded", "MessageSid", "IM90000000000000000000000000000001", "Source", "SMS", "Author", customer,
			"Body", "\xc3(", "Attributes", `{"a":"`+"\xed\xa0\x80"+`"}`)
		expectStatus(t, chattest.Webhook{URL: e.url(tenant, webhook.PathConversations), Params: p, Token: token}, 200)
		ms := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), newReceived, bySID("IM90000000000000000000000000000001"))
		if len(ms) != 1 || ms[0].GetBody() != "\uFFFD(" || !strings.Contains(ms[0].GetAttributes(), "\uFFFD") {
			t.Fatalf("MessageReceived = %v", ms)
		}
	})
	t.Run("identifiers refused with 400", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			w    chattest.Webhook
			want string
		}{
			{"MessageSid", chattest.Webhook{URL: inbound, Params: sms("SM9\xff"), Token: token}, "MessageSid"},
			{"From", chattest.Webhook{URL: inbound, Params: sms("SM90000000000000000000000000000009", "From", "+1555\xff"), Token: token}, "From"},
			{"To, before routing", chattest.Webhook{URL: inbound, Params: sms("SM90000000000000000000000000000009", "To", "+1555\xff"), Token: token}, "To"},
			{"ConversationSid", chattest.Webhook{URL: e.url(tenant, webhook.PathConversations),
				Params: convParams("onMessageAdded", "MessageSid", "IM9", "Source", "SMS", "Author", customer, "ConversationSid", "CH\xc0"), Token: token}, "ConversationSid"},
		} {
			body := expectStatus(t, tt.w, 400)
			if !strings.Contains(body, tt.want+" is not valid UTF-8") {
				t.Errorf("%s: answer %q, want it to name %s", tt.name, body, tt.want)
			}
		}
	})
}

// Media URLs are taken only when they are https (http too with
// AllowHTTPMedia, for the emulator): anything else is dropped and the
// message kept.
func TestMediaURLs(t *testing.T) {
	bad := []string{
		"javascript:alert(document.cookie)", "JavaScript:alert(1)", "data:text/html,<script>alert(1)</script>",
		"vbscript:msgbox", "//evil.example/x.jpg", "/relative.jpg", "https://user:pw@evil.example/x.jpg",
		"https:///nohost", "https://api.twilio.com/m/\xff", " https://api.twilio.com/m/space", "ftp://example.com/a.jpg",
	}
	params := func(sid string, urls ...string) url.Values {
		p := url.Values{"MessageSid": {sid}, "AccountSid": {acct}, "From": {customer}, "To": {smsNumber}, "Body": {"see attached"}}
		p.Set("NumMedia", strconv.Itoa(len(urls)))
		for i, u := range urls {
			p.Set("MediaUrl"+strconv.Itoa(i), u)
			p.Set("MediaContentType"+strconv.Itoa(i), "image/jpeg")
		}
		return p
	}
	for _, tt := range []struct {
		name      string
		allowHTTP bool
		want      []string
	}{
		{"https only", false, []string{"https://api.twilio.com/m/ok", "HTTPS://api.twilio.com/m/upper"}},
		{"http allowed for the emulator", true, []string{"https://api.twilio.com/m/ok", "http://127.0.0.1:8089/m/sim", "HTTPS://api.twilio.com/m/upper"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, webhook.Options{AllowHTTPMedia: tt.allowHTTP}, nil)
			const sid = "SM91000000000000000000000000000001"
			urls := append([]string{"https://api.twilio.com/m/ok", "http://127.0.0.1:8089/m/sim", "HTTPS://api.twilio.com/m/upper"}, bad...)
			expectStatus(t, chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: params(sid, urls...), Token: token}, 200)
			ms := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), newReceived, bySID(sid))
			if len(ms) != 1 || ms[0].GetBody() != "see attached" {
				t.Fatalf("MessageReceived = %v, want the message kept", ms)
			}
			var got []string
			for _, m := range ms[0].GetMedia() {
				got = append(got, m.GetUrl())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("media URLs = %q, want %q", got, tt.want)
			}
		})
	}
}
