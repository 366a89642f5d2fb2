package runner

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// The bot protocol (BOT_PROTOCOL.md): every turn is a JSON POST signed with
// the tenant's secret; the bot answers with replies, parameters and what
// to do next.
const (
	// BotProtocolVersion is the request's "version".
	BotProtocolVersion = 1
	// HeaderBotSignature carries "v1=" and the hex HMAC-SHA256, keyed with
	// the tenant secret, of HeaderBotTimestamp's value, ".", and the body.
	HeaderBotSignature = "X-Switchboard-Signature"
	// HeaderBotTimestamp is the request's time in Unix seconds.
	HeaderBotTimestamp = "X-Switchboard-Timestamp"

	DefaultBotTimeout    = 10 * time.Second
	DefaultBotMaxTurns   = 20
	DefaultBotInactivity = 10 * time.Minute

	// Limits of a bot's response.
	maxBotReplies    = 10
	maxBotChoices    = 9
	maxBotParams     = 50
	maxBotLabel      = 100
	maxBotValue      = 256
	maxBotParamValue = 1024
	maxBotReason     = 256
)

// Reasons of leaving a bot without the bot saying so.
const (
	BotReasonMaxTurns   = "max_turns"
	BotReasonInactivity = "inactivity"
)

// BotState is the conversation with a bot while its activity runs.
type BotState struct {
	Activity string `json:"activity"`
	// Turn counts the requests made (the start is turn 1).
	Turn int `json:"turn"`
	// Messages counts the customer's messages relayed.
	Messages int `json:"messages"`
	// Choices offered by the bot's last reply, if any: the customer's
	// next answer is matched against them.
	Choices []BotChoice `json:"choices,omitempty"`
}

// BotChoice is one entry of a bot's choice list.
type BotChoice struct {
	Label string `json:"label"`
	Value string `json:"value,omitempty"`
}

// BotRequest is what the runner POSTs to the bot each turn.
type BotRequest struct {
	Version    int               `json:"version"`
	Event      string            `json:"event"` // "start" or "message"
	TenantID   string            `json:"tenant_id"`
	SessionID  string            `json:"session_id"`
	ActivityID string            `json:"activity_id"`
	Turn       int               `json:"turn"`
	Channel    string            `json:"channel"`
	Customer   BotCustomer       `json:"customer"`
	Service    BotService        `json:"service"`
	Message    *BotMessage       `json:"message,omitempty"`
	Parameters map[string]string `json:"parameters"`
	SentAt     string            `json:"sent_at"`
}

// BotCustomer is who the bot talks to.
type BotCustomer struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
}

// BotService is the service whose workflow runs the bot.
type BotService struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// BotMessage is the customer's message of a "message" turn.
type BotMessage struct {
	ID   string `json:"id"`
	Text string `json:"text"`
	// Choice is the value of the choice the text picked from the last
	// reply's list ("2", or the choice's label), if it picked one.
	Choice string `json:"choice,omitempty"`
}

// BotResponse is what a bot answers.
type BotResponse struct {
	Replies []BotReply `json:"replies"`
	// Parameters set session parameters (a null value removes one).
	Parameters map[string]*string `json:"parameters"`
	// Action: "continue" (or empty), "handoff" or "end".
	Action string `json:"action"`
	Reason string `json:"reason"`
}

// BotReply is one message to the customer, optionally with choices.
type BotReply struct {
	Text    string      `json:"text"`
	Choices []BotChoice `json:"choices"`
}

// SignBot returns the signature header value of a request body sent at
// timestamp (Unix seconds) with secret.
func SignBot(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyBot checks a signature header against a body, as a bot does.
func VerifyBot(secret, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(SignBot(secret, timestamp, body)), []byte(signature))
}

// enterBot starts the conversation: the "start" turn.
func (r *Runner) enterBot(ctx context.Context, st *State, a *workflowdef.Activity) (result, error) {
	st.Bot = &BotState{Activity: a.ID}
	return r.botTurn(ctx, st, a, nil)
}

// resumeBot relays a customer message, or leaves by end when the customer
// has been silent for the inactivity timeout.
func (r *Runner) resumeBot(ctx context.Context, st *State, a *workflowdef.Activity, ev event) (result, error) {
	w := st.Wait
	if st.Bot == nil || st.Bot.Activity != a.ID {
		st.Bot = &BotState{Activity: a.ID, Turn: 1}
	}
	if ev.timer {
		if ev.due.Before(w.timeout(st)) {
			return result{wait: w}, nil // a timer of an earlier turn
		}
		return r.leaveBot(st, a, "end", BotReasonInactivity), nil
	}
	st.Consumed = append(st.Consumed, ev.input.GetMessageId())
	if len(st.Consumed) > maxConsumed {
		st.Consumed = st.Consumed[len(st.Consumed)-maxConsumed:]
	}
	st.Bot.Messages++
	return r.botTurn(ctx, st, a, ev.input)
}

