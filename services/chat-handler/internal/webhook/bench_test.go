package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

// BenchmarkInbound measures the handler with a real JetStream publish, no
// HTTP transport: parse, route, signature, event, awaited PubAck.
func BenchmarkInbound(b *testing.B) {
	bs := startBus(b)
	h := webhook.New(routes(), bs, webhook.Options{}, slogDiscard())
	mux := http.NewServeMux()
	h.Routes(mux)
	target := "http://chat.test" + webhook.TenantPrefix + tenant + webhook.PathInbound
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sid := "SM" + strings.Repeat("0", 22) + strconv.FormatInt(1e9+n.Add(1), 10)
			p := url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {acct}, "From": {customer}, "To": {smsNumber},
				"Body": {"Hello, my order has not arrived yet, can you check where it is? Thanks"}, "NumMedia": {"0"}, "ToCountry": {"US"}, "ToState": {""}}
			req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(p.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", twiliosig.Sign(token, target, p))
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	body := "ToCountry=US&ToState=&SmsMessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=0&ToCity=&FromZip=98106&SmsSid=SM0123456789abcdef0123456789abcdef&FromState=WA&SmsStatus=received&FromCity=SEATTLE&Body=Why+do+you+say+that%3F+&FromCountry=US&To=%2B18333595081&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&ToZip=&NumSegments=1&MessageSid=SM0123456789abcdef0123456789abcdef&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B12533243071&ApiVersion=2010-04-01"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := webhook.ParseRequest(http.MethodPost, "", "application/x-www-form-urlencoded", strings.NewReader(body), 65536); err != nil {
			b.Fatal(err)
		}
	}
}
