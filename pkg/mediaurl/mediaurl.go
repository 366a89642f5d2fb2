// Package mediaurl decides which media URLs Switchboard stores and shows:
// one rule for chat-handler, where URLs enter from Twilio, and for sessions,
// where they are stored and rendered, so a javascript: or data: URL never
// reaches an agent's browser.
package mediaurl

import "net/url"

// MaxLen bounds a media URL.
const MaxLen = 2048

// Valid reports whether raw is an absolute https URL (http too when
// allowHTTP) with a host and no credentials, written in printable ASCII as
// RFC 3986 URLs are.
func Valid(raw string, allowHTTP bool) bool {
	if raw == "" || len(raw) > MaxLen {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return allowHTTP
	}
	return false
}
