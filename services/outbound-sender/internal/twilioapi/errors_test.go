package twilioapi

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"429", &client.TwilioRestError{Status: 429, Code: 20429}, RetrySafe},
		{"500", &client.TwilioRestError{Status: 500, Code: 20500}, Ambiguous},
		{"503", &client.TwilioRestError{Status: 503}, Ambiguous},
		{"400 21211", &client.TwilioRestError{Status: 400, Code: 21211}, Final},
		{"400 21610", &client.TwilioRestError{Status: 400, Code: 21610}, Final},
		{"401 20003", &client.TwilioRestError{Status: 401, Code: 20003}, Final},
		{"connection refused", fmt.Errorf("post: %w", &net.OpError{Op: "dial", Err: errors.New("refused")}), Ambiguous},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got.Class != tt.want {
			t.Errorf("%s: class %v, want %v", tt.name, got.Class, tt.want)
		}
	}
	if e := classify(&client.TwilioRestError{Status: 400, Code: 21610}); e.Message != Meaning(21610) {
		t.Errorf("an error without a message takes the code's meaning, got %q", e.Message)
	}
}

func TestDescribe(t *testing.T) {
	if got := Describe(21610, "Attempt to send to unsubscribed recipient"); !strings.Contains(got, "opted out") || !strings.Contains(got, "unsubscribed") {
		t.Errorf("Describe(21610) = %q", got)
	}
	if got := Describe(63016, ""); got != Meaning(63016) {
		t.Errorf("Describe(63016) = %q", got)
	}
	if got := Describe(99999, "Something new"); got != "Something new" {
		t.Errorf("Describe(unknown) = %q", got)
	}
	if got := Meaning(99999); !strings.Contains(got, "twilio.com/docs/errors/99999") {
		t.Errorf("Meaning(unknown) = %q", got)
	}
}
