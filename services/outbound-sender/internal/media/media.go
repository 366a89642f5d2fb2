// Package media downloads a customer's attachment from Twilio for the agent
// console: with the credentials of the connector behind the messaging
// entry that received it, from Twilio's own media URLs only, size-capped
// and type-checked. The agent's browser never sees a Twilio URL or a
// credential; sessions serves the bytes to agents who may open the chat.
package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
)

// MaxBytes is the largest attachment fetched: WhatsApp's 16 MB (MMS
// carries at most 5 MB).
const MaxBytes = 16 << 20

// Errors the API maps to gRPC codes.
var (
	ErrBadURL   = errors.New("not a Twilio media URL")
	ErrNoEntry  = errors.New("no such messaging entry")
	ErrNotFound = errors.New("media not found at Twilio")
	ErrTooLarge = errors.New("media larger than allowed")
	ErrType     = errors.New("media type not allowed")
)

// Credentials answers which Twilio account received for a messaging entry.
type Credentials interface {
	SendingCredentials(ctx context.Context, tenant, entryID string) (*configv1.GetSendingCredentialsResponse, error)
}

// Fetcher downloads attachments.
type Fetcher struct {
	creds  Credentials
	client *http.Client
	// emulated: every request goes to the emulator (base), which links
	// Conversations media content over plain http.
	emulated bool
}

// New returns a fetcher whose calls go through rt (nil: a new Twilio
// transport), to base instead of Twilio when base is set (the emulator).
func New(creds Credentials, rt http.RoundTripper, base *url.URL, timeout time.Duration) *Fetcher {
	if rt == nil {
		rt = twilioclient.NewTransport()
	}
	if base != nil {
		rt = twilioclient.Rewrite{Target: base, Base: rt}
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &Fetcher{creds: creds, emulated: base != nil, client: &http.Client{
		Transport: rt, Timeout: timeout,
		// Twilio answers a media URL with a redirect to its CDN: the
		// credentials go only to the host they were sent to, never to
		// where a redirect leads (the client's own rule would keep them
		// for a subdomain).
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
				req.Header.Del("Authorization")
			}
			return nil
		},
	}}
}

// CheckURL reports whether raw is one of Twilio's media URLs of account:
// https on a twilio.com host, a Programmable Messaging message's media
// (/2010-04-01/Accounts/<account>/Messages/<sid>/Media/<sid>) or a
// Conversations media resource (/v1/Services/<sid>/Media/<sid>).
func CheckURL(raw, account string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: %q must be an https URL without credentials or query", ErrBadURL, raw)
	}
	host := strings.ToLower(u.Hostname())
	if host != "twilio.com" && !strings.HasSuffix(host, ".twilio.com") || u.Port() != "" {
		return nil, fmt.Errorf("%w: %q is not on a twilio.com host", ErrBadURL, raw)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	switch {
	case len(parts) == 7 && parts[0] == "2010-04-01" && parts[1] == "Accounts" && parts[3] == "Messages" && parts[5] == "Media":
		if parts[2] != account {
			return nil, fmt.Errorf("%w: %q belongs to another Twilio account than the entry's", ErrBadURL, raw)
		}
	case mcsPath(parts):
	default:
		return nil, fmt.Errorf("%w: %q is not a message's media or a Conversations media resource", ErrBadURL, raw)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return nil, fmt.Errorf("%w: %q has an empty or relative path segment", ErrBadURL, raw)
		}
	}
	return u, nil
}

// mcsPath: a Conversations media resource of the Media Content Service,
// /v1/Services/<IS…>/Media/<ME…>.
func mcsPath(parts []string) bool {
	return len(parts) == 5 && parts[0] == "v1" && parts[1] == "Services" && parts[3] == "Media" &&
		strings.HasPrefix(parts[2], "IS") && strings.HasPrefix(parts[4], "ME")
}

// Allowed reports whether an agent may be given a file of content type ct:
// pictures, sound, video, documents and contact cards; never markup or
// scripts a browser would run (HTML, SVG, JavaScript).
func Allowed(ct string) bool {
	switch {
	case strings.HasPrefix(ct, "audio/"), strings.HasPrefix(ct, "video/"):
		return true
	}
	switch ct {
	case "image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/heic",
		"application/pdf", "text/plain", "text/csv", "text/vcard", "text/x-vcard", "text/calendar",
		"application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
		"application/vnd.openxmlformats-officedocument.presentationml.presentation",
		"application/zip", "application/octet-stream":
		return true
	}
	return false
}

