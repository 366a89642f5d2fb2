// Package contract checks REST exchanges against Twilio's OpenAPI documents
// (github.com/twilio/twilio-oai): each request the emulator receives and each
// response it returns. Differences are kept as violations rather than
// rejected, so a test can run its scenario and then assert there were none.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
)

// Documents the checker loads, the host each one describes, and the paths
// the emulator serves: only those are kept, which makes loading several
// times faster than the whole documents (about 2.7 MB).
var documents = []struct {
	file, host, prefix string
	serves             []string
}{
	{"twilio_api_v2010.json", "api.twilio.com", "/2010-04-01/", []string{
		"/2010-04-01/Accounts/{AccountSid}/Messages", "/2010-04-01/Accounts/{Sid}.json", "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
	}},
	// Before Conversations: both are under /v1.
	{"twilio_content_v1.json", "content.twilio.com", "/v1/Content", []string{"/v1/Content"}},
	{"twilio_conversations_v1.json", "conversations.twilio.com", "/v1/", []string{
		"/v1/Conversations", "/v1/Services/{ChatServiceSid}/Conversations", "/v1/Services/{ChatServiceSid}/Configuration/Webhooks",
	}},
}

// mcsPath matches Media Content Service paths, which share /v1 but are not
// described by the Conversations document.
var mcsPath = regexp.MustCompile(`^/v1/Services/[^/]+/Media(/|$)`)

// mediaContentPath matches the content of a message's Media resource (its
// URI without ".json"), which Twilio serves but the 2010-04-01 document
// does not describe.
var mediaContentPath = regexp.MustCompile(`^/2010-04-01/Accounts/[^/]+/Messages/[^/]+/Media/[^/.]+$`)

type api struct {
	host, prefix string
	doc          *openapi3.T
	router       routers.Router
}

// Checker validates exchanges and keeps violations.
type Checker struct {
	log  *slog.Logger
	apis []api
	opts []openapi3.SchemaValidationOption

	mu         sync.Mutex
	violations []simapi.Violation
	exchanges  []simapi.Exchange
}

// maxExchanges bounds the exchanges kept (the oldest go first).
const maxExchanges = 10000

// Load reads the OpenAPI documents from dir.
func Load(dir string, log *slog.Logger) (*Checker, error) {
	c := &Checker{log: log, opts: formatValidators()}
	for _, d := range documents {
		path := filepath.Join(dir, d.file)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read openapi document %q: %w", path, err)
		}
		b, err = prune(b, d.serves)
		if err != nil {
			return nil, fmt.Errorf("prune openapi document %q: %w", path, err)
		}
		loader := openapi3.NewLoader()
		loader.IsExternalRefsAllowed = false
		doc, err := loader.LoadFromData(b)
		if err != nil {
			return nil, fmt.Errorf("load openapi document %q: %w", path, err)
		}
		// Route on the real Twilio host: requests are matched after their
		// URL is rewritten to it.
		doc.Servers = openapi3.Servers{{URL: "https://" + d.host}}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			return nil, fmt.Errorf("route openapi document %q: %w", path, err)
		}
		c.apis = append(c.apis, api{host: d.host, prefix: d.prefix, doc: doc, router: router})
	}
	return c, nil
}

// Violations returns what was found so far, oldest first.
func (c *Checker) Violations() []simapi.Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]simapi.Violation{}, c.violations...)
}

// Exchanges returns the REST calls checked so far, oldest first, with the
// host each was meant for.
func (c *Checker) Exchanges() []simapi.Exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]simapi.Exchange{}, c.exchanges...)
}

// Reset forgets the violations and exchanges.
func (c *Checker) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations = nil
	c.exchanges = nil
}

func (c *Checker) record(r *http.Request, op string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.exchanges) >= maxExchanges {
		c.exchanges = append(c.exchanges[:0:0], c.exchanges[len(c.exchanges)-maxExchanges/2:]...)
	}
	c.exchanges = append(c.exchanges, simapi.Exchange{
		Time: time.Now().UTC(), Method: r.Method, Path: r.URL.Path, Operation: op,
		OriginalHost: r.Header.Get("X-Original-Host"), Status: status,
	})
}

func (c *Checker) add(r *http.Request, op, dir, detail string) {
	// The detail may quote request values (bodies, phone numbers): it is
	// served by the /sim API and logged at debug level only.
	c.log.Warn("twilio contract violation", "method", r.Method, "path", r.URL.Path, "operation", op, "direction", dir)
	c.log.Debug("twilio contract violation detail", "path", r.URL.Path, "detail", detail)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations = append(c.violations, simapi.Violation{
		Time: time.Now().UTC(), Method: r.Method, Path: r.URL.Path, Operation: op, Direction: dir, Detail: detail,
	})
}

func (c *Checker) apiFor(path string) *api {
	if mcsPath.MatchString(path) || mediaContentPath.MatchString(path) {
		return nil
	}
	for i := range c.apis {
		if strings.HasPrefix(path, c.apis[i].prefix) {
			return &c.apis[i]
		}
	}
	return nil
}

