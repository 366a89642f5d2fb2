package twilioclient_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
)

// TestHostIsWhereTwilioGoCalls: Host names the host twilio-go calls for
// each region and edge a connector may have, and the rewrite keeps it in
// X-Original-Host.
func TestHostIsWhereTwilioGoCalls(t *testing.T) {
	t.Setenv("TWILIO_REGION", "")
	t.Setenv("TWILIO_EDGE", "")
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get(twilioclient.OriginalHostHeader))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"sid":"AC00000000000000000000000000000000","status":"active"}`))
	}))
	defer srv.Close()
	target, _ := url.Parse(srv.URL)
	for _, c := range []struct{ region, edge, want string }{
		{"us1", "", "api.twilio.com"},
		{"us1", "ashburn", "api.ashburn.us1.twilio.com"},
		{"ie1", "dublin", "api.dublin.ie1.twilio.com"},
		{"au1", "sydney", "api.sydney.au1.twilio.com"},
	} {
		if h := twilioclient.Host("api", c.region, c.edge); h != c.want {
			t.Errorf("Host(api, %s, %s) = %s, want %s", c.region, c.edge, h, c.want)
		}
		creds := twilioclient.Credentials{AccountSID: "AC00000000000000000000000000000000", APIKeySID: "SK00000000000000000000000000000000",
			APIKeySecret: "secret", Region: c.region, Edge: c.edge}
		cl := twilioclient.NewClient(creds, twilioclient.Options{BaseURL: target})
		if _, err := cl.Api.FetchAccount(creds.AccountSID); err != nil {
			t.Fatalf("%s/%s: fetch account: %v", c.region, c.edge, err)
		}
		mu.Lock()
		last := got[len(got)-1]
		mu.Unlock()
		if last != c.want {
			t.Errorf("%s/%s: twilio-go called %s, want %s", c.region, c.edge, last, c.want)
		}
	}
}