// leaveBot takes branch with reason.
func (r *Runner) leaveBot(st *State, a *workflowdef.Activity, branch, reason string) result {
	if p := a.StringParam("reason_parameter"); p != "" {
		st.Params[p] = reason
	}
	st.Bot = nil
	return result{outcome: branch}
}

// botTurn makes one request and applies the answer: replies sent,
// parameters stored, then handoff, end, or a wait for the next message.
func (r *Runner) botTurn(ctx context.Context, st *State, a *workflowdef.Activity, in *sessionv1.MessageAdded) (result, error) {
	b := st.Bot
	b.Turn++
	req := BotRequest{
		Version: BotProtocolVersion, Event: "start", TenantID: st.Tenant, SessionID: st.SessionID, ActivityID: a.ID, Turn: b.Turn,
		Service: BotService{ID: st.ServiceID, Name: st.ServiceName}, Parameters: st.Params, SentAt: r.now().UTC().Format(time.RFC3339),
	}
	req.Channel, _ = r.system(st, "channel")
	req.Customer.Address, _ = r.system(st, "customer_address")
	req.Customer.Name = st.started().GetCustomerName()
	if in != nil {
		req.Event = "message"
		req.Message = &BotMessage{ID: in.GetMessageId(), Text: in.GetBody()}
		if len(b.Choices) > 0 {
			labels := make([]string, len(b.Choices))
			for i, c := range b.Choices {
				labels[i] = c.Label
			}
			if l := Choose(labels, in.GetBody()); l != "" {
				for _, c := range b.Choices {
					if c.Label == l {
						req.Message.Choice = c.value()
					}
				}
			}
		}
	}
	secret, err := r.secret(ctx, st.Tenant, a.StringParam("secret"))
	var unset *secretNotSet
	switch {
	case errors.As(err, &unset):
		return r.botFailed(st, a, 0, unset.Error()), nil
	case err != nil:
		return result{}, err // nothing is saved: the event is retried
	}
	res, status, failure := r.callBot(ctx, st, a, req, secret)
	if failure != "" {
		return r.botFailed(st, a, status, failure), nil
	}
	// The answer is valid: apply it.
	for k, v := range res.Parameters {
		if v == nil {
			delete(st.Params, k)
		} else {
			st.Params[k] = *v
		}
	}
	b.Choices = nil
	prefix := "-t" + strconv.Itoa(b.Turn) + "-"
	for i, rep := range res.Replies {
		text := rep.Text
		if len(rep.Choices) > 0 {
			labels := make([]string, len(rep.Choices))
			for j, c := range rep.Choices {
				labels[j] = c.Label
			}
			text = strings.TrimLeft(menu(text, labels), "\n")
			b.Choices = rep.Choices
		}
		if err := r.message(ctx, st, a, prefix+strconv.Itoa(i+1), text); err != nil {
			return result{}, err
		}
	}
	switch res.Action {
	case "handoff":
		return r.leaveBot(st, a, "handoff", res.Reason), nil
	case "end":
		return r.leaveBot(st, a, "end", res.Reason), nil
	}
	if b.Messages >= int(a.IntParam("max_turns", DefaultBotMaxTurns)) {
		return r.leaveBot(st, a, "handoff", BotReasonMaxTurns), nil
	}
	prev := st.Wait
	w, err := r.wait(ctx, st, a, waitInput, a.DurationParam("inactivity_timeout", DefaultBotInactivity))
	if err != nil {
		return result{}, err
	}
	if prev != nil && prev.Activity == a.ID {
		// Messages the customer wrote while the bot was answering are
		// answers too: the wait began with the activity, not the turn.
		w.Since = prev.Since
	}
	return result{wait: w}, nil
}

func (c BotChoice) value() string {
	if c.Value != "" {
		return c.Value
	}
	return c.Label
}

// botFailed leaves by failure and logs why (never a body or the secret).
func (r *Runner) botFailed(st *State, a *workflowdef.Activity, status int, reason string) result {
	r.log.Info("bot failed", "tenant", st.Tenant, "session", st.SessionID, "activity", a.ID, "turn", st.Bot.Turn,
		"status", status, "reason", reason)
	return r.leaveBot(st, a, "failure", reason)
}

