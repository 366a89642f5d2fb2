package runner_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

const botKey = "bot-signing-key-for-tests-0123456789"

// secrets is a fake config LookupService serving tenant secrets.
type secrets struct {
	mu     sync.Mutex
	values map[string]string // tenant/name
	down   bool
}

func (s *secrets) GetTenantSecret(_ context.Context, r *configv1.GetTenantSecretRequest, _ ...grpc.CallOption) (*configv1.GetTenantSecretResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	v, ok := s.values[r.GetTenantId()+"/"+r.GetName()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such secret")
	}
	return &configv1.GetTenantSecretResponse{Value: v}, nil
}

// botCall is one request the test bot received.
type botCall struct {
	req   runner.BotRequest
	idem  string
	valid bool // the signature verified
}

// testBot is a bot over real HTTPS on 127.0.0.1 that verifies every
// request's signature with its own copy of the secret and answers with
// answer (or 401 to a bad signature).
type testBot struct {
	srv    *httptest.Server
	key    string
	mu     sync.Mutex
	calls  []botCall
	answer func(req runner.BotRequest) (int, string)
}

func newTestBot(t *testing.T, answer func(req runner.BotRequest) (int, string)) *testBot {
	t.Helper()
	b := &testBot{key: botKey, answer: answer}
	b.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req runner.BotRequest
		_ = json.Unmarshal(body, &req)
		ok := r.Method == http.MethodPost && runner.VerifyBot(b.key, r.Header.Get(runner.HeaderBotTimestamp), body, r.Header.Get(runner.HeaderBotSignature))
		b.mu.Lock()
		b.calls = append(b.calls, botCall{req: req, idem: r.Header.Get("Idempotency-Key"), valid: ok})
		b.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"bad signature"}`)
			return
		}
		code, out := b.answer(req)
		if code == 0 { // hang until the runner gives up
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, out)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *testBot) got() []botCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]botCall(nil), b.calls...)
}

func (b *testBot) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(b.srv.Certificate())
	return p
}

// botFlow: the bot hands off into a Queue Task, ends with a goodbye, or
// fails into an apology; bot_reason says why.
func botFlow(url string, extra map[string]any) *workflowdef.Definition {
	params := map[string]any{"url": url, "secret": "bot_signing_key", "timeout": "5s", "reason_parameter": "bot_reason"}
	for k, v := range extra {
		params[k] = v
	}
	return &workflowdef.Definition{Start: "bot", Activities: []workflowdef.Activity{
		act("bot", "bot", params, map[string]string{"handoff": "queue", "end": "bye", "failure": "sorry"}),
		act("queue", "queue_task", nil, nil),
		act("bye", "disconnect", map[string]any{"text": "Bye (${bot_reason})"}, nil),
		act("sorry", "disconnect", map[string]any{"text": "Sorry: ${bot_reason}"}, nil),
	}}
}

type botFixtureOpts struct {
	extra   map[string]any
	secrets *secrets
	log     *slog.Logger
}

func botFixture(t *testing.T, b *testBot, o botFixtureOpts) *fixture {
	t.Helper()
	def := botFlow(b.srv.URL+"/switchboard", o.extra)
	if err := workflowdef.Validate(def); err != nil {
		t.Fatal(err)
	}
	defs := map[string]*workflowdef.Definition{"desk": def}
	f := workflowFixture(t, nil, defs)
	if o.secrets == nil {
		o.secrets = &secrets{values: map[string]string{"acme/bot_signing_key": botKey}}
	}
	f.r = runner.New(runner.Deps{Pub: f.pub, Services: f.svcs, Workflows: &workflows{byID: defs}, Distribution: f.dist,
		Store: f.store, Timers: f.timers, Now: f.clock.now, Log: o.log, Secrets: o.secrets,
		Web: runner.WebOptions{AllowHosts: []string{"127.0.0.1"}, RootCAs: b.pool()}})
	return f
}

func reply(action string, texts ...string) string {
	var rs []map[string]any
	for _, t := range texts {
		rs = append(rs, map[string]any{"text": t})
	}
	out, _ := json.Marshal(map[string]any{"replies": rs, "action": action})
	return string(out)
}

// A conversation of several turns: the bot greets, asks, stores what it
// learned in the session's parameters and hands off into Queue Task. Every
// message is delivered twice (as a redelivery would be), and the bot is
// asked once per turn.
func TestBotConversationHandsOffToQueueTask(t *testing.T) {
	b := newTestBot(t, func(req runner.BotRequest) (int, string) {
		switch req.Turn {
		case 1:
			return 200, reply("continue", "Hi Dana, I am the booking assistant.", "What can I do for you?")
		case 2:
			return 200, `{"replies":[{"text":"Which booking?"}],"parameters":{"intent":"change_booking"},"action":"continue"}`
		default:
			return 200, `{"replies":[{"text":"A colleague will take over."}],"parameters":{"booking":"` + req.Message.Text + `"},"action":"handoff","reason":"needs an agent"}`
		}
	})
	f := botFixture(t, b, botFixtureOpts{})
	c := f.converse(t, "desk", sessionID)
	c.say("I want to change my booking")
	c.say("B-1234")

	calls := b.got()
	if len(calls) != 3 {
		t.Fatalf("the bot was called %d times, want 3 (one per turn)", len(calls))
	}
	for i, call := range calls {
		if !call.valid {
			t.Errorf("turn %d: the bot could not verify the signature", i+1)
		}
		if want := sessionID + "-bot-" + string(rune('1'+i)); call.idem != want {
			t.Errorf("turn %d: Idempotency-Key %q, want %q", i+1, call.idem, want)
		}
	}
	first, second := calls[0].req, calls[1].req
	if first.Event != "start" || first.Message != nil || first.Turn != 1 || first.Version != 1 {
		t.Errorf("first request: event %q message %v turn %d version %d, want start, none, 1, 1", first.Event, first.Message, first.Turn, first.Version)
	}
	if first.SessionID != sessionID || first.TenantID != "acme" || first.ActivityID != "bot" || first.Channel != "sms" ||
		first.Customer.Address != "+15550100" || first.Customer.Name != "Dana" || first.Service.ID != "desk" {
		t.Errorf("first request = %+v", first)
	}
	if second.Event != "message" || second.Message == nil || second.Message.Text != "I want to change my booking" || second.Message.ID != "m1" {
		t.Errorf("second request message = %+v", second.Message)
	}
	if calls[2].req.Parameters["intent"] != "change_booking" {
		t.Errorf("third request parameters = %v, want the intent the bot stored", calls[2].req.Parameters)
	}
	want := []string{"Hi Dana, I am the booking assistant.", "What can I do for you?", "Which booking?", "A colleague will take over."}
	if got := c.sent(); !slices.Equal(got, want) {
		t.Errorf("customer got\n %q\nwant\n %q", got, want)
	}
	if n := c.published(subjects.WorkflowTaskRequested("acme")); n != 1 {
		t.Errorf("%d task requests, want the Queue Task's one", n)
	}
	st := c.state()
	if st.Params["intent"] != "change_booking" || st.Params["booking"] != "B-1234" || st.Params["bot_reason"] != "needs an agent" {
		t.Errorf("parameters = %v", st.Params)
	}
	if st.Bot != nil || st.Status != runner.StatusQueued {
		t.Errorf("after the handoff: status %s, bot state %+v", st.Status, st.Bot)
	}
	// The Queue Task's request carries what the bot stored.
	var task *workflowv1.TaskRequested
	for _, p := range f.pub.all() {
		if ev, ok := p.event.(*workflowv1.TaskRequested); ok {
			task = ev
		}
	}
	if !maps.Equal(task.GetParameters(), st.Params) {
		t.Errorf("task parameters %v, want the session's %v", task.GetParameters(), st.Params)
	}
	if got := f.pub.steps(); !slices.Equal(got, []string{"bot handoff", "queue "}) {
		t.Errorf("steps = %q", got)
	}
	// A message after the handoff is the agent's, not the bot's.
	c.say("hello?")
	if n := len(b.got()); n != 3 {
		t.Errorf("the bot was called %d times after the handoff", n-3)
	}
}

func TestBotEnds(t *testing.T) {
	b := newTestBot(t, func(req runner.BotRequest) (int, string) {
		if req.Turn == 1 {
			return 200, reply("", "Opening hours are 8-18. Anything else?")
		}
		return 200, `{"replies":[{"text":"Have a nice day!"}],"action":"end","reason":"answered"}`
	})
	f := botFixture(t, b, botFixtureOpts{})
	c := f.converse(t, "desk", sessionID)
	c.say("no thanks")
	want := []string{"Opening hours are 8-18. Anything else?", "Have a nice day!", "Bye (answered)"}
	if got := c.sent(); !slices.Equal(got, want) {
		t.Errorf("customer got %q, want %q", got, want)
	}
	if n := c.published(subjects.WorkflowEndRequested("acme")); n != 1 {
		t.Errorf("%d end requests, want 1", n)
	}
	if got := f.pub.steps(); !slices.Equal(got, []string{"bot end", "bye "}) {
		t.Errorf("steps = %q", got)
	}
}

// A choice list is a numbered menu on SMS; the customer's "2", or the
// choice's word, is sent back as the choice's value.
func TestBotChoiceMenu(t *testing.T) {
	b := newTestBot(t, func(req runner.BotRequest) (int, string) {
		if req.Turn < 3 {
			return 200, `{"replies":[{"text":"What is it about?","choices":[{"label":"Billing","value":"billing"},{"label":"Technical support","value":"tech"},{"label":"Other"}]}]}`
		}
		return 200, `{"action":"end"}`
	})
	f := botFixture(t, b, botFixtureOpts{})
	c := f.converse(t, "desk", sessionID)
	c.say("2")
	c.say("billing please")
	calls := b.got()
	if len(calls) != 3 {
		t.Fatalf("%d bot calls, want 3", len(calls))
	}
	for i, want := range map[int]struct{ text, choice string }{1: {"2", "tech"}, 2: {"billing please", "billing"}} {
		if m := calls[i].req.Message; m == nil || m.Text != want.text || m.Choice != want.choice {
			t.Errorf("turn %d message = %+v, want text %q choice %q", i+1, m, want.text, want.choice)
		}
	}
	menu := "What is it about?\n1. Billing\n2. Technical support\n3. Other"
	if got := c.sent(); len(got) < 2 || got[0] != menu || got[1] != menu {
		t.Errorf("customer got %q, want the numbered menu twice", got)
	}
}

// Whatever goes wrong with the bot takes the failure branch with a reason;
// the session never fails.
func TestBotFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  func(runner.BotRequest) (int, string)
		key     string // the bot's copy of the secret, when it differs
		secrets *secrets
		want    string
	}{
		{name: "timeout", answer: func(runner.BotRequest) (int, string) { return 0, "" }, want: "Sorry: no response within 500ms"},
		{name: "non-2xx", answer: func(runner.BotRequest) (int, string) { return 503, `{"replies":[{"text":"down"}]}` }, want: "Sorry: HTTP status 503"},
		{name: "invalid JSON", answer: func(runner.BotRequest) (int, string) { return 200, "hello" }, want: "Sorry: invalid bot response: not a JSON object"},
		{name: "oversized", answer: func(runner.BotRequest) (int, string) {
			return 200, `{"replies":[{"text":"` + strings.Repeat("x", runner.MaxWebResponse) + `"}]}`
		}, want: "Sorry: response body larger than 65536 bytes, cut off"},
		{name: "a list", answer: func(runner.BotRequest) (int, string) { return 200, `[{"action":"end"}]` }, want: "Sorry: invalid bot response: not a JSON object"},
		{name: "unknown action", answer: func(runner.BotRequest) (int, string) { return 200, `{"action":"transfer"}` },
			want: `Sorry: invalid bot response: action must be "continue", "handoff" or "end"`},
		{name: "text not a string", answer: func(runner.BotRequest) (int, string) { return 200, `{"replies":[{"text":42}]}` },
			want: "Sorry: invalid bot response: replies.text must be a JSON string"},
		{name: "too many choices", answer: func(runner.BotRequest) (int, string) {
			return 200, `{"replies":[{"text":"x","choices":[{"label":"1"},{"label":"2"},{"label":"3"},{"label":"4"},{"label":"5"},{"label":"6"},{"label":"7"},{"label":"8"},{"label":"9"},{"label":"10"}]}]}`
		}, want: "Sorry: invalid bot response: replies[0] has 10 choices, at most 9"},
		{name: "parameter name", answer: func(runner.BotRequest) (int, string) { return 200, `{"parameters":{"secret.x":"y"}}` },
			want: `Sorry: invalid bot response: parameters: "secret.x" is not a parameter name (letters, digits, '_' and '.', not starting with a digit or "secret.")`},
		{name: "bad signature", key: "another-key", answer: func(runner.BotRequest) (int, string) { return 200, reply("continue", "hi") },
			want: "Sorry: HTTP status 401"},
		{name: "secret not set", secrets: &secrets{values: map[string]string{}}, answer: func(runner.BotRequest) (int, string) { return 200, "{}" },
			want: `Sorry: tenant secret "bot_signing_key" is not set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBot(t, tc.answer)
			if tc.key != "" {
				b.key = tc.key
			}
			f := botFixture(t, b, botFixtureOpts{extra: map[string]any{"timeout": "500ms"}, secrets: tc.secrets})
			c := f.converse(t, "desk", sessionID)
			got := c.sent()
			if len(got) == 0 || got[len(got)-1] != tc.want {
				t.Errorf("customer got %q, want last %q", got, tc.want)
			}
			if n := c.published(subjects.WorkflowFailed("acme")); n != 0 {
				t.Errorf("the session failed; a bot's failure takes the failure branch")
			}
			if steps := f.pub.steps(); len(steps) == 0 || steps[0] != "bot failure" {
				t.Errorf("steps = %q, want the bot's failure branch first", steps)
			}
			calls := b.got()
			switch tc.name {
			case "bad signature":
				if len(calls) != 1 || calls[0].valid {
					t.Errorf("the bot verified %d calls as valid, want the one call refused", len(calls))
				}
			case "secret not set":
				if len(calls) != 0 {
					t.Errorf("the bot was called without a secret to sign with")
				}
			}
		})
	}
}

