// Package twiliosig computes and checks X-Twilio-Signature, Twilio's webhook
// signature: HMAC-SHA1, keyed with the account's Auth Token, over the URL
// Twilio called followed by the POST parameters sorted by name (each name
// then its value; repeated names contribute each distinct value in sorted
// order). JSON bodies are covered by a bodySHA256 query parameter instead.
package twiliosig

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
)

// Sign returns the signature Twilio sends for a request to fullURL with the
// given form parameters (nil for GET or JSON requests).
func Sign(authToken, fullURL string, params url.Values) string {
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(fullURL))
	m.Write(Canonical(params))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Canonical is the part of the signed string that follows the URL: every
// parameter name followed by its value, names in byte order, and for a
// repeated name each distinct value in sorted order.
func Canonical(params url.Values) []byte {
	if len(params) == 0 {
		return nil
	}
	var stack [48]string
	keys := stack[:0]
	n := 0
	for k, vals := range params {
		keys = append(keys, k)
		for _, v := range vals {
			n += len(k) + len(v)
		}
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	for _, k := range keys {
		vals := params[k]
		if len(vals) > 1 {
			vals = slices.Clone(vals)
			slices.Sort(vals)
			vals = slices.Compact(vals)
		}
		for _, v := range vals {
			b = append(b, k...)
			b = append(b, v...)
		}
	}
	return b
}

// Validate reports whether signature matches fullURL and params under any of
// the tokens (primary and secondary Auth Token during a rotation). The URL
// is tried as given and, when its port is the scheme's default, with the port
// written and omitted, since proxies and Twilio differ there. Each
// comparison is constant time; the search stops at the first match, which
// reveals nothing the answer to the request does not.
func Validate(tokens []string, fullURL string, params url.Values, signature string) bool {
	return ValidateCanonical(tokens, fullURL, Canonical(params), signature)
}

// ValidateCanonical is Validate with the parameters already in their
// Canonical form, for callers that check one request against several URLs.
func ValidateCanonical(tokens []string, fullURL string, canonical []byte, signature string) bool {
	var buf [sha1.Size + 3]byte
	if len(signature) != base64.StdEncoding.EncodedLen(sha1.Size) {
		return false
	}
	n, err := base64.StdEncoding.Decode(buf[:], []byte(signature))
	if err != nil || n != sha1.Size {
		return false
	}
	got := buf[:sha1.Size]
	var sum [sha1.Size]byte
	var variants []string
	for _, tok := range tokens {
		if tok == "" {
			continue
		}
		m := hmac.New(sha1.New, []byte(tok))
		// The URL as given first: it is what Twilio signs unless a proxy
		// or the configuration differ on the default port.
		if variants == nil {
			variants = URLVariants(fullURL)
		}
		for _, u := range variants {
			m.Reset()
			m.Write([]byte(u))
			m.Write(canonical)
			if subtle.ConstantTimeCompare(got, m.Sum(sum[:0])) == 1 {
				return true
			}
		}
	}
	return false
}

// ValidateJSON checks a request with a JSON body: fullURL must carry
// bodySHA256 equal to the SHA-256 of body, and the signature covers the URL
// alone.
func ValidateJSON(tokens []string, fullURL string, body []byte, signature string) bool {
	u, err := url.Parse(fullURL)
	if err != nil {
		return false
	}
	want := u.Query().Get("bodySHA256")
	sum := sha256.Sum256(body)
	if want == "" || !hmac.Equal([]byte(strings.ToLower(want)), []byte(hex.EncodeToString(sum[:]))) {
		return false
	}
	return Validate(tokens, fullURL, nil, signature)
}

// BodySHA256 is the hex SHA-256 Twilio puts in the bodySHA256 parameter.
func BodySHA256(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

var defaultPorts = map[string]string{"https": "443", "http": "80"}

// URLVariants returns fullURL and, for a default port, the same URL with the
// port omitted or written out. Non-default ports are never dropped.
func URLVariants(fullURL string) []string {
	scheme, rest, ok := strings.Cut(fullURL, "://")
	if !ok {
		return []string{fullURL}
	}
	def, known := defaultPorts[strings.ToLower(scheme)]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hostport := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hostport = authority[:i+1], authority[i+1:]
	}
	host, port, colon := hostport, "", false
	if i := strings.LastIndex(hostport, ":"); i >= 0 && !strings.HasSuffix(hostport, "]") {
		host, port, colon = hostport[:i], hostport[i+1:], true
	}
	variants := []string{fullURL}
	// Only a well-formed host (a name, an IPv4 address or a bracketed IPv6
	// one) with an absent or default port has another spelling that Twilio
	// and a proxy could disagree on.
	bracketed := strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") && strings.Count(host, "[") == 1 && strings.Count(host, "]") == 1
	wellFormed := host != "" && !(colon && port == "") && (bracketed || !strings.ContainsAny(host, ":[]"))
	if !known || !wellFormed {
		return variants
	}
	switch port {
	case "":
		variants = append(variants, scheme+"://"+userinfo+host+":"+def+tail)
	case def:
		variants = append(variants, scheme+"://"+userinfo+host+tail)
	}
	return variants
}
