package outboundsender_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
)

// A tiny PNG (1×1, red).
var mcsPicture = []byte{0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00,
	0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d,
	0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82}

// sentRequest is what a recording transport saw of one call.
type sentRequest struct {
	host, path string // the host the call was meant for (before the rewrite to the emulator)
	user       string // the Basic credentials' user, "" without credentials
}

// recorder records every call outbound-sender makes, then makes it.
type recorder struct {
	mu   sync.Mutex
	sent []sentRequest
	next http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	user, _, _ := req.BasicAuth()
	r.mu.Lock()
	r.sent = append(r.sent, sentRequest{host: req.Header.Get(twilioclient.OriginalHostHeader), path: req.URL.Path, user: user})
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recorder) take() []sentRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

// uploadMCS uploads a file to the emulator's Media Content Service in the
// tenant's Chat Service, as a customer's phone's attachment arrives there,
// and returns its media SID.
func uploadMCS(t *testing.T, ctx context.Context, h *harness, contentType string, data []byte) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.simURL+"/v1/Services/"+chatService+"/Media", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(apiKeySID, apiKeySecret)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(twilioclient.OriginalHostHeader, "mcs.us1.twilio.com")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		SID string `json:"sid"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusCreated || out.SID == "" {
		t.Fatalf("upload: %s, %v, %+v", res.Status, err, out)
	}
	return out.SID
}

// mcsURL is the Media Content Service URL of a media item, as sessions
// asks for a Conversations attachment.
func mcsURL(sid string) string {
	return "https://mcs.us1.twilio.com/v1/Services/" + chatService + "/Media/" + sid
}

// FetchMedia downloads a Conversations attachment by its Media Content
// Service URL: the media resource is read with the connector's credentials
// on Twilio's host, and its temporary content link (another host) without
// them; the exact bytes and type come back. The size bound and the types
// agents may open hold before the file is read, and media Twilio does not
// have is NotFound.
func TestFetchMediaFromConversations(t *testing.T) {
	rec := &recorder{next: twilioclient.NewTransport()}
	h := start(t, options{transport: rec})
	ctx := timeout(t)
	picture := uploadMCS(t, ctx, h, "image/png", mcsPicture)

	res, err := h.grpc.FetchMedia(ctx, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryConv, Url: mcsURL(picture), MaxBytes: 5 << 20})
	if err != nil {
		t.Fatalf("FetchMedia: %v", err)
	}
	if res.GetContentType() != "image/png" || !bytes.Equal(res.GetData(), mcsPicture) {
		t.Fatalf("got %q, %d bytes; want image/png, the %d bytes uploaded", res.GetContentType(), len(res.GetData()), len(mcsPicture))
	}
	sent := rec.take()
	var resource, content bool
	for _, s := range sent {
		twilioHost := s.host == "mcs.us1.twilio.com"
		switch {
		case s.user != "" && !twilioHost:
			t.Errorf("credentials (%s) sent to %s%s, not Twilio's media host", s.user, s.host, s.path)
		case twilioHost && s.path == "/v1/Services/"+chatService+"/Media/"+picture:
			resource = s.user == apiKeySID
		case !twilioHost && s.user == "":
			content = true
		}
	}
	if !resource || !content {
		t.Errorf("calls %+v: want the media resource with the API key on mcs.us1.twilio.com and its content from the temporary link without credentials", sent)
	}

	page := uploadMCS(t, ctx, h, "text/html", []byte("<script>alert(1)</script>"))
	for _, tt := range []struct {
		name  string
		url   string
		max   int64
		want  codes.Code
		words string
	}{
		{"larger than the bound", mcsURL(picture), 10, codes.FailedPrecondition, "larger"},
		{"a type agents may not open", mcsURL(page), 0, codes.FailedPrecondition, "text/html"},
		{"unknown media", mcsURL("ME000000000000000000000000000000ff"), 0, codes.NotFound, "not found"},
		{"another Chat Service", strings.Replace(mcsURL(picture), chatService, "IS0000000000000000000000000000dead", 1), 0, codes.NotFound, "not found"},
		{"not a media SID", mcsURL("XX1"), 0, codes.InvalidArgument, "not a message's media or a Conversations media resource"},
	} {
		_, err := h.grpc.FetchMedia(ctx, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryConv, Url: tt.url, MaxBytes: tt.max})
		if status.Code(err) != tt.want || !strings.Contains(status.Convert(err).Message(), tt.words) {
			t.Errorf("%s: %v, want %v naming %q", tt.name, err, tt.want, tt.words)
		}
	}
	// The refusals read the media resource only: no content was fetched.
	for _, s := range rec.take() {
		if s.user == "" || s.host != "mcs.us1.twilio.com" {
			t.Errorf("a refused fetch called %s%s (credentials: %q)", s.host, s.path, s.user)
		}
	}
}
