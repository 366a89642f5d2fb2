package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
)

// Request is a webhook as Twilio sent it, before routing.
type Request struct {
	// Params are the webhook's parameters: the form body of a POST, the
	// query string of a GET, the top-level fields of a JSON body.
	Params url.Values
	// Canonical is the signed part after the URL (POST forms only).
	Canonical []byte
	// JSONBody is set for application/json bodies, which are signed through
	// the bodySHA256 query parameter instead.
	JSONBody []byte
	IsJSON   bool
}

// errTooLarge and errUnsupported are the parse errors that are not a 400.
var (
	errTooLarge    = errors.New("body too large")
	errUnsupported = errors.New("unsupported content type")
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ParseRequest reads a webhook's parameters from a GET query string or a
// POST body (form-encoded or JSON) of at most maxBody bytes. A malformed
// query, form or JSON body is an error; so is a body over maxBody
// (errTooLarge) and any other content type (errUnsupported).
func ParseRequest(method, rawQuery, contentType string, body io.Reader, maxBody int64) (*Request, error) {
	if method == http.MethodGet || method == http.MethodHead {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, fmt.Errorf("parse query string: %w", err)
		}
		return &Request{Params: q}, nil
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 256<<10 {
			bufPool.Put(buf)
		}
	}()
	n, err := buf.ReadFrom(io.LimitReader(body, maxBody+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	if n > maxBody {
		return nil, errTooLarge
	}
	mt := ""
	if contentType != "" {
		mt, _, err = mime.ParseMediaType(contentType)
		if err != nil {
			return nil, fmt.Errorf("%w %q", errUnsupported, contentType)
		}
	}
	switch {
	case mt == "application/x-www-form-urlencoded" || (mt == "" && n == 0):
		p, canonical, err := parseForm(buf.String())
		if err != nil {
			return nil, fmt.Errorf("parse form body: %w", err)
		}
		return &Request{Params: p, Canonical: canonical}, nil
	case mt == "application/json":
		raw := bytes.Clone(buf.Bytes())
		p, err := flattenJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("parse json body: %w", err)
		}
		return &Request{Params: p, JSONBody: raw, IsJSON: true}, nil
	}
	return nil, fmt.Errorf("%w %q", errUnsupported, contentType)
}

type pair struct{ k, v string }

// parseForm is url.ParseQuery (same results, same errors) that also
// returns the parameters in twiliosig.Canonical form, with a fraction of
// the allocations: one map sized up front, one backing array for the
// values, one buffer for the canonical string.
func parseForm(s string) (url.Values, []byte, error) {
	var stack [48]pair
	pairs := stack[:0]
	size := 0
	for s != "" {
		var seg string
		seg, s, _ = strings.Cut(s, "&")
		if seg == "" {
			continue
		}
		if strings.Contains(seg, ";") {
			return nil, nil, errors.New("invalid semicolon separator in query")
		}
		k, v, _ := strings.Cut(seg, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return nil, nil, err
		}
		v, err = url.QueryUnescape(v)
		if err != nil {
			return nil, nil, err
		}
		pairs = append(pairs, pair{k, v})
		size += len(k) + len(v)
	}
	vals := make(url.Values, len(pairs))
	backing := make([]string, len(pairs))
	for i, p := range pairs {
		if cur, ok := vals[p.k]; ok {
			vals[p.k] = append(cur, p.v)
			continue
		}
		backing[i] = p.v
		vals[p.k] = backing[i : i+1 : i+1]
	}
	// Canonical: names in byte order, a repeated name's distinct values
	// sorted. Sorting indexes rather than pairs keeps the sort free of
	// pointer writes.
	var istack [48]int32
	order := istack[:0]
	for i := range pairs {
		order = append(order, int32(i))
	}
	slices.SortFunc(order, func(a, b int32) int {
		pa, pb := &pairs[a], &pairs[b]
		if c := strings.Compare(pa.k, pb.k); c != 0 {
			return c
		}
		return strings.Compare(pa.v, pb.v)
	})
	canonical := make([]byte, 0, size)
	for i, idx := range order {
		p := pairs[idx]
		if i > 0 && p == pairs[order[i-1]] {
			continue
		}
		canonical = append(canonical, p.k...)
		canonical = append(canonical, p.v...)
	}
	return vals, canonical, nil
}

// flattenJSON turns a JSON object's top-level fields into parameters:
// strings as they are, other values as their JSON text.
func flattenJSON(b []byte) (url.Values, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	p := make(url.Values, len(m))
	for k, v := range m {
		var s string
		if len(v) > 0 && v[0] == '"' {
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("field %q: %w", k, err)
			}
		} else if string(v) != "null" {
			s = string(v)
		}
		p.Set(k, s)
	}
	return p, nil
}

// URLBuilder rebuilds the URL Twilio signed.
type URLBuilder struct {
	// PublicBase is scheme://host[:port][/prefix] as configured in Twilio,
	// without a trailing slash; empty rebuilds it from each request.
	PublicBase string
	// Trusted proxies may set X-Forwarded-Proto/-Host/-Port and Forwarded.
	Trusted []netip.Prefix
}

// PublicURL is the URL Twilio called: the public base (or the request's own
// scheme and host, corrected by forwarding headers only when the direct
// peer is a trusted proxy) followed by the path and query exactly as
// received.
func (b URLBuilder) PublicURL(r *http.Request) string {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		uri = r.URL.RequestURI()
	}
	if b.PublicBase != "" {
		return b.PublicBase + uri
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if b.trusted(r.RemoteAddr) {
		scheme, host = forwarded(r.Header, scheme, host)
	}
	return scheme + "://" + host + uri
}

// forwarded applies the forwarding headers a trusted proxy set. When a
// header holds a list, the last element is the one the proxy next to us
// wrote; earlier ones came from further away and are not trusted.
func forwarded(h http.Header, scheme, host string) (string, string) {
	if f := lastElem(h.Values("Forwarded")); f != "" {
		for _, pair := range strings.Split(f, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
			v = strings.Trim(v, `"`)
			switch strings.ToLower(k) {
			case "proto":
				if v == "http" || v == "https" {
					scheme = v
				}
			case "host":
				if v != "" {
					host = v
				}
			}
		}
		return scheme, host
	}
	if p := strings.ToLower(lastElem(h.Values("X-Forwarded-Proto"))); p == "http" || p == "https" {
		scheme = p
	}
	if fh := lastElem(h.Values("X-Forwarded-Host")); fh != "" {
		host = fh
	}
	if port := lastElem(h.Values("X-Forwarded-Port")); port != "" && validPort(port) {
		if hostOnly, _, err := net.SplitHostPort(host); err == nil {
			host = hostOnly
		}
		if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
			host = "[" + host + "]"
		}
		if (scheme == "https" && port != "443") || (scheme == "http" && port != "80") {
			host += ":" + port
		}
	}
	return scheme, host
}

func validPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func lastElem(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	v := vals[len(vals)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

func (b URLBuilder) trusted(remoteAddr string) bool {
	if len(b.Trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range b.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// VerifySignature checks X-Twilio-Signature over publicURL.
func (req *Request) VerifySignature(tokens []string, publicURL, signature string) bool {
	if req.IsJSON {
		return twiliosig.ValidateJSON(tokens, publicURL, req.JSONBody, signature)
	}
	return twiliosig.ValidateCanonical(tokens, publicURL, req.Canonical, signature)
}
