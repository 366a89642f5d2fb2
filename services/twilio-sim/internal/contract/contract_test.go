package contract

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oaiDir finds ../shared/twilio-oai next to the repository root.
func oaiDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
	oai := filepath.Join(dir, "..", "shared", "twilio-oai")
	if _, err := os.Stat(filepath.Join(oai, "twilio_api_v2010.json")); err != nil {
		t.Skipf("Twilio OpenAPI documents not found at %s (expected ../shared/twilio-oai next to the repository): %v", oai, err)
	}
	return oai
}

const goodMessage = `{"account_sid":"AC0123456789abcdef0123456789abcdef","api_version":"2010-04-01","body":"hi",
"date_created":"Thu, 24 Aug 2023 05:01:45 +0000","date_sent":null,"date_updated":"Thu, 24 Aug 2023 05:01:45 +0000",
"direction":"outbound-api","error_code":null,"error_message":null,"from":"+12025550100","messaging_service_sid":null,
"num_media":"0","num_segments":"1","price":null,"price_unit":"USD","sid":"SM0123456789abcdef0123456789abcdef",
"status":"queued","subresource_uris":{"media":"/x"},"to":"+15551230001","uri":"/2010-04-01/x.json"}`

func TestResponseChecks(t *testing.T) {
	c, err := Load(oaiDir(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	tests := []struct {
		name   string
		status int
		body   string
		want   string // substring of the single violation; empty for none
	}{
		{"valid message", 201, goodMessage, ""},
		{"numeric counter", 201, strings.Replace(goodMessage, `"num_segments":"1"`, `"num_segments":1`, 1), "num_segments"},
		{"ISO date in the 2010 API", 201, strings.Replace(goodMessage, `"date_created":"Thu, 24 Aug 2023 05:01:45 +0000"`, `"date_created":"2023-08-24T05:01:45Z"`, 1), "RFC 2822"},
		{"unknown status", 201, strings.Replace(goodMessage, `"status":"queued"`, `"status":"pending"`, 1), "status"},
		{"undocumented success status", 200, goodMessage, "not a documented response"},
		{"twilio error", 400, `{"code":21604,"message":"A 'To' phone number is required.","more_info":"https://www.twilio.com/docs/errors/21604","status":400}`, ""},
		{"error without code", 400, `{"message":"bad"}`, "lacks code"},
		{"error with other status", 400, `{"code":1,"message":"m","more_info":"u","status":500}`, "differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Reset()
			h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			req := httptest.NewRequest(http.MethodPost, "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
				strings.NewReader("To=%2B15551230001&From=%2B12025550100&Body=hi"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("AC0123456789abcdef0123456789abcdef", "token")
			h.ServeHTTP(httptest.NewRecorder(), req)
			v := c.Violations()
			if tt.want == "" {
				if len(v) != 0 {
					t.Errorf("violations = %+v, want none", v)
				}
				return
			}
			if len(v) == 0 || !strings.Contains(v[0].Detail, tt.want) {
				t.Errorf("violations = %+v, want one mentioning %q", v, tt.want)
			}
		})
	}
}

func TestRequestChecks(t *testing.T) {
	c, err := Load(oaiDir(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"code":20001,"message":"m","more_info":"u","status":400}`)
	})
	tests := []struct {
		name, path, body, host string
		want                   string
	}{
		{"dotted participant fields", "/v1/Services/IS0123456789abcdef0123456789abcdef/Conversations/CH0123456789abcdef0123456789abcdef/Participants",
			"MessagingBinding.Address=%2B15551230001&MessagingBinding.ProxyAddress=%2B12025550100", "", ""},
		{"unknown dotted field", "/v1/Conversations/CH0123456789abcdef0123456789abcdef/Participants",
			"MessagingBinding.Adress=%2B15551230001", "", "MessagingBinding.Adress"},
		{"bad service sid", "/v1/Services/XX0123/Conversations/CH0123456789abcdef0123456789abcdef/Messages", "Body=hi", "", "ChatServiceSid"},
		{"wrong product host", "/v1/Conversations/CH0123456789abcdef0123456789abcdef/Messages", "Body=hi", "api.twilio.com", "served by conversations.twilio.com"},
		{"regional host", "/v1/Conversations/CH0123456789abcdef0123456789abcdef/Messages", "Body=hi", "conversations.dublin.ie1.twilio.com", ""},
		{"region without edge", "/v1/Conversations/CH0123456789abcdef0123456789abcdef/Messages", "Body=hi", "conversations.ie1.twilio.com", "stopped working"},
		{"not a twilio host", "/v1/Conversations/CH0123456789abcdef0123456789abcdef/Messages", "Body=hi", "conversations.example.com", "not a Twilio host"},
		{"unknown operation", "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Nope.json", "", "", "no operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Reset()
			req := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("SK0123456789abcdef0123456789abcdef", "secret")
			if tt.host != "" {
				req.Header.Set("X-Original-Host", tt.host)
			}
			c.Wrap(ok).ServeHTTP(httptest.NewRecorder(), req)
			v := c.Violations()
			if tt.want == "" {
				if len(v) != 0 {
					t.Errorf("violations = %+v, want none", v)
				}
				return
			}
			found := false
			for _, x := range v {
				found = found || strings.Contains(x.Detail, tt.want)
			}
			if !found {
				t.Errorf("violations = %+v, want one mentioning %q", v, tt.want)
			}
		})
	}
}

func TestMediaContentServiceIsNotChecked(t *testing.T) {
	c, err := Load(oaiDir(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }))
	req := httptest.NewRequest(http.MethodPost, "/v1/Services/IS0123456789abcdef0123456789abcdef/Media", strings.NewReader("binary"))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if v := c.Violations(); len(v) != 0 {
		t.Errorf("violations = %+v, want none for the Media Content Service", v)
	}
}
