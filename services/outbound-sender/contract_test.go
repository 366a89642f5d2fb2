package outboundsender_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// exchange is one HTTP call outbound-sender made to Twilio (the emulator)
// and its answer, as they crossed the wire.
type exchange struct {
	req      *http.Request
	reqBody  []byte
	status   int
	header   http.Header
	respBody []byte
}

// wire records every exchange below twilio-go.
type wire struct {
	base http.RoundTripper
	mu   sync.Mutex
	ex   []exchange
}

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	res, err := w.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	rb, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(rb))
	w.mu.Lock()
	w.ex = append(w.ex, exchange{req: r.Clone(context.Background()), reqBody: body, status: res.StatusCode, header: res.Header.Clone(), respBody: rb})
	w.mu.Unlock()
	return res, nil
}

func (w *wire) exchanges() []exchange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ex)
}

// twilioDoc is one of Twilio's OpenAPI documents, routed on its real host.
type twilioDoc struct {
	host, prefix string
	router       routers.Router
}

// loadDoc reads a document and keeps the paths under keep (the whole
// documents take seconds to load; the schemas they use stay).
func loadDoc(t *testing.T, dir, file, host, prefix string, keep ...string) twilioDoc {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var paths map[string]json.RawMessage
	if err := json.Unmarshal(doc["paths"], &paths); err != nil {
		t.Fatal(err)
	}
	for p := range paths {
		if !slices.ContainsFunc(keep, func(k string) bool { return strings.HasPrefix(p, k) }) {
			delete(paths, p)
		}
	}
	doc["paths"], _ = json.Marshal(paths)
	raw, _ = json.Marshal(doc)
	loader := openapi3.NewLoader()
	d, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	d.Servers = openapi3.Servers{{URL: "https://" + host}}
	r, err := gorillamux.NewRouter(d)
	if err != nil {
		t.Fatalf("route %s: %v", file, err)
	}
	return twilioDoc{host: host, prefix: prefix, router: r}
}

// Formats Twilio's documents use beyond OpenAPI's own.
func twilioFormats() []openapi3.SchemaValidationOption {
	e164 := regexp.MustCompile(`^(whatsapp:)?\+[1-9][0-9]{1,14}$`)
	return []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidator("date-time-rfc-2822", openapi3.NewCallbackValidator(func(s string) error {
			_, err := time.Parse(time.RFC1123Z, s)
			return err
		})),
		openapi3.WithStringFormatValidator("phone-number", openapi3.NewCallbackValidator(func(s string) error {
			if !e164.MatchString(s) {
				return fmt.Errorf("%q is not an E.164 or whatsapp: address", s)
			}
			return nil
		})),
		openapi3.WithStringFormatValidator("uri", openapi3.NewCallbackValidator(func(s string) error {
			if u, err := url.Parse(s); err != nil || (u.Host == "" && !strings.HasPrefix(s, "/")) {
				return fmt.Errorf("%q is not a URI", s)
			}
			return nil
		})),
		openapi3.WithStringFormatValidator("currency", openapi3.NewCallbackValidator(func(string) error { return nil })),
	}
}

