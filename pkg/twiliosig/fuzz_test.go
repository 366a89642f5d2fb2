package twiliosig

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzValidate feeds arbitrary URLs, form bodies, tokens and signatures to
// the validator: it must never panic, must accept what Sign produced for the
// same URL and parameters (with the port written or not), and must reject
// it under another token or for a changed parameter value.
func FuzzValidate(f *testing.F) {
	f.Add("12345", u, "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
	f.Add("tok", "http://mycompany.com:80/x?a=1", "Body=It%27s+amazing&Body=again", "")
	f.Add("", "https://[::1]:443/p", "a=b&a=b&c", "not base64!")
	f.Add("t", "http://u:p@h/", "%zz=1&x=%", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Fuzz(func(t *testing.T, token, rawURL, form, sig string) {
		params, _ := url.ParseQuery(form)
		_ = Validate([]string{token}, rawURL, params, sig)
		_ = ValidateJSON([]string{token}, rawURL, []byte(form), sig)
		_ = URLVariants(rawURL)
		if token == "" {
			if Validate([]string{token}, rawURL, params, Sign(token, rawURL, params)) {
				t.Fatal("an empty token validated a signature")
			}
			return
		}
		good := Sign(token, rawURL, params)
		for _, v := range URLVariants(rawURL) {
			if !Validate([]string{"other-" + token, token}, v, params, good) {
				t.Fatalf("Sign(%q, %q) rejected for URL variant %q", token, rawURL, v)
			}
		}
		if Validate([]string{token + "x"}, rawURL, params, good) {
			t.Fatalf("signature accepted under another token")
		}
		// Changing one value (not just where it starts) must break it.
		for k, vals := range params {
			changed := url.Values{}
			for k2, v2 := range params {
				changed[k2] = v2
			}
			changed[k] = []string{strings.Join(vals, "") + "\x00changed"}
			if Validate([]string{token}, rawURL, changed, good) {
				t.Fatalf("signature still valid after changing %q", k)
			}
			break
		}
	})
}

// FuzzValidateJSON: a bodySHA256 URL signed over the URL alone accepts
// exactly the body it hashes.
func FuzzValidateJSON(f *testing.F) {
	f.Add("12345", "https://mycompany.com/myapp.php?foo=1", []byte(`{"property": "value"}`))
	f.Add("t", "http://h:80/", []byte("{}"))
	f.Fuzz(func(t *testing.T, token, base string, body []byte) {
		if token == "" || strings.ContainsAny(base, "#") {
			return
		}
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		full := base + sep + "bodySHA256=" + BodySHA256(body)
		if _, err := url.Parse(full); err != nil {
			return
		}
		if q, _ := url.Parse(full); q.Query().Get("bodySHA256") != BodySHA256(body) {
			return // the base URL already had its own bodySHA256
		}
		sig := Sign(token, full, nil)
		if !ValidateJSON([]string{token}, full, body, sig) {
			t.Fatalf("ValidateJSON rejected its own signature for %q", full)
		}
		if ValidateJSON([]string{token}, full, append(append([]byte(nil), body...), ' '), sig) {
			t.Fatal("ValidateJSON accepted a changed body")
		}
	})
}
