package twilioapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/twilio/twilio-go/client"
)

// Class says what a failed call means for the message.
type Class int

const (
	// Final: Twilio refused the request (4xx other than 429): it was not
	// created and repeating it will not help (21211 invalid To, 21610
	// opted out, 20003 bad credentials, …).
	Final Class = iota + 1
	// RetrySafe: Twilio did not process the request (429/20429 "never
	// processed, always safe to retry"). Retry after a backoff.
	RetrySafe
	// Ambiguous: a 5xx, a timeout or a broken connection. Twilio may or
	// may not have created the message: look it up before retrying.
	Ambiguous
)

func (c Class) String() string {
	switch c {
	case Final:
		return "final"
	case RetrySafe:
		return "retry-safe"
	case Ambiguous:
		return "ambiguous"
	}
	return "unknown"
}

// Error is a failed Twilio call.
type Error struct {
	Class Class
	// HTTPStatus and Code are Twilio's; 0 when no answer came.
	HTTPStatus int
	Code       int
	Message    string
	err        error
}

func (e *Error) Error() string {
	if e.HTTPStatus == 0 {
		return fmt.Sprintf("twilio call (%s): %v", e.Class, e.err)
	}
	return fmt.Sprintf("twilio answered %d, code %d (%s): %s", e.HTTPStatus, e.Code, e.Class, e.Message)
}

func (e *Error) Unwrap() error { return e.err }

// classify turns a twilio-go error into an *Error.
func classify(err error) *Error {
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		e := &Error{HTTPStatus: te.Status, Code: te.Code, Message: te.Message, err: err}
		switch {
		case te.Status == http.StatusTooManyRequests || te.Code == 20429:
			e.Class = RetrySafe
		case te.Status >= 500:
			e.Class = Ambiguous
		default:
			e.Class = Final
		}
		if e.Message == "" {
			e.Message = Meaning(te.Code)
		}
		return e
	}
	var v1 *client.RestErrorV1
	if errors.As(err, &v1) {
		e := &Error{HTTPStatus: v1.HttpStatusCode, Code: v1.Code, Message: v1.Message, Class: Final, err: err}
		switch {
		case v1.HttpStatusCode == http.StatusTooManyRequests:
			e.Class = RetrySafe
		case v1.HttpStatusCode >= 500:
			e.Class = Ambiguous
		}
		return e
	}
	// No answer: connection refused, reset, timeout. The request may have
	// reached Twilio.
	return &Error{Class: Ambiguous, err: err}
}

// meanings of the Twilio error codes a contact center meets most, for the
// agent console and reports (Twilio's status callbacks carry only the code).
var meanings = map[int]string{
	20003: "Authentication failed: the connector's API key is wrong or revoked",
	20404: "The Twilio resource was not found",
	20429: "Too many concurrent requests to Twilio",
	21211: "Invalid 'To' phone number",
	21212: "Invalid 'From' phone number",
	21408: "Permission to send an SMS has not been enabled for the destination region",
	21602: "Message body is required",
	21603: "A 'From' number or Messaging Service is required",
	21606: "The 'From' number is not a valid message-capable Twilio number for this destination",
	21610: "The customer opted out of messages from this sender (replied STOP)",
	21612: "The 'To' number cannot be reached from this sender",
	21614: "The 'To' number is not a mobile number",
	21617: "The message body exceeds 1600 characters",
	21703: "The Messaging Service has no sender for this destination",
	21705: "The Messaging Service SID is invalid",
	30001: "Queue overflow: too many messages queued for this sender",
	30002: "The Twilio account is suspended",
	30003: "Unreachable destination handset (off or out of coverage)",
	30004: "Message blocked (the customer blocked this sender or the carrier refused it)",
	30005: "Unknown destination handset (the number does not exist)",
	30006: "Landline or unreachable carrier",
	30007: "Message filtered by the carrier (spam or content rules)",
	30008: "Unknown delivery error",
	30010: "Message price exceeds the maximum price",
	30034: "Message from an unregistered US A2P 10DLC number",
	50416: "The customer is already in another active conversation with this number",
	63003: "Invalid WhatsApp destination",
	63013: "The WhatsApp message violates a WhatsApp policy",
	63014: "Blocked by the customer on WhatsApp",
	63016: "Outside the WhatsApp 24-hour window: free-form messages need a template",
	63018: "WhatsApp rate limit exceeded for this sender",
	63024: "Invalid WhatsApp message recipient",
	63030: "Media is not supported with this WhatsApp template",
	63032: "The customer's WhatsApp number cannot receive this message",
}

// Meaning explains a Twilio error code; generic for codes not listed.
func Meaning(code int) string {
	if m, ok := meanings[code]; ok {
		return m
	}
	if code == 0 {
		return ""
	}
	return fmt.Sprintf("Twilio error %d (https://www.twilio.com/docs/errors/%d)", code, code)
}

// Describe is what to tell an agent about a Twilio error: the code's
// meaning, with Twilio's own message when it adds something.
func Describe(code int, twilioMessage string) string {
	m, known := meanings[code]
	switch {
	case !known && twilioMessage != "":
		return twilioMessage
	case !known:
		return Meaning(code)
	case twilioMessage == "" || twilioMessage == m:
		return m
	}
	return m + " (Twilio: " + twilioMessage + ")"
}