// A config outage while reading the secret is retried (the event is
// redelivered), not a failure.
func TestBotSecretOutageIsRetried(t *testing.T) {
	b := newTestBot(t, func(runner.BotRequest) (int, string) { return 200, reply("continue", "Hi!") })
	sec := &secrets{values: map[string]string{"acme/bot_signing_key": botKey}, down: true}
	f := botFixture(t, b, botFixtureOpts{secrets: sec})
	if err := f.handle(t, start("acme", sessionID, "desk")); err == nil {
		t.Fatal("start during a config outage: err = nil, want a retryable error")
	}
	sec.mu.Lock()
	sec.down = false
	sec.mu.Unlock()
	c := f.converse(t, "desk", sessionID)
	if got := c.sent(); !slices.Equal(got, []string{"Hi!"}) || len(b.got()) != 1 {
		t.Errorf("after the outage: customer got %q, bot called %d times", got, len(b.got()))
	}
}

// The customer's silence ends the bot by its inactivity timer; max_turns
// hands off after that many relayed messages.
func TestBotInactivityAndMaxTurns(t *testing.T) {
	b := newTestBot(t, func(runner.BotRequest) (int, string) { return 200, reply("continue", "Go on.") })
	f := botFixture(t, b, botFixtureOpts{extra: map[string]any{"inactivity_timeout": "2m", "max_turns": 2}})
	c := f.converse(t, "desk", sessionID)
	if ev, due := f.timers.get("acme", sessionID); ev == nil || due.Sub(f.clock.now()) != 2*time.Minute {
		t.Fatalf("inactivity timer %v due in %v, want 2m", ev, due.Sub(f.clock.now()))
	}
	c.say("one")
	c.fire()
	if got := c.sent(); got[len(got)-1] != "Bye (inactivity)" {
		t.Errorf("after the silence the customer got %q, want the end branch", got)
	}
	if n := len(b.got()); n != 2 {
		t.Errorf("%d bot calls, want 2", n)
	}

	f2 := botFixture(t, b, botFixtureOpts{extra: map[string]any{"max_turns": 2}})
	c2 := f2.converse(t, "desk", sessionID)
	c2.say("one")
	c2.say("two")
	if st := c2.state(); st.Params["bot_reason"] != runner.BotReasonMaxTurns || st.Status != runner.StatusQueued {
		t.Errorf("after two turns: status %s reason %q, want queued by max_turns", st.Status, st.Params["bot_reason"])
	}
}

