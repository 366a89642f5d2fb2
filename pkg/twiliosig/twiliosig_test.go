package twiliosig

import (
	"net/url"
	"testing"
)

const token = "12345"

var (
	p5 = url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675309"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
	}
	p7 = func() url.Values {
		v := url.Values{}
		for k, vals := range p5 {
			v[k] = vals
		}
		v.Set("ReasonConferenceEnded", "test")
		v.Set("Reason", "Participant")
		return v
	}()
)

const u = "https://mycompany.com/myapp.php?foo=1&bar=2"

// The published vectors (Twilio's own SDK tests plus independently computed
// ones). Every "valid" row must pass Validate, every other row must fail.
func TestVectors(t *testing.T) {
	form4, _ := url.ParseQuery("property=value&boolean=true")
	tests := []struct {
		n      int
		url    string
		params url.Values
		sig    string
		valid  bool
	}{
		{1, u, p7, "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{2, "http://mycompany.com/myapp.php?foo=1&bar=2", p7, "n2xBNyzSW7rfYStDtOFiFMv7qNo=", true},
		{3, u, p7, "95+Bu0JVPi0r/SsESZCVf0dWAjw=", false}, // wrong sort order of Reason/ReasonConferenceEnded
		{4, u, form4, "NBdBDr/T/lgjI+tlgpXjKZQZs/k=", true},
		{7, u, p5, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", true},
		{8, "https://mycompany.com:443/myapp.php?foo=1&bar=2", p5, "kvajT1Ptam85bY51eRf/AJRuM3w=", true},
		{9, "http://mycompany.com:80/myapp.php?foo=1&bar=2", p5, "0ZXoZLH/DfblKGATFgpif+LLRf4=", true},
		{10, "http://mycompany.com:1234/myapp.php?foo=1&bar=2", p5, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", true},
		{11, "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2", p5, "CukzLTc1tT5dXEDIHm/tKBanW10=", true},
		{11, "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2", p5, "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=", true},
		{11, "https://user@mycompany.com/myapp.php?foo=1&bar=2", p5, "2YRLlVAflCqxaNicjMpJcSTgzSs=", true},
		{12, u + "&Body=It%27s+amazing", p5, "TfZzewPq8wqrGlMfyAud8+/IvJ0=", true},
		{12, u + "&Body=It's+amazing", p5, "dsq4Ehbj6cs+KdTkpF5sSSplOWw=", true},
		{12, u + "&Body=It's+amazing", p5, "TfZzewPq8wqrGlMfyAud8+/IvJ0=", false}, // signed over the %27 form
		{13, u, url.Values{"MessagingBinding.Address": {"+1325xxxxxxx", "+1415xxxxxxx"}}, "83O6e2vORAoJHUNzJjDWN1jz+BA=", true},
		{13, u, url.Values{"MessagingBinding.Address": {"+1415xxxxxxx", "+1325xxxxxxx"}}, "83O6e2vORAoJHUNzJjDWN1jz+BA=", true},
		{14, u, url.Values{"Sid": {"CA123"}, "SidAccount": {"AC123"}, "Digits": {"5678", "1234", "1234"}}, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", true},
		// A non-default port may not be dropped: vector 10's URL without its port.
		{10, "http://mycompany.com/myapp.php?foo=1&bar=2", p5, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", false},
		// Default ports both ways: vector 7's signature for the :443 URL, vector 8's for the bare one.
		{7, "https://mycompany.com:443/myapp.php?foo=1&bar=2", p5, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", true},
		{8, u, p5, "kvajT1Ptam85bY51eRf/AJRuM3w=", true},
		// Changed body, missing and malformed signatures.
		{7, u, url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675309"}, "Digits": {"9999"}, "From": {"+14158675309"}, "To": {"+18005551212"}}, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", false},
		{7, u, p5, "", false},
		{7, u, p5, "not base64!", false},
	}
	for _, tt := range tests {
		if got := Validate([]string{token}, tt.url, tt.params, tt.sig); got != tt.valid {
			t.Errorf("vector %d: Validate(%s, %q) = %v, want %v", tt.n, tt.url, tt.sig, got, tt.valid)
		}
	}
	// Sign reproduces the exact signatures too (not just one of the variants).
	if got := Sign(token, u, p7); got != "vOEb5UThFn24KEfnOFLQY2AE5FY=" {
		t.Errorf("Sign(vector 1) = %s", got)
	}
	if got := Sign(token, "http://mycompany.com:1234/myapp.php?foo=1&bar=2", p5); got != "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=" {
		t.Errorf("Sign(vector 10) = %s", got)
	}
}

func TestJSONVectors(t *testing.T) {
	body := []byte(`{"property": "value", "boolean": true}`)
	const sum = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	if got := BodySHA256(body); got != sum {
		t.Fatalf("BodySHA256 = %s, want %s", got, sum)
	}
	tests := []struct {
		n     int
		url   string
		body  []byte
		sig   string
		valid bool
	}{
		{5, u + "&bodySHA256=" + sum, body, "a9nBmqA0ju/hNViExpshrM61xv4=", true},
		{6, "https://mycompany.com/myapp.php?bodySHA256=" + sum, body, "y77kIzt2vzLz71DgmJGsen2scGs=", true},
		{15, "https://mycompany.com:443/myapp.php?foo=1&bar=2&bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", []byte("{}"), "Ldidvp12m26NI7eqEvxnEpkd9Hc=", true},
		{15, "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", []byte("{}"), "rw/jVviOgicj2+kHZULvebnA4ag=", true},
		// Body replaced after signing: the hash no longer matches.
		{5, u + "&bodySHA256=" + sum, []byte(`{"property": "other", "boolean": true}`), "a9nBmqA0ju/hNViExpshrM61xv4=", false},
		// No bodySHA256 parameter at all.
		{5, u, body, "a9nBmqA0ju/hNViExpshrM61xv4=", false},
	}
	for _, tt := range tests {
		if got := ValidateJSON([]string{token}, tt.url, tt.body, tt.sig); got != tt.valid {
			t.Errorf("vector %d: ValidateJSON(%s) = %v, want %v", tt.n, tt.url, got, tt.valid)
		}
	}
}

func TestSecondaryTokenDuringRotation(t *testing.T) {
	sig := Sign("new-token", u, p5)
	if !Validate([]string{"old-token", "new-token"}, u, p5, sig) {
		t.Error("signature with the secondary token rejected")
	}
	if Validate([]string{"old-token"}, u, p5, sig) {
		t.Error("signature with an unknown token accepted")
	}
	if Validate([]string{""}, u, p5, Sign("", u, p5)) {
		t.Error("empty token accepted")
	}
}

func TestURLVariants(t *testing.T) {
	tests := map[string][]string{
		"https://a.example/x?y=1":   {"https://a.example/x?y=1", "https://a.example:443/x?y=1"},
		"http://a.example:80/x":     {"http://a.example:80/x", "http://a.example/x"},
		"http://a.example:8080/x":   {"http://a.example:8080/x"},
		"https://u:p@a.example:443": {"https://u:p@a.example:443", "https://u:p@a.example"},
		"https://[::1]/x":           {"https://[::1]/x", "https://[::1]:443/x"},
		"ftp://a.example/x":         {"ftp://a.example/x"},
	}
	for in, want := range tests {
		got := URLVariants(in)
		if len(got) != len(want) {
			t.Errorf("URLVariants(%q) = %q, want %q", in, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("URLVariants(%q) = %q, want %q", in, got, want)
			}
		}
	}
}

func TestCanonicalMatchesSign(t *testing.T) {
	form, _ := url.ParseQuery("ToCountry=US&ToState=&SmsMessageSid=SM1&NumMedia=0&Body=Why+do+you+say+that%3F+&To=%2B18333595081&From=%2B12533243071")
	want := Sign(token, u, form)
	if !ValidateCanonical([]string{token}, u, Canonical(form), want) {
		t.Error("ValidateCanonical rejected Sign's signature")
	}
	if got := string(Canonical(url.Values{"b": {"2", "1", "2"}, "a": {""}})); got != "ab1b2" {
		t.Errorf("Canonical = %q, want %q", got, "ab1b2")
	}
}

func BenchmarkValidate(b *testing.B) {
	form, _ := url.ParseQuery("ToCountry=US&ToState=&SmsMessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=0&ToCity=&FromZip=98106&SmsSid=SM0123456789abcdef0123456789abcdef&FromState=WA&SmsStatus=received&FromCity=SEATTLE&Body=Why+do+you+say+that%3F+&FromCountry=US&To=%2B18333595081&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&ToZip=&NumSegments=1&MessageSid=SM0123456789abcdef0123456789abcdef&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B12533243071&ApiVersion=2010-04-01")
	const target = "https://switchboard.example.com/api/acs/chat-handler/tenants/demo/messaging/inbound"
	sig := Sign("0123456789abcdef0123456789abcdef", target, form)
	tokens := []string{"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"}
	b.ReportAllocs()
	for b.Loop() {
		if !Validate(tokens, target, form, sig) {
			b.Fatal("rejected")
		}
	}
}
