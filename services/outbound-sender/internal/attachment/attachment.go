// Package attachment downloads the files an outbound request names by URL
// for a send on the Conversations path, which takes media uploaded to
// Twilio's Media Content Service rather than URLs. The URLs are the
// sessions service's own (PUBLIC_URL/media/<id>, an agent's attachment):
// fetched without credentials, size-capped, and a failure says whether
// fetching again can help.
package attachment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
)

// Twilio's limits on one attachment: WhatsApp 16 MB, MMS 5 MB.
const (
	MaxWhatsApp = 16 << 20
	MaxMMS      = 5 << 20
)

// File is a downloaded attachment.
type File struct {
	ContentType string
	Data        []byte
}

// Error is a failed download. Permanent: fetching again cannot help (the
// file is gone, larger than the channel takes, or the URL is unusable);
// otherwise the server or the network failed and a later try may work.
type Error struct {
	URL       string
	Permanent bool
	Reason    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("attachment %s could not be fetched: %s", e.URL, e.Reason)
}

// IsError reports whether err is a failed download and returns it.
func IsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Fetcher downloads attachments.
type Fetcher struct {
	client *http.Client
}

// New returns a fetcher whose calls go through rt (nil: a new keep-alive
// transport; never the Twilio transport, which is rewritten to the
// emulator in development), each bounded by timeout (0: 30 s).
func New(rt http.RoundTripper, timeout time.Duration) *Fetcher {
	if rt == nil {
		rt = twilioclient.NewTransport()
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &Fetcher{client: &http.Client{
		Transport: rt, Timeout: timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			return nil
		},
	}}
}

// Fetch downloads the file at raw: at most max bytes (0 or more than
// MaxWhatsApp: MaxWhatsApp). Errors are *Error.
func (f *Fetcher) Fetch(ctx context.Context, raw string, max int64) (File, error) {
	if max <= 0 || max > MaxWhatsApp {
		max = MaxWhatsApp
	}
	u, err := url.Parse(raw)
	shown := raw
	if err == nil {
		shown = u.Redacted()
	}
	fail := func(permanent bool, format string, args ...any) (File, error) {
		return File{}, &Error{URL: shown, Permanent: permanent, Reason: fmt.Sprintf(format, args...)}
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fail(true, "not an http(s) URL without credentials")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(true, "%v", err)
	}
	res, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return File{}, ctx.Err()
		}
		return fail(false, "%v", err)
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusGone:
		return fail(true, "%s (the file is no longer there)", res.Status)
	case res.StatusCode == http.StatusRequestTimeout || res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
		return fail(false, "%s", res.Status)
	case res.StatusCode != http.StatusOK:
		return fail(true, "%s", res.Status)
	case res.ContentLength > max:
		return fail(true, "%d bytes, more than the %d the channel takes", res.ContentLength, max)
	}
	ct, _, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil {
		ct = "application/octet-stream"
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, max+1))
	switch {
	case err != nil:
		return fail(false, "reading the file: %v", err)
	case int64(len(data)) > max:
		return fail(true, "more than the %d bytes the channel takes", max)
	case len(data) == 0:
		return fail(true, "the file is empty")
	}
	return File{ContentType: strings.ToLower(ct), Data: data}, nil
}