// A stale inactivity timer (of an earlier turn) is ignored.
func TestBotStaleTimerIgnored(t *testing.T) {
	b := newTestBot(t, func(runner.BotRequest) (int, string) { return 200, reply("continue", "Go on.") })
	f := botFixture(t, b, botFixtureOpts{})
	c := f.converse(t, "desk", sessionID)
	old, _ := f.timers.get("acme", sessionID)
	c.say("one")
	if err := f.r.HandleTimerFired(context.Background(), msg(t, subjects.WorkflowTimerFired("acme"), old)); err != nil {
		t.Fatal(err)
	}
	if st := c.state(); st.Status != runner.StatusWaiting || st.Bot == nil || st.Bot.Turn != 2 {
		t.Errorf("after a stale timer: status %s bot %+v, want still talking at turn 2", st.Status, st.Bot)
	}
}

// The worked example of BOT_PROTOCOL.md is what SignBot computes.
func TestBotSignatureExample(t *testing.T) {
	req := runner.BotRequest{Version: 1, Event: "message", TenantID: "acme", SessionID: "ss_01example", ActivityID: "bot", Turn: 2, Channel: "sms",
		Customer: runner.BotCustomer{Address: "+15550100", Name: "Dana"}, Service: runner.BotService{ID: "support", Name: "Support"},
		Message: &runner.BotMessage{ID: "IM01example", Text: "2", Choice: "tech"}, Parameters: map[string]string{"intent": "billing"},
		SentAt: "2026-01-01T00:00:00Z"}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	sig := runner.SignBot("example-signing-key", "1767225600", body)
	if sig != "v1=23e53d1b3fc113e2e0d980e6b4efafe14d2fd4650437a6664e9b99a30cea60e6" {
		t.Errorf("SignBot = %s, want the documented %s", sig, "v1=23e53d1b3fc113e2e0d980e6b4efafe14d2fd4650437a6664e9b99a30cea60e6")
	}
	doc, err := os.ReadFile("../../BOT_PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, []byte(sig)) || !bytes.Contains(doc, body) {
		t.Errorf("BOT_PROTOCOL.md's worked example is not what SignBot computes: %s over %s", sig, body)
	}
	if !runner.VerifyBot("example-signing-key", "1767225600", body, sig) || runner.VerifyBot("other", "1767225600", body, sig) {
		t.Errorf("VerifyBot does not verify what SignBot signs")
	}
}