// recorder passes a response through and keeps a copy.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Wrap returns h with every exchange on a described API checked.
func (c *Checker) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := c.apiFor(r.URL.Path)
		if a == nil {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))

		input, op := c.checkRequest(r, a, body)
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		c.checkResponse(r, input, op, rec)
		c.record(r, op, rec.status)
	})
}

// checkRequest validates the request and returns the validation input the
// response check needs (nil when the operation is unknown).
func (c *Checker) checkRequest(r *http.Request, a *api, body []byte) (*openapi3filter.RequestValidationInput, string) {
	if orig := r.Header.Get("X-Original-Host"); orig != "" {
		if !sameProduct(orig, a.host) {
			c.add(r, "", "request", fmt.Sprintf("sent to host %s, but %s is served by %s", orig, r.URL.Path, a.host))
		}
		switch region, edge, ok := simapi.HostRegion(orig); {
		case !ok:
			c.add(r, "", "request", fmt.Sprintf("sent to host %s, which is not a Twilio host (product[.edge.region].twilio.com)", orig))
		case edge == "" && region != "us1":
			c.add(r, "", "request", fmt.Sprintf("sent to host %s: a region without an edge stopped working on 2026-04-28; use product.<edge>.%s.twilio.com", orig, region))
		}
	}
	vr := r.Clone(r.Context())
	vr.URL.Scheme, vr.URL.Host, vr.Host = "https", a.host, a.host
	vr.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := a.router.FindRoute(vr)
	if err != nil {
		c.add(r, "", "request", fmt.Sprintf("no operation %s %s among the %s operations the emulator serves: %v", r.Method, r.URL.Path, a.host, err))
		return nil, ""
	}
	op := route.Operation.OperationID
	input := &openapi3filter.RequestValidationInput{
		Request:    vr,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
			MultiError:              true,
			SkipSettingDefaults:     true,
			SchemaValidationOptions: c.opts,
		},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), input); err != nil {
		for _, d := range flatten(err) {
			c.add(r, op, "request", d)
		}
	}
	if _, _, ok := r.BasicAuth(); !ok {
		c.add(r, op, "request", "no HTTP Basic credentials (the document requires accountSid_authToken)")
	}
	for _, d := range unknownParams(route.Operation, r.Header.Get("Content-Type"), body) {
		c.add(r, op, "request", d)
	}
	input.Request.Body = io.NopCloser(bytes.NewReader(body))
	return input, op
}

// sameProduct reports whether an original host (api.dublin.ie1.twilio.com)
// names the same product as host (api.twilio.com).
func sameProduct(orig, host string) bool {
	o, _, _ := strings.Cut(orig, ".")
	h, _, _ := strings.Cut(host, ".")
	return strings.EqualFold(o, h)
}

// unknownParams lists form fields the operation does not declare: Twilio
// ignores them silently, which hides typos.
func unknownParams(op *openapi3.Operation, contentType string, body []byte) []string {
	if op.RequestBody == nil || op.RequestBody.Value == nil || len(body) == 0 {
		return nil
	}
	if !strings.HasPrefix(contentType, "application/x-www-form-urlencoded") {
		return nil
	}
	mt := op.RequestBody.Value.Content.Get("application/x-www-form-urlencoded")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return []string{fmt.Sprintf("form body does not parse: %v", err)}
	}
	var out []string
	for k := range form {
		if _, ok := mt.Schema.Value.Properties[k]; !ok {
			out = append(out, fmt.Sprintf("form field %q is not a parameter of this operation", k))
		}
	}
	slices.Sort(out)
	return out
}

func (c *Checker) checkResponse(r *http.Request, input *openapi3filter.RequestValidationInput, op string, rec *recorder) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	if status >= 400 {
		if d := checkErrorBody(status, rec.body.Bytes()); d != "" {
			c.add(r, op, "response", d)
		}
		return
	}
	if input == nil {
		return
	}
	if input.Route.Operation.Responses.Status(status) == nil {
		c.add(r, op, "response", fmt.Sprintf("status %d is not a documented response", status))
		return
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 status,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			MultiError:              true,
			SchemaValidationOptions: c.opts,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		for _, d := range flatten(err) {
			c.add(r, op, "response", d)
		}
	}
}

// checkErrorBody checks Twilio's error shape, which the documents leave out:
// {"code": int, "message": string, "more_info": string, "status": int}.
func checkErrorBody(status int, body []byte) string {
	var e struct {
		Code     *int    `json:"code"`
		Message  *string `json:"message"`
		MoreInfo *string `json:"more_info"`
		Status   *int    `json:"status"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Sprintf("error response is not Twilio's JSON error: %v", err)
	}
	switch {
	case e.Code == nil || e.Message == nil || e.MoreInfo == nil || e.Status == nil:
		return "error response lacks code, message, more_info or status"
	case *e.Status != status:
		return fmt.Sprintf("error body status %d differs from HTTP status %d", *e.Status, status)
	}
	return ""
}

// flatten turns kin-openapi's top-level multi error into one line per
// error; nested errors stay inside their parent's line so the parameter or
// field they concern stays named.
func flatten(err error) []string {
	if me, ok := err.(openapi3.MultiError); ok {
		var out []string
		for _, e := range me {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []string{strings.Join(strings.Fields(err.Error()), " ")}
}