// callBot POSTs req signed with secret and validates the answer. It
// returns the reason of a failure ("" on success) and the HTTP status (0
// without a response).
func (r *Runner) callBot(ctx context.Context, st *State, a *workflowdef.Activity, req BotRequest, secret string) (*BotResponse, int, string) {
	timeout := a.DurationParam("timeout", DefaultBotTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u, err := url.Parse(a.StringParam("url"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, 0, "the bot URL is not an absolute https URL"
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, "the request cannot be encoded: " + err.Error()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, 0, "the request cannot be built: " + err.Error()
	}
	ts := strconv.FormatInt(r.now().Unix(), 10)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", "switchboard-workflow-runner")
	hreq.Header.Set(HeaderBotTimestamp, ts)
	hreq.Header.Set(HeaderBotSignature, SignBot(secret, ts, body))
	// The same for a repeated run of this turn (a redelivered event).
	hreq.Header.Set("Idempotency-Key", st.SessionID+"-"+a.ID+visitSuffix(st.Visits[a.ID])+"-"+strconv.Itoa(req.Turn))
	client := r.web.client(st.Tenant, timeout, nil)
	// A signed request is not replayed elsewhere: a redirect is an answer
	// that is not 2xx.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := client.Do(hreq)
	if err != nil {
		switch {
		case errors.Is(err, errRefused):
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, 0, err.Error()
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return nil, 0, fmt.Sprintf("no response within %s", timeout)
		}
		return nil, 0, "request failed: " + scrub(err, u)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, r.web.max+1))
	switch {
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || isTimeout(err)):
		return nil, res.StatusCode, fmt.Sprintf("response body not complete within %s", timeout)
	case err != nil:
		return nil, res.StatusCode, "reading the response: " + scrub(err, u)
	case int64(len(b)) > r.web.max:
		return nil, res.StatusCode, fmt.Sprintf("response body larger than %d bytes, cut off", r.web.max)
	case res.StatusCode < 200 || res.StatusCode > 299:
		return nil, res.StatusCode, "HTTP status " + strconv.Itoa(res.StatusCode)
	}
	out, why := ParseBotResponse(b)
	if why != "" {
		return nil, res.StatusCode, "invalid bot response: " + why
	}
	return out, res.StatusCode, ""
}

var botParamName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]{0,63}$`)

// ParseBotResponse decodes and checks a bot's answer; the reason says
// what is wrong (never quoting a value).
func ParseBotResponse(body []byte) (*BotResponse, string) {
	var res BotResponse
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, "not a JSON object"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&res); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Sprintf("%s must be a JSON %s", te.Field, jsonKind(te.Type.Kind().String()))
		}
		return nil, "not a JSON object"
	}
	if dec.More() {
		return nil, "more than one JSON value"
	}
	switch res.Action {
	case "", "continue", "handoff", "end":
	default:
		return nil, `action must be "continue", "handoff" or "end"`
	}
	if n := utf8.RuneCountInString(res.Reason); n > maxBotReason {
		return nil, fmt.Sprintf("reason is %d characters, at most %d", n, maxBotReason)
	}
	if len(res.Replies) > maxBotReplies {
		return nil, fmt.Sprintf("%d replies, at most %d", len(res.Replies), maxBotReplies)
	}
	for i, rep := range res.Replies {
		field := fmt.Sprintf("replies[%d]", i)
		if strings.TrimSpace(rep.Text) == "" && len(rep.Choices) == 0 {
			return nil, field + ".text must not be empty"
		}
		if n := utf8.RuneCountInString(rep.Text); n > 1600 {
			return nil, fmt.Sprintf("%s.text is %d characters, at most 1600", field, n)
		}
		if len(rep.Choices) > maxBotChoices {
			return nil, fmt.Sprintf("%s has %d choices, at most %d", field, len(rep.Choices), maxBotChoices)
		}
		seen := map[string]bool{}
		for j, c := range rep.Choices {
			cf := fmt.Sprintf("%s.choices[%d]", field, j)
			label := strings.TrimSpace(c.Label)
			switch {
			case label == "" || strings.ContainsAny(label, "\r\n"):
				return nil, cf + ".label must be one non-empty line"
			case utf8.RuneCountInString(label) > maxBotLabel:
				return nil, fmt.Sprintf("%s.label is longer than %d characters", cf, maxBotLabel)
			case utf8.RuneCountInString(c.Value) > maxBotValue:
				return nil, fmt.Sprintf("%s.value is longer than %d characters", cf, maxBotValue)
			case seen[fold(label)]:
				return nil, cf + ".label repeats an earlier choice"
			}
			seen[fold(label)] = true
		}
	}
	if len(res.Parameters) > maxBotParams {
		return nil, fmt.Sprintf("%d parameters, at most %d", len(res.Parameters), maxBotParams)
	}
	for k, v := range res.Parameters {
		if !botParamName.MatchString(k) || strings.HasPrefix(k, workflowdef.SecretPrefix) {
			return nil, fmt.Sprintf("parameters: %q is not a parameter name (letters, digits, '_' and '.', not starting with a digit or \"secret.\")", k)
		}
		if v != nil && utf8.RuneCountInString(*v) > maxBotParamValue {
			return nil, fmt.Sprintf("parameters.%s is longer than %d characters", k, maxBotParamValue)
		}
	}
	return &res, ""
}

func jsonKind(goKind string) string {
	switch goKind {
	case "slice":
		return "list"
	case "struct", "map":
		return "object"
	case "string", "ptr":
		return "string"
	}
	return goKind
}