// check validates one exchange and returns the operation and problems.
func check(docs []twilioDoc, ex exchange) (string, []string) {
	var probs []string
	var doc *twilioDoc
	for i := range docs {
		if strings.HasPrefix(ex.req.URL.Path, docs[i].prefix) {
			doc = &docs[i]
		}
	}
	if doc == nil {
		return "", []string{"no Twilio document describes " + ex.req.URL.Path}
	}
	orig := ex.req.Header.Get(twilioapi.OriginalHostHeader)
	if p, _, _ := strings.Cut(orig, "."); p != strings.Split(doc.host, ".")[0] {
		probs = append(probs, fmt.Sprintf("sent to host %q, but the operation lives on %s", orig, doc.host))
	}
	if _, _, ok := ex.req.BasicAuth(); !ok {
		probs = append(probs, "no HTTP Basic credentials")
	}
	vr := ex.req.Clone(context.Background())
	vr.URL.Scheme, vr.URL.Host, vr.Host = "https", doc.host, doc.host
	vr.Body = io.NopCloser(bytes.NewReader(ex.reqBody))
	route, params, err := doc.router.FindRoute(vr)
	if err != nil {
		return "", append(probs, fmt.Sprintf("%s %s is not a documented operation: %v", ex.req.Method, ex.req.URL.Path, err))
	}
	op := route.Operation.OperationID
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true, SkipSettingDefaults: true, SchemaValidationOptions: twilioFormats()}
	in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		probs = append(probs, "request: "+oneLine(err))
	}
	if ct := ex.req.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/x-www-form-urlencoded") && route.Operation.RequestBody != nil {
		schema := route.Operation.RequestBody.Value.Content.Get("application/x-www-form-urlencoded").Schema.Value
		form, _ := url.ParseQuery(string(ex.reqBody))
		for k := range form {
			if _, ok := schema.Properties[k]; !ok {
				probs = append(probs, fmt.Sprintf("request: form field %q is not a parameter of %s (Twilio would ignore it)", k, op))
			}
		}
	}
	if ex.status >= 400 {
		var e struct {
			Code     *int    `json:"code"`
			Message  *string `json:"message"`
			MoreInfo *string `json:"more_info"`
			Status   *int    `json:"status"`
		}
		switch err := json.Unmarshal(ex.respBody, &e); {
		case err != nil:
			probs = append(probs, "response: error body is not JSON: "+err.Error())
		case e.Code == nil || e.Message == nil || e.MoreInfo == nil || e.Status == nil:
			probs = append(probs, "response: error body lacks code, message, more_info or status")
		case *e.Status != ex.status:
			probs = append(probs, fmt.Sprintf("response: error status %d differs from HTTP %d", *e.Status, ex.status))
		}
		return op, probs
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: ex.status, Header: ex.header, Body: io.NopCloser(bytes.NewReader(ex.respBody)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: twilioFormats()},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		probs = append(probs, "response: "+oneLine(err))
	}
	return op, probs
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// Every request outbound-sender makes and every answer twilio-sim gives —
// sends on every path, lookups after ambiguous answers, 429, 5xx, 4xx and
// bad credentials — is checked against Twilio's OpenAPI documents
// (twilio-oai), here on the client side and by the emulator's strict mode.
func TestTwilioContract(t *testing.T) {
	dir := contractDir()
	if dir == "" {
		t.Skip("Twilio's OpenAPI documents are not in ../shared/twilio-oai (relative to the repository root): get github.com/twilio/twilio-oai's spec/json there to run the contract test")
	}
	docs := []twilioDoc{
		loadDoc(t, dir, "twilio_api_v2010.json", "api.twilio.com", "/2010-04-01/", "/2010-04-01/Accounts/{AccountSid}/Messages"),
		loadDoc(t, dir, "twilio_conversations_v1.json", "conversations.twilio.com", "/v1/", "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Messages"),
	}
	w := &wire{base: twilioapi.NewTransport()}
	h := start(t, options{transport: w})
	ctx := timeout(t)

	const waCustomer = "whatsapp:+15550200080"
	h.customerSays(waCustomer, waNumber, "hello")
	conv := h.customerSays("+15550200081", convNumber, "hello")
	convRef := &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS,
		CustomerAddress: "+15550200081", ChatServiceSid: chatService, ConversationSid: conv.ConversationSID}
	poolRef := &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING,
		CustomerAddress: "+15550200082", MessagingServiceSid: msgService}
	fault := func(prefix string, status int) {
		if _, err := h.sim.InjectFault(ctx, simclient.Fault{Count: 1, PathPrefix: prefix, Method: "POST", Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name  string
		setup func()
		req   *outboundv1.OutboundMessageRequested
		sent  bool
	}{
		{"sms", nil, &outboundv1.OutboundMessageRequested{EntryId: entrySMS, Conversation: smsTo("+15550200083"), Body: "plain text"}, true},
		{"mms", nil, &outboundv1.OutboundMessageRequested{EntryId: entrySMS, Conversation: smsTo("+15550200083"), Body: "a picture", MediaUrls: []string{"https://example.com/a.jpg", "https://example.com/b.png"}}, true},
		{"messaging service", nil, &outboundv1.OutboundMessageRequested{EntryId: entryPool, Conversation: poolRef, Body: "from the pool ✓"}, true},
		{"whatsapp free text", nil, &outboundv1.OutboundMessageRequested{EntryId: entryWA, Conversation: waTo(waCustomer), Body: "in the window"}, true},
		{"whatsapp template", nil, &outboundv1.OutboundMessageRequested{EntryId: entryWA, Conversation: waTo(waCustomer), ContentSid: "HX00000000000000000000000000000002", ContentVariables: `{"1":"Ann"}`}, true},
		{"conversations", nil, &outboundv1.OutboundMessageRequested{EntryId: entryConv, Conversation: convRef, Body: "via the conversation", Author: "Alice"}, true},
		{"429 then created", func() { fault("/2010-04-01/", 429) }, &outboundv1.OutboundMessageRequested{EntryId: entrySMS, Conversation: smsTo("+15550200084"), Body: "after 429"}, true},
		{"503 then looked up", func() { fault("/2010-04-01/", 503) }, &outboundv1.OutboundMessageRequested{EntryId: entrySMS, Conversation: smsTo("+15550200084"), Body: "after 503"}, true},
		{"conversations 503 then looked up", func() { fault("/v1/", 503) }, &outboundv1.OutboundMessageRequested{EntryId: entryConv, Conversation: convRef, Body: "after a conversations 503"}, true},
		{"unreachable To", func() {
			if _, err := h.sim.InjectFault(ctx, simclient.Fault{Count: 1, PathPrefix: "/2010-04-01/", Method: "POST", Status: 400, Code: 21211, Message: "Invalid 'To' Phone Number"}); err != nil {
				t.Fatal(err)
			}
		}, &outboundv1.OutboundMessageRequested{EntryId: entrySMS, Conversation: smsTo("+15550200086"), Body: "nowhere"}, false},
		{"bad credentials", nil, &outboundv1.OutboundMessageRequested{EntryId: "bad-auth-entry", Conversation: smsTo("+15550200085"), Body: "denied"}, false},
		{"opted out at twilio", func() {
			// The customer's STOP reaches Twilio, not Switchboard.
			if _, err := h.sim.SendMessage(ctx, simclient.CustomerMessage{From: "+15550200087", To: quietNumber, Body: "STOP"}); err != nil {
				t.Fatal(err)
			}
		}, &outboundv1.OutboundMessageRequested{EntryId: entrySMS, Conversation: &messagingv1.ConversationRef{
			Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, CustomerAddress: "+15550200087", BusinessAddress: quietNumber}, Body: "still there?"}, false},
	}
	for i, st := range steps {
		if st.setup != nil {
			st.setup()
		}
		st.req.RequestId = fmt.Sprintf("contract-%d", i)
		h.request(st.req)
		if st.sent {
			h.waitSent(st.req.RequestId)
		} else {
			f := h.waitFailed(st.req.RequestId)
			t.Logf("%s: failed with %d %s", st.name, f.GetErrorCode(), f.GetErrorMessage())
		}
	}
	if f := h.waitFailed("contract-10"); f.GetErrorCode() != 20003 {
		t.Errorf("bad credentials failed with %d, want 20003", f.GetErrorCode())
	}
	if f := h.waitFailed("contract-11"); f.GetErrorCode() != 21610 {
		t.Errorf("opted-out recipient failed with %d, want 21610 from the emulator", f.GetErrorCode())
	}

	ops := map[string]bool{}
	statuses := map[int]bool{}
	for _, ex := range w.exchanges() {
		op, probs := check(docs, ex)
		ops[op] = true
		statuses[ex.status] = true
		for _, p := range probs {
			t.Errorf("%s %s (%s, HTTP %d): %s", ex.req.Method, ex.req.URL.Path, op, ex.status, p)
		}
	}
	for _, op := range []string{"CreateMessage", "ListMessage", "CreateServiceConversationMessage", "ListServiceConversationMessage"} {
		if !ops[op] {
			t.Errorf("operation %s was not exercised (saw %v)", op, ops)
		}
	}
	for _, s := range []int{200, 201, 400, 401, 429, 503} {
		if !statuses[s] {
			t.Errorf("no exchange answered %d (saw %v)", s, statuses)
		}
	}
	v, err := h.sim.ContractViolations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range v {
		t.Errorf("emulator's strict mode: %s %s %s (%s): %s", x.Direction, x.Method, x.Path, x.Operation, x.Detail)
	}
}
