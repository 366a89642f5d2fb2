package mediaurl_test

import (
	"strings"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/mediaurl"
)

func TestValid(t *testing.T) {
	tests := []struct {
		url       string
		allowHTTP bool
		want      bool
	}{
		{"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", false, true},
		{"http://127.0.0.1:8089/media/ME1", false, false},
		{"http://127.0.0.1:8089/media/ME1", true, true},
		{"javascript:alert(1)", true, false},
		{"data:text/html,<script>alert(1)</script>", true, false},
		{"/relative/path", true, false},
		{"https://user:pass@example.com/x", false, false},
		{"ftp://example.com/x", true, false},
		{"https://example.com/a b", false, false},
		{"https://example.com/\u00e9", false, false},
		{"", false, false},
		{"https://example.com/" + strings.Repeat("a", mediaurl.MaxLen), false, false},
	}
	for _, tt := range tests {
		if got := mediaurl.Valid(tt.url, tt.allowHTTP); got != tt.want {
			t.Errorf("Valid(%q, allowHTTP=%v) = %v, want %v", tt.url, tt.allowHTTP, got, tt.want)
		}
	}
}
