package runner_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// webFixture runs a workflow that sets parameters, makes the web request
// with params, and says "ok …" or "ko …" before disconnecting.
func webFixture(t *testing.T, allow []string, params map[string]any) *fixture {
	t.Helper()
	if _, ok := params["error_parameter"]; !ok {
		params["error_parameter"] = "err"
	}
	def := &workflowdef.Definition{Start: "ref", Activities: []workflowdef.Activity{
		act("ref", "save_to_parameter", map[string]any{"parameter": "ref", "value": "A B/1"}, then("key")),
		act("key", "save_to_parameter", map[string]any{"parameter": "key", "value": "s3cret"}, then("web")),
		act("web", "web_request", params, map[string]string{"success": "ok", "failure": "ko"}),
		act("ok", "disconnect", map[string]any{"text": "ok ${booking_status} ${nights} ${first} ${code}"}, nil),
		act("ko", "disconnect", map[string]any{"text": "ko ${err}"}, nil),
	}}
	if err := workflowdef.Validate(def); err != nil {
		t.Fatal(err)
	}
	defs := map[string]*workflowdef.Definition{"web": def}
	f := workflowFixture(t, nil, defs)
	f.r = runner.New(runner.Deps{Pub: f.pub, Services: f.svcs, Workflows: &workflows{byID: defs}, Distribution: f.dist,
		Store: f.store, Timers: f.timers, Now: f.clock.now, Web: runner.WebOptions{AllowHosts: allow}})
	return f
}

// said runs the web workflow and returns what the customer was told last.
func (f *fixture) said(t *testing.T) string {
	t.Helper()
	if err := f.handle(t, start("acme", sessionID, "web")); err != nil {
		t.Fatal(err)
	}
	last := ""
	for _, p := range f.pub.all() {
		if m, ok := p.event.(*outboundv1.OutboundMessageRequested); ok {
			last = m.GetBody()
		}
		if p.subject == subjects.WorkflowFailed("acme") {
			t.Fatalf("the session failed; a web request takes its failure branch instead")
		}
	}
	return last
}

func (f *fixture) params(t *testing.T) map[string]string {
	t.Helper()
	st, _, err := f.store.Load(context.Background(), "acme", sessionID)
	if err != nil || st == nil {
		t.Fatalf("load instance: %v", err)
	}
	return st.Params
}

func TestWebRequestMapsJSON(t *testing.T) {
	var got struct {
		method, path, key, idem, ctype string
		body                           map[string]string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.key = r.Method, r.URL.EscapedPath(), r.Header.Get("X-Api-Key")
		got.idem, got.ctype = r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type")
		_ = json.NewDecoder(r.Body).Decode(&got.body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":{"booking":{"status":"confirmed","nights":3}},"items":[{"id":"a1"}]}`)
	}))
	defer srv.Close()
	f := webFixture(t, []string{"127.0.0.1"}, map[string]any{
		"url": srv.URL + "/bookings/${ref}", "method": "POST",
		"headers": map[string]any{"X-Api-Key": "${key}"},
		"body":    `{"ref": "${ref}", "name": "${customer_name}\"}"}`,
		"timeout": "5s",
		"response_mapping": map[string]any{
			"booking_status": "data.booking.status", "nights": "data.booking.nights", "first": "items.0.id", "gone": "data.missing",
		},
		"status_parameter": "code",
	})
	if said, want := f.said(t), "ok confirmed 3 a1 200"; said != want {
		t.Errorf("customer told %q, want %q", said, want)
	}
	if got.method != "POST" || got.path != "/bookings/A%20B%2F1" || got.key != "s3cret" || got.ctype != "application/json" {
		t.Errorf("request %s %s key %q content type %q, want POST /bookings/A%%20B%%2F1 key s3cret application/json", got.method, got.path, got.key, got.ctype)
	}
	if got.body["ref"] != "A B/1" || got.body["name"] != `Dana"}` {
		t.Errorf("body = %v, want the parameters escaped as JSON", got.body)
	}
	if got.idem != sessionID+"-web" {
		t.Errorf("Idempotency-Key = %q, want %q", got.idem, sessionID+"-web")
	}
	p := f.params(t)
	if _, ok := p["gone"]; ok {
		t.Errorf("a path missing from the response set parameter gone = %q", p["gone"])
	}
	if p["err"] != "" {
		t.Errorf("err = %q after a success", p["err"])
	}
}

