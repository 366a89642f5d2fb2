package twilioapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
)

// File is an attachment to upload to the Media Content Service.
type File struct {
	ContentType string
	Data        []byte
}

// MCSHost is the Media Content Service's host for a connector's region and
// edge: mcs.us1.twilio.com for Twilio's default, else
// mcs.<edge>.<region>.twilio.com (mcs.<region>.twilio.com without an
// edge). twilio-go has no client for it, so the upload is a plain HTTP call
// on the same transport as every other Twilio call (rewritten to the
// emulator in development and tests).
func MCSHost(region, edge string) string {
	if region == "" {
		region = "us1"
	}
	if edge != "" {
		return "mcs." + edge + "." + region + ".twilio.com"
	}
	return "mcs." + region + ".twilio.com"
}

// rawClient is the HTTP client for Twilio calls twilio-go does not make.
func rawClient(o Options) *http.Client {
	rt := o.Transport
	if rt == nil {
		rt = NewTransport()
	}
	if o.BaseURL != nil {
		rt = twilioclient.Rewrite{Target: o.BaseURL, Base: rt}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &http.Client{Transport: rt, Timeout: timeout,
		// An upload is never redirected; following one would resend the
		// credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// maxMCSAnswer bounds the JSON read from an upload's answer.
const maxMCSAnswer = 64 << 10

// UploadMedia uploads f to the Media Content Service of a Conversations
// service (POST /v1/Services/{ChatServiceSid}/Media, the file as the body
// with its Content-Type) and returns the media's SID (ME…), which a
// conversation message names in MediaSid. Errors are *Error: 429 is
// RetrySafe, 5xx and no answer Ambiguous (a repeat at worst leaves an
// unused copy at Twilio), other 4xx Final.
func (a *API) UploadMedia(creds Credentials, chatServiceSID string, f File) (string, error) {
	u := "https://" + MCSHost(creds.Region, creds.Edge) + "/v1/Services/" + url.PathEscape(chatServiceSID) + "/Media"
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(f.Data))
	if err != nil {
		return "", &Error{Class: Final, Message: err.Error(), err: err}
	}
	ct := f.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(creds.APIKeySID, creds.APIKeySecret)
	res, err := a.raw.Do(req)
	if err != nil {
		return "", &Error{Class: Ambiguous, err: fmt.Errorf("upload media: %w", err)}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxMCSAnswer))
	if err != nil {
		return "", &Error{Class: Ambiguous, err: fmt.Errorf("upload media: read answer: %w", err)}
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return "", mcsError(res.StatusCode, body)
	}
	var out struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(body, &out); err != nil || !strings.HasPrefix(out.SID, "ME") {
		return "", &Error{Class: Ambiguous, HTTPStatus: res.StatusCode, Message: fmt.Sprintf("the Media Content Service answered %d without a media SID: %.200s", res.StatusCode, body),
			err: errors.New("no media sid in the answer")}
	}
	return out.SID, nil
}

// mcsError classifies a failed upload as classify does a twilio-go error.
func mcsError(status int, body []byte) *Error {
	var te struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &te)
	e := &Error{HTTPStatus: status, Code: te.Code, Message: te.Message, Class: Final}
	switch {
	case status == http.StatusTooManyRequests || te.Code == 20429:
		e.Class = RetrySafe
	case status >= 500:
		e.Class = Ambiguous
	}
	if e.Message == "" {
		e.Message = Meaning(te.Code)
	}
	if e.Message == "" {
		e.Message = fmt.Sprintf("the Media Content Service answered %d", status)
	}
	e.err = errors.New(e.Message)
	return e
}
