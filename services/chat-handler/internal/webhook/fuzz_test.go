package webhook_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

// accepting stores nothing and succeeds for every event the bus could
// publish: like the bus, it marshals the event (protobuf refuses invalid
// UTF-8 in strings).
type accepting struct{}

func (accepting) Emit(_ context.Context, _ string, ev proto.Message, _ string) error {
	_, err := proto.Marshal(ev)
	return err
}

// lastReason keeps the reason of the handler's last log record.
type lastReason struct{ reason *string }

func (lastReason) Enabled(context.Context, slog.Level) bool { return true }
func (l lastReason) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			*l.reason = a.Value.String()
		}
		return true
	})
	return nil
}
func (l lastReason) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l lastReason) WithGroup(string) slog.Handler      { return l }

// FuzzParseRequest: any method, content type, query and body either parse
// or fail cleanly, and a parsed form's canonical string is what the signer
// signs.
func FuzzParseRequest(f *testing.F) {
	f.Add("POST", "application/x-www-form-urlencoded", "", "To=%2B15550001111&Body=hi&MediaUrl0=x")
	f.Add("GET", "", "EventType=onMessageAdded&Body=a%20b", "")
	f.Add("POST", "application/json; charset=utf-8", "bodySHA256=00", `{"To":"+1","N":3,"B":true,"O":{"a":1},"Z":null}`)
	f.Add("POST", "application/x-www-form-urlencoded; charset=UTF-8", "", "a=1&a=2&a=1&%zz")
	f.Add("POST", "multipart/form-data; boundary=x", "", "--x--")
	f.Fuzz(func(t *testing.T, method, ctype, query, body string) {
		req, err := webhook.ParseRequest(method, query, ctype, strings.NewReader(body), 4096)
		if method == http.MethodPost && ctype == "application/x-www-form-urlencoded" && len(body) <= 4096 {
			// The form parser agrees with net/url.
			want, werr := url.ParseQuery(body)
			if (err != nil) != (werr != nil) {
				t.Fatalf("ParseRequest error %v, url.ParseQuery error %v", err, werr)
			}
			if err == nil && !reflect.DeepEqual(map[string][]string(req.Params), map[string][]string(want)) {
				t.Fatalf("ParseRequest params %v, url.ParseQuery %v", req.Params, want)
			}
		}
		if err != nil {
			return
		}
		if req.Params == nil {
			t.Fatal("parsed request without parameters")
		}
		if !req.IsJSON && method != http.MethodGet && method != http.MethodHead {
			if want := twiliosig.Canonical(req.Params); !bytes.Equal(req.Canonical, want) {
				t.Fatalf("Canonical = %q, want %q", req.Canonical, want)
			}
			const u = "https://h/x"
			if !req.VerifySignature([]string{"tok"}, u, twiliosig.Sign("tok", u, req.Params)) {
				t.Fatal("a request signed over its own parameters was rejected")
			}
		}
	})
}

// FuzzHandler posts arbitrary form bodies, signed and unsigned, through
// the whole handler: it never panics, never answers 5xx while the broker
// works (whatever bytes the body holds), accepts no unsigned request, and
// never refuses a correctly signed one for its signature (the answer does
// not say, by design; the log does).
func FuzzHandler(f *testing.F) {
	f.Add(0, "EventType=onMessageAdded&ChatServiceSid="+convSvc+"&MessageSid=IM1&ConversationSid=CH1&Source=SMS&Author=%2B1&Body=x", true)
	f.Add(1, "MessageSid=SM1&From=%2B15557654321&To=%2B15550001111&NumMedia=99&MediaUrl0=http://x", true)
	f.Add(2, "MessageSid=SM1&From=%2B15557654321&To="+url.QueryEscape(offNumber)+"&ErrorCode=abc", true)
	f.Add(3, "MessageSid=SM1&MessageStatus=bogus&From=whatsapp%3A%2B15550002222", false)
	f.Add(0, "EventType=onConversationStateUpdated&ChatServiceSid="+convSvc+"&ConversationSid=CH1&StateTo=closed&DateUpdated=nope", true)
	f.Add(0, "EventType=onMessageAdded&ChatServiceSid="+convSvc+"&MessageSid=IM1&ConversationSid=CH1&Media=%5B%7B", true)
	f.Add(1, "MessageSid=SM1&From=%2B15557654321&To=%2B15550001111&Body=caf%E9&ProfileName=%FF", true)
	f.Add(0, "EventType=onMessageAdded&ChatServiceSid="+convSvc+"&MessageSid=IM1&ConversationSid=CH1&Source=SMS&Author=%2B1&Attributes=%C3%28", true)
	var reason string
	h := webhook.New(routes(), accepting{}, webhook.Options{MaxBodyBytes: 8192}, slog.New(lastReason{&reason}))
	mux := http.NewServeMux()
	h.Routes(mux)
	paths := []string{webhook.PathConversations, webhook.PathInbound, webhook.PathFallback, webhook.PathStatus}
	f.Fuzz(func(t *testing.T, ep int, body string, sign bool) {
		path := paths[uint(ep)%uint(len(paths))]
		target := "http://chat.test" + webhook.TenantPrefix + tenant + path
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		params, perr := url.ParseQuery(body)
		if sign {
			req.Header.Set("X-Twilio-Signature", twiliosig.Sign(token, target, params))
		}
		rec := httptest.NewRecorder()
		reason = ""
		mux.ServeHTTP(rec, req)
		code := rec.Code
		switch {
		case code >= 500:
			t.Fatalf("status %d for %q: %s", code, body, rec.Body.String())
		case code == http.StatusOK && !sign:
			t.Fatalf("unsigned request accepted: %q", body)
		case code == http.StatusForbidden && sign && perr == nil && strings.Contains(reason, "Signature"):
			t.Fatalf("signed request refused for its signature: %q: %s", body, reason)
		}
	})
}