// A Web Request header may carry a tenant secret; the value reaches the
// endpoint and nothing else (logs, events, parameters, the stored
// instance); a customer's "${secret.…}" stays text.
func TestWebRequestHeaderSecret(t *testing.T) {
	const token = "crm-token-0123456789-abcdef"
	var got struct{ auth, ref string }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.auth, got.ref = r.Header.Get("Authorization"), r.Header.Get("X-Ref")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	def := &workflowdef.Definition{Start: "ask", Activities: []workflowdef.Activity{
		act("ask", "collect_information", map[string]any{"prompt": "Reference?", "parameter": "ref"}, map[string]string{"next": "web", "no_answer": "web"}),
		act("web", "web_request", map[string]any{"url": srv.URL + "/x", "headers": map[string]any{"Authorization": "Bearer ${secret.crm_api_token}", "X-Ref": "${ref}"},
			"timeout": "5s", "error_parameter": "err", "save_to": "raw"}, map[string]string{"success": "ok", "failure": "ko"}),
		act("ok", "disconnect", map[string]any{"text": "ok"}, nil),
		act("ko", "disconnect", map[string]any{"text": "ko ${err}"}, nil),
	}}
	if err := workflowdef.Validate(def); err != nil {
		t.Fatal(err)
	}
	defs := map[string]*workflowdef.Definition{"desk": def}
	var logs bytes.Buffer
	run := func(sec *secrets) *conversation {
		f := workflowFixture(t, nil, defs)
		f.r = runner.New(runner.Deps{Pub: f.pub, Services: f.svcs, Workflows: &workflows{byID: defs}, Store: f.store, Timers: f.timers,
			Now: f.clock.now, Secrets: sec, Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Web: runner.WebOptions{AllowHosts: []string{"127.0.0.1"}}})
		c := f.converse(t, "desk", sessionID)
		c.say("${secret.crm_api_token}")
		return c
	}
	c := run(&secrets{values: map[string]string{"acme/crm_api_token": token}})
	if got.auth != "Bearer "+token || got.ref != "${secret.crm_api_token}" {
		t.Errorf("endpoint got Authorization %q X-Ref %q, want the secret and the customer's text as it is", got.auth, got.ref)
	}
	if s := c.sent(); s[len(s)-1] != "ok" {
		t.Errorf("customer got %q", s)
	}
	for _, p := range c.f.pub.all() {
		if js, _ := protojson.Marshal(p.event); strings.Contains(string(js), token) {
			t.Errorf("published %s holds the secret", p.subject)
		}
	}
	for _, p := range c.f.pub.stepsOut {
		if ev, ok := p.event.(*workflowv1.StepCompleted); ok && strings.Contains(ev.String(), token) {
			t.Errorf("a step event holds the secret")
		}
	}
	st, _, _ := c.f.store.Load(context.Background(), "acme", sessionID)
	if js, _ := json.Marshal(st); strings.Contains(string(js), token) {
		t.Errorf("the stored instance holds the secret")
	}
	// Not set: the failure branch says so.
	c = run(&secrets{values: map[string]string{}})
	if s := c.sent(); s[len(s)-1] != `ko tenant secret "crm_api_token" is not set` {
		t.Errorf("without the secret the customer got %q", s)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the log holds the secret")
	}
}