func TestWebRequestFailures(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"maintenance"}`)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "/big":
			io.WriteString(w, `{"data":"`+strings.Repeat("x", runner.MaxWebResponse)+`"}`)
		case "/text":
			io.WriteString(w, "hello")
		}
	}))
	defer srv.Close()
	defer close(release)
	tests := []struct {
		path, timeout, want string
	}{
		{"/down", "5s", "ko HTTP status 503"},
		{"/slow", "200ms", "ko no response within 200ms"},
		{"/big", "5s", "ko response body larger than 65536 bytes, cut off"},
		{"/text", "5s", "ko the response is not JSON"},
	}
	for _, tt := range tests {
		f := webFixture(t, []string{"127.0.0.1"}, map[string]any{
			"url": srv.URL + tt.path, "timeout": tt.timeout,
			"response_mapping": map[string]any{"booking_status": "data"}, "status_parameter": "code",
		})
		if said := f.said(t); said != tt.want {
			t.Errorf("%s: customer told %q, want %q", tt.path, said, tt.want)
		}
	}
}

// The guard refuses loopback, private, link-local and metadata addresses,
// directly or by a redirect, unless the tenant allows the host.
func TestWebRequestSSRFGuard(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, `{}`)
	}))
	defer target.Close()
	port := target.URL[strings.LastIndex(target.URL, ":")+1:]
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	}))
	defer redirector.Close()
	tests := []struct {
		name  string
		allow []string
		url   string
	}{
		{"loopback", nil, target.URL + "/x"},
		{"another tenant's allow-list", []string{"globex/127.0.0.1"}, target.URL + "/x"},
		{"metadata", nil, "http://169.254.169.254/latest/meta-data/"},
		{"private", nil, "http://10.1.2.3/x"},
		{"unique-local", nil, "http://[fd00:ec2::254]/x"},
		{"a name of loopback", nil, "http://localhost:" + port + "/x"},
		{"redirect to metadata", []string{"127.0.0.1"}, redirector.URL + "/?to=http://169.254.169.254/latest/meta-data/"},
		{"redirect to private", []string{"127.0.0.1"}, redirector.URL + "/?to=http://192.168.1.1/admin"},
		{"redirect to a name of loopback", []string{"127.0.0.1"}, redirector.URL + "/?to=http://localhost:" + port + "/x"},
	}
	for _, tt := range tests {
		f := webFixture(t, tt.allow, map[string]any{"url": tt.url, "timeout": "2s"})
		said := f.said(t)
		if !strings.HasPrefix(said, "ko ") || !strings.Contains(said, "refused address") {
			t.Errorf("%s: customer told %q, want the failure branch with a refused address", tt.name, said)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the refused target was reached %d times", n)
	}
	// Allowed for this tenant, the same target is reached.
	f := webFixture(t, []string{"acme/127.0.0.1"}, map[string]any{"url": target.URL + "/x", "timeout": "2s", "status_parameter": "code"})
	if said := f.said(t); said != "ok    200" {
		t.Errorf("allowed host: customer told %q, want %q", said, "ok    200")
	}
}

// A redirect to another host does not carry the workflow's headers.
func TestWebRequestRedirectDropsHeaders(t *testing.T) {
	var key atomic.Value
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key.Store(r.Header.Get("X-Api-Key"))
		io.WriteString(w, `{}`)
	}))
	defer target.Close()
	port := target.URL[strings.LastIndex(target.URL, ":")+1:]
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+port+"/x", http.StatusFound)
	}))
	defer redirector.Close()
	f := webFixture(t, []string{"127.0.0.1", "localhost"}, map[string]any{
		"url": redirector.URL + "/", "timeout": "2s", "headers": map[string]any{"X-Api-Key": "${key}"},
	})
	if said := f.said(t); !strings.HasPrefix(said, "ok") {
		t.Fatalf("customer told %q, want the success branch", said)
	}
	if got, _ := key.Load().(string); got != "" {
		t.Errorf("the redirect target got X-Api-Key %q, want none", got)
	}
}

func TestRefused(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1": true, "::1": true, "10.0.0.1": true, "172.16.0.1": true, "192.168.0.1": true,
		"169.254.169.254": true, "fe80::1": true, "fd00:ec2::254": true, "100.100.100.200": true, "0.0.0.0": true,
		"::ffff:127.0.0.1": true, "::": true, "168.63.129.16": true,
		"93.184.216.34": false, "2606:2800:220:1::": false, "8.8.8.8": false,
	}
	for s, want := range tests {
		if got := runner.Refused(netip.MustParseAddr(s)); got != want {
			t.Errorf("Refused(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestJSONPath(t *testing.T) {
	var doc any
	dec := json.NewDecoder(strings.NewReader(`{"a":{"b":[{"c":"x"},{"c":1.50}],"t":true,"n":null,"o":{"k":"v"}}}`))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
		ok         bool
	}{
		{"a.b.0.c", "x", true}, {"a.b.1.c", "1.50", true}, {"a.t", "true", true}, {"a.n", "", true},
		{"a.o", `{"k":"v"}`, true}, {"a.b.2.c", "", false}, {"a.x", "", false}, {"a.t.x", "", false},
	}
	for _, tt := range tests {
		if got, ok := runner.JSONPath(doc, tt.path); got != tt.want || ok != tt.ok {
			t.Errorf("JSONPath(%s) = %q, %v, want %q, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}
