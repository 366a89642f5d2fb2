package httpserver_test

import (
	"net/http/httptest"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/httpserver"
)

func TestClientIP(t *testing.T) {
	proxies, err := httpserver.ParsePrefixes([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := httpserver.ParsePrefixes([]string{"nope", "10.0.0.0/8", "also bad"}); err == nil {
		t.Error("bad proxies accepted")
	}
	tests := []struct {
		name, peer, xff, want string
	}{
		{"direct client", "203.0.113.7:5000", "", "203.0.113.7"},
		{"direct client lies", "203.0.113.7:5000", "198.51.100.1", "203.0.113.7"},
		{"through the ingress", "10.1.2.3:443", "198.51.100.9", "198.51.100.9"},
		{"through two proxies", "10.1.2.3:443", "198.51.100.9, 192.0.2.1", "198.51.100.9"},
		{"client prepends a fake hop", "10.1.2.3:443", "1.2.3.4, 198.51.100.9", "198.51.100.9"},
		{"only proxies", "10.1.2.3:443", "10.9.9.9", "10.1.2.3"},
		{"malformed hop", "10.1.2.3:443", "garbage", "10.1.2.3"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/api/agent/v1/login", nil)
		r.RemoteAddr = tt.peer
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := httpserver.ClientIP(r, proxies); got != tt.want {
			t.Errorf("%s: ClientIP = %q, want %q", tt.name, got, tt.want)
		}
	}
}