// Fetch downloads the attachment at raw for the entry's connector: at most
// max bytes (0 or more than MaxBytes: MaxBytes). It returns the content
// type (without parameters) and the bytes.
func (f *Fetcher) Fetch(ctx context.Context, tenant, entryID, raw string, max int64) (string, []byte, error) {
	if max <= 0 || max > MaxBytes {
		max = MaxBytes
	}
	creds, err := f.creds.SendingCredentials(ctx, tenant, entryID)
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
			return "", nil, fmt.Errorf("%w %q in tenant %q: %s", ErrNoEntry, entryID, tenant, status.Convert(err).Message())
		}
		return "", nil, fmt.Errorf("sending credentials of entry %q: %w", entryID, err)
	}
	u, err := CheckURL(raw, creds.GetAccountSid())
	if err != nil {
		return "", nil, err
	}
	if mcsPath(strings.Split(strings.TrimPrefix(u.Path, "/"), "/")) {
		return f.fetchMCS(ctx, creds, u, max)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	req.SetBasicAuth(creds.GetApiKeySid(), creds.GetApiKeySecret())
	res, err := f.client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("fetch media: %w", err)
	}
	defer res.Body.Close()
	return content(res, max, "")
}

// mcsMedia is the part of a Media Content Service media resource a fetch
// reads.
type mcsMedia struct {
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Links       struct {
		ContentDirectTemporary string `json:"content_direct_temporary"`
	} `json:"links"`
}

// fetchMCS downloads a Conversations media item: GET the media resource
// with the connector's credentials (JSON: its type, size and a temporary
// link to the content), refuse a type or size agents may not have before
// any byte of the file is read, then GET the temporary link without
// credentials (Twilio signs it; it lives on another host). A resource
// without the link has its content fetched at <resource>/Content, with
// the credentials on that host only.
func (f *Fetcher) fetchMCS(ctx context.Context, creds *configv1.GetSendingCredentialsResponse, u *url.URL, max int64) (string, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	req.SetBasicAuth(creds.GetApiKeySid(), creds.GetApiKeySecret())
	req.Header.Set("Accept", "application/json")
	res, err := f.client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("fetch media: %w", err)
	}
	var md mcsMedia
	switch {
	case res.StatusCode == http.StatusNotFound:
		res.Body.Close()
		return "", nil, fmt.Errorf("%w: no media %s", ErrNotFound, u.Path)
	case res.StatusCode != http.StatusOK:
		res.Body.Close()
		return "", nil, fmt.Errorf("fetch media: Twilio answered %s for %s", res.Status, u.Path)
	}
	err = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&md)
	res.Body.Close()
	if err != nil {
		return "", nil, fmt.Errorf("fetch media: Twilio's media resource %s: %w", u.Path, err)
	}
	ct, _, err := mime.ParseMediaType(md.ContentType)
	if err != nil {
		ct = "application/octet-stream"
	}
	ct = strings.ToLower(ct)
	switch {
	case !Allowed(ct):
		return "", nil, fmt.Errorf("%w: %s", ErrType, ct)
	case md.Size > max:
		return "", nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, md.Size, max)
	}
	if md.Links.ContentDirectTemporary == "" {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String()+"/Content", nil)
		if err == nil {
			req.SetBasicAuth(creds.GetApiKeySid(), creds.GetApiKeySecret())
		}
	} else {
		var direct *url.URL
		if direct, err = f.temporaryLink(md.Links.ContentDirectTemporary); err == nil {
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, direct.String(), nil)
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("fetch media: %v", err)
	}
	res, err = f.client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("fetch media content: %w", err)
	}
	defer res.Body.Close()
	return content(res, max, ct)
}

// temporaryLink checks the content link of a media resource: an absolute
// https URL (http too from the emulator) without credentials in it.
func (f *Fetcher) temporaryLink(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || !(u.Scheme == "https" || f.emulated && u.Scheme == "http") {
		return nil, fmt.Errorf("the temporary content link %q Twilio gave is not an https URL", raw)
	}
	return u, nil
}

// content reads a media download: at most max bytes, of a type agents may
// open. known is the type Twilio recorded for the file (a Conversations
// media resource's), which a download answered as generic bytes keeps.
func content(res *http.Response, max int64, known string) (string, []byte, error) {
	switch {
	case res.StatusCode == http.StatusNotFound:
		return "", nil, ErrNotFound
	case res.StatusCode != http.StatusOK:
		return "", nil, fmt.Errorf("fetch media: Twilio answered %s", res.Status)
	case res.ContentLength > max:
		return "", nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, res.ContentLength, max)
	}
	ct, _, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil {
		ct = "application/octet-stream"
	}
	ct = strings.ToLower(ct)
	if known != "" && (ct == "application/octet-stream" || ct == "binary/octet-stream") {
		ct = known
	}
	if !Allowed(ct) {
		return "", nil, fmt.Errorf("%w: %s", ErrType, ct)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, max+1))
	if err != nil {
		return "", nil, fmt.Errorf("fetch media: %w", err)
	}
	if int64(len(data)) > max {
		return "", nil, fmt.Errorf("%w: more than %s bytes", ErrTooLarge, strconv.FormatInt(max, 10))
	}
	return ct, data, nil
}
