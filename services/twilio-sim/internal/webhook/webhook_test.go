package webhook

import (
	"testing"
	"time"
)

func TestCanonicalURL(t *testing.T) {
	tests := []struct {
		raw, want, fragment string
	}{
		{"https://example.com/sms", "https://example.com/sms", ""},
		{"https://example.com/sms?note=It's+here&b=1", "https://example.com/sms?note=It%27s+here&b=1", ""},
		{"https://example.com/sms?b=2&a=1", "https://example.com/sms?b=2&a=1", ""},
		{"https://example.com/sms?q=a%20b", "https://example.com/sms?q=a+b", ""},
		{"https://example.com/sms?flag", "https://example.com/sms?flag", ""},
		{"https://example.com:8443/sms#rc=2&ct=500", "https://example.com:8443/sms", "rc=2&ct=500"},
	}
	for _, tt := range tests {
		got, frag, err := CanonicalURL(tt.raw)
		if err != nil || got != tt.want || frag != tt.fragment {
			t.Errorf("CanonicalURL(%q) = %q, %q, %v; want %q, %q", tt.raw, got, frag, err, tt.want, tt.fragment)
		}
	}
	for _, bad := range []string{"/relative", "ftp://example.com/x", "not a url"} {
		if _, _, err := CanonicalURL(bad); err == nil {
			t.Errorf("CanonicalURL(%q) succeeded, want an error", bad)
		}
	}
}

func TestOverrides(t *testing.T) {
	o := parseOverrides("", 5*time.Second, 1)
	if o.retries != 1 || o.attemptTimeout() != 5*time.Second || !o.retryable(0, errConn) || o.retryable(500, nil) {
		t.Errorf("defaults = %+v, want 1 retry on connection failures only and the given timeout", o)
	}
	o = parseOverrides("ct=1000&rt=2000&rc=3&rp=5xx", 5*time.Second, 1)
	if o.retries != 3 || o.attemptTimeout() != 3*time.Second || !o.retryable(503, nil) || o.retryable(0, errConn) || o.retryable(404, nil) {
		t.Errorf("overrides = %+v, want 3 retries on 5xx only and a 3 s attempt", o)
	}
	o = parseOverrides("tt=700&rc=9&rp=all", 5*time.Second, 1)
	if o.retries != 1 || o.attemptTimeout() != 700*time.Millisecond || !o.retryable(404, nil) {
		t.Errorf("overrides = %+v, want rc out of range ignored, total 700 ms, retry on anything", o)
	}
}

type connErr struct{}

func (connErr) Error() string { return "connection refused" }

var errConn error = connErr{}