// The service's inactivity timeout applies while a bot waits for the
// customer: the earlier of it and the bot's own inactivity_timeout wins.
func TestBotAndServiceInactivity(t *testing.T) {
	b := newTestBot(t, func(runner.BotRequest) (int, string) { return 200, reply("continue", "Go on.") })
	for _, tc := range []struct {
		name       string
		service    time.Duration
		wantDue    time.Duration
		wantEnd    workflowv1.EndCause
		wantLatest string
	}{
		{"the service's is earlier: abandoned", time.Minute, time.Minute, workflowv1.EndCause_END_CAUSE_INACTIVITY, runner.DefaultInactivityMessage},
		{"the bot's is earlier: its end branch", 10 * time.Minute, 2 * time.Minute, workflowv1.EndCause_END_CAUSE_UNSPECIFIED, "Bye (inactivity)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := botFixture(t, b, botFixtureOpts{extra: map[string]any{"inactivity_timeout": "2m"}})
			f.svcs.set("acme", &configv1.Service{Id: "desk", TenantId: "acme", Name: "Desk", WorkflowId: "desk", InactivityTimeout: durationpb.New(tc.service)})
			c := f.converse(t, "desk", sessionID)
			c.say("hello")
			if d := c.due(); d != tc.wantDue {
				t.Fatalf("timer due in %v, want %v", d, tc.wantDue)
			}
			c.fire()
			end := c.ended()
			if end == nil || end.GetCause() != tc.wantEnd {
				t.Fatalf("end request %v, want cause %v", end, tc.wantEnd)
			}
			if got := c.sent(); got[len(got)-1] != tc.wantLatest {
				t.Errorf("customer got %q last, want %q", got[len(got)-1], tc.wantLatest)
			}
		})
	}
}
