package media

import (
	"errors"
	"testing"
)

func TestCheckURL(t *testing.T) {
	const acct = "AC00000000000000000000000000000001"
	good := []string{
		"https://api.twilio.com/2010-04-01/Accounts/" + acct + "/Messages/MM1/Media/ME1",
		"https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/" + acct + "/Messages/MM1/Media/ME1",
		"https://mcs.us1.twilio.com/v1/Services/IS1/Media/ME1",
	}
	for _, u := range good {
		if _, err := CheckURL(u, acct); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	bad := []string{
		"http://api.twilio.com/2010-04-01/Accounts/" + acct + "/Messages/MM1/Media/ME1",                        // not https
		"https://api.twilio.com.evil.example/2010-04-01/Accounts/" + acct + "/Messages/MM1/Media/ME1",          // not twilio.com
		"https://eviltwilio.com/2010-04-01/Accounts/" + acct + "/Messages/MM1/Media/ME1",                       // suffix without a dot
		"https://user:pw@api.twilio.com/2010-04-01/Accounts/" + acct + "/Messages/MM1/Media/ME1",               // credentials in the URL
		"https://api.twilio.com:8443/2010-04-01/Accounts/" + acct + "/Messages/MM1/Media/ME1",                  // a port
		"https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000002/Messages/MM1/Media/ME1", // another account
		"https://api.twilio.com/2010-04-01/Accounts/" + acct + "/Messages.json",                                // not media
		"https://api.twilio.com/2010-04-01/Accounts/" + acct + "/Messages/MM1/Media/ME1?x=1",                   // a query
		"https://api.twilio.com/2010-04-01/Accounts/" + acct + "/Messages/../Media/ME1",                        // relative segment
		"https://mcs.us1.twilio.com/v1/Services/XX1/Media/ME1",                                                 // not a Chat Service
		"https://mcs.us1.twilio.com/v1/Services/IS1/Media/XX1",                                                 // not a media SID
		"https://mcs.us1.twilio.com/v1/Services/IS1/Media/ME1/Content",                                         // not the resource
		"https://example.com/cat.jpg",
		"file:///etc/passwd",
		"",
	}
	for _, u := range bad {
		if _, err := CheckURL(u, acct); !errors.Is(err, ErrBadURL) {
			t.Errorf("%q: %v, want ErrBadURL", u, err)
		}
	}
}

func TestAllowed(t *testing.T) {
	for _, ct := range []string{"image/jpeg", "image/png", "audio/ogg", "video/mp4", "application/pdf", "text/vcard"} {
		if !Allowed(ct) {
			t.Errorf("%s refused", ct)
		}
	}
	for _, ct := range []string{"text/html", "image/svg+xml", "application/javascript", "text/javascript", "application/xhtml+xml", ""} {
		if Allowed(ct) {
			t.Errorf("%s allowed", ct)
		}
	}
}
