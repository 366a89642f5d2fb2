// Package chattest helps chat-handler's tests: signed webhook requests and
// reading what landed on the CHAT stream.
package chattest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
)

// Webhook is a request as Twilio would send it.
type Webhook struct {
	Method string // POST (default) or GET
	// URL is the full URL requested and signed (for GET, without Params).
	URL    string
	Params url.Values
	// Token signs the request; empty sends no signature.
	Token string
	// SignedURL overrides the URL the signature covers (proxy tests).
	SignedURL string
	// SignedParams overrides the parameters the signature covers.
	SignedParams url.Values
	// Header adds headers (X-Forwarded-*, I-Twilio-Idempotency-Token, …).
	Header http.Header
}

// Request builds the HTTP request.
func (w Webhook) Request(t testing.TB) *http.Request {
	t.Helper()
	method := w.Method
	if method == "" {
		method = http.MethodPost
	}
	full, body := w.URL, ""
	signParams := w.Params
	if method == http.MethodGet {
		sep := "?"
		if strings.Contains(full, "?") {
			sep = "&"
		}
		full += sep + w.Params.Encode()
		signParams = nil
	} else {
		body = w.Params.Encode()
	}
	req, err := http.NewRequest(method, full, strings.NewReader(body))
	if err != nil {
		t.Fatalf("build request %s %s: %v", method, full, err)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	signed := full
	if w.SignedURL != "" {
		signed = w.SignedURL
	}
	if w.SignedParams != nil {
		signParams = w.SignedParams
	}
	if w.Token != "" {
		req.Header.Set("X-Twilio-Signature", twiliosig.Sign(w.Token, signed, signParams))
	}
	for k, vs := range w.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	return req
}

// Do sends the webhook and returns the status and body.
func (w Webhook) Do(t testing.TB, c *http.Client) (int, string, http.Header) {
	t.Helper()
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	res, err := c.Do(w.Request(t))
	if err != nil {
		t.Fatalf("send webhook to %s: %v", w.URL, err)
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return res.StatusCode, b.String(), res.Header
}

// Messages returns every message on the CHAT stream whose subject matches
// filter (wildcards allowed), oldest first.
func Messages(t testing.TB, js jetstream.JetStream, filter string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, subjects.StreamChat)
	if err != nil {
		t.Fatalf("stream %s: %v", subjects.StreamChat, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	want := 0
	for _, n := range info.State.Subjects {
		want += int(n)
	}
	if want == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatalf("ordered consumer on %s: %v", filter, err)
	}
	var out []jetstream.Msg
	for len(out) < want {
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch %s: %v", filter, err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			t.Fatalf("fetch %s: got %d of %d messages", filter, len(out), want)
		}
	}
	return out
}

// WaitMessages polls until at least n messages match filter.
func WaitMessages(t testing.TB, js jetstream.JetStream, filter string, n int) []jetstream.Msg {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := Messages(t, js, filter)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages after 30s, want %d", filter, len(got), n)
		}
		time.Sleep(200 * time.Millisecond) // each poll opens a consumer
	}
}

// Decode unmarshals a message into a new T.
func Decode[T proto.Message](t testing.TB, m jetstream.Msg, v T) T {
	t.Helper()
	if err := proto.Unmarshal(m.Data(), v); err != nil {
		t.Fatalf("decode %s: %v", m.Subject(), err)
	}
	return v
}

// Find returns the decoded messages on filter for which match is true.
func Find[T proto.Message](t testing.TB, js jetstream.JetStream, filter string, mk func() T, match func(T) bool) []T {
	t.Helper()
	var out []T
	for _, m := range Messages(t, js, filter) {
		v := Decode(t, m, mk())
		if match(v) {
			out = append(out, v)
		}
	}
	return out
}

// WaitFind polls until at least n decoded messages on filter match.
func WaitFind[T proto.Message](t testing.TB, js jetstream.JetStream, filter string, n int, mk func() T, match func(T) bool) []T {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := Find(t, js, filter, mk, match)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d matching messages after 30s, want %d", filter, len(got), n)
		}
		time.Sleep(200 * time.Millisecond) // each poll opens a consumer
	}
}
