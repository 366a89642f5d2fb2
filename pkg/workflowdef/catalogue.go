package workflowdef

import "time"

// ParamKind is the type of an activity parameter.
type ParamKind int

const (
	// KindString is a single-line string.
	KindString ParamKind = iota + 1
	// KindText is free text sent to the customer (up to 1600 characters,
	// Twilio's limit for one message).
	KindText
	// KindInt is a whole number within [Min, Max].
	KindInt
	// KindDuration is a Go duration string ("30s", "5m") within [MinDuration,
	// MaxDuration].
	KindDuration
	// KindBool is true or false.
	KindBool
	// KindEnum is one of Values.
	KindEnum
	// KindServiceID is the id of a service of the same tenant.
	KindServiceID
	// KindParameterName names a session parameter: [A-Za-z_][A-Za-z0-9_.]*.
	KindParameterName
	// KindURL is an absolute http or https URL.
	KindURL
	// KindStringList is a list of non-empty strings.
	KindStringList
	// KindStringMap is an object of string values.
	KindStringMap
	// KindHeaders is an object of HTTP header names to values.
	KindHeaders
	// KindParameterMap is an object of session parameter names to JSON
	// paths (dot-separated keys; a number indexes a list).
	KindParameterMap
	// KindSecretName names one of the tenant's secrets (config's
	// Tenant.secrets): [a-z][a-z0-9_]{0,62}.
	KindSecretName
	// KindContentSID is a Twilio Content template SID: HX and 32 hex digits.
	KindContentSID
	// KindTemplateVariables is an object of Content template placeholders
	// ([A-Za-z0-9_]{1,64}) to non-empty values.
	KindTemplateVariables
)

func (k ParamKind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindText:
		return "text"
	case KindInt:
		return "integer"
	case KindDuration:
		return "duration"
	case KindBool:
		return "boolean"
	case KindEnum:
		return "enum"
	case KindServiceID:
		return "service id"
	case KindParameterName:
		return "parameter name"
	case KindURL:
		return "URL"
	case KindStringList:
		return "list of strings"
	case KindStringMap:
		return "map of strings"
	case KindHeaders:
		return "map of HTTP headers"
	case KindParameterMap:
		return "map of parameter names to JSON paths"
	case KindSecretName:
		return "secret name"
	case KindContentSID:
		return "content template SID"
	case KindTemplateVariables:
		return "map of template variables"
	}
	return "unknown"
}

// Param describes one parameter of an activity type.
type Param struct {
	Name        string
	Kind        ParamKind
	Required    bool
	Min, Max    int64
	MinDuration time.Duration
	MaxDuration time.Duration
	Values      []string
	// MaxLen bounds strings and lists (0: the kind's default).
	MaxLen int
	// HTTPSOnly: a KindURL must be https and take no ${…} placeholders.
	HTTPSOnly bool
	// Needs names a parameter that must be set when this one is.
	Needs string
	Doc   string
}

// Outcome is a named branch of an activity.
type Outcome struct {
	Name string
	// WhenParam: the branch exists only when this parameter is set (a Queue
	// Task's "timeout" branch needs a timeout).
	WhenParam string
	// Optional: the branch may be left unwired (Queue Task's "queued":
	// wired, the workflow goes on while the task waits).
	Optional bool
	Doc      string
}

// ActivityType is one entry of the catalogue.
type ActivityType struct {
	// Type is the key used in definitions ("queue_task").
	Type string
	// Name is the Nimbus display name ("Queue Task").
	Name string
	// IM reports whether the activity is supported for Instant Messaging.
	IM     bool
	Params []Param
	// AnyParams: parameters are not checked (activities of other
	// modalities, kept so workflows that contain them can be saved and
	// named in errors).
	AnyParams bool
	// Outcomes are the branches; every one that applies must lead to an
	// activity. An activity without outcomes ends the workflow.
	Outcomes []Outcome
	// ChoiceParam: each element of this list parameter is an extra outcome
	// (Input Customer's choices).
	ChoiceParam string
	// Waits: the activity waits for the customer, an agent or a timer, so a
	// loop through it does not spin.
	Waits bool
	Doc   string
}

// Param returns the named parameter.
func (t *ActivityType) Param(name string) (Param, bool) {
	for _, p := range t.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

var next = []Outcome{{Name: OutcomeNext}}

// Outcome names used by several activities.
const (
	OutcomeNext = "next"
)

const maxText = 1600

var catalogue = []ActivityType{
	// Supported for Instant Messaging.
	{Type: "accept", Name: "Accept", IM: true, Outcomes: next,
		Doc: "Accepts the conversation so the customer's messages reach the workflow."},
	{Type: "collect_information", Name: "Collect Information", IM: true, Waits: true,
		Params: []Param{
			{Name: "prompt", Kind: KindText, Required: true, Doc: "Question sent to the customer."},
			{Name: "parameter", Kind: KindParameterName, Required: true, Doc: "Session parameter the answer is saved to."},
			{Name: "type", Kind: KindEnum, Values: []string{"text", "number", "email", "phone", "date", "yes_no"},
				Doc: "What the answer must be (default text): a number, an email address, an E.164 phone number (spaces and dashes allowed), a date (2026-03-01 or 1.3.2026, saved as 2026-03-01) or yes/no (saved as yes or no)."},
			{Name: "pattern", Kind: KindString, Doc: "Regular expression the answer must match (besides its type)."},
			{Name: "retry_prompt", Kind: KindText, Doc: "Sent when the answer does not match."},
			{Name: "max_attempts", Kind: KindInt, Min: 1, Max: 10, Doc: "Answers accepted before giving up (default 3)."},
			{Name: "timeout", Kind: KindDuration, MinDuration: time.Second, MaxDuration: 24 * time.Hour, Doc: "How long to wait for an answer (default 5m)."},
		},
		Outcomes: []Outcome{{Name: OutcomeNext, Doc: "A valid answer was saved."}, {Name: "no_answer", Doc: "No valid answer in time."}},
		Doc:      "Asks the customer a question and saves the answer."},
	{Type: "delay", Name: "Delay", IM: true, Waits: true,
		Params:   []Param{{Name: "duration", Kind: KindDuration, Required: true, MinDuration: time.Second, MaxDuration: 24 * time.Hour}},
		Outcomes: next, Doc: "Waits."},
	{Type: "disconnect", Name: "Disconnect", IM: true,
		Params: []Param{{Name: "text", Kind: KindText, Doc: "Optional goodbye sent before the session ends."}},
		Doc:    "Ends the session."},
	{Type: "input_customer", Name: "Input Customer", IM: true, Waits: true,
		Params: []Param{
			{Name: "prompt", Kind: KindText, Required: true},
			{Name: "choices", Kind: KindStringList, Required: true, MaxLen: 9, Doc: "Answers the customer can give; each is a branch. They are listed under the prompt, numbered; the customer answers with the number or the word (case and accents do not matter)."},
			{Name: "retry_prompt", Kind: KindText, Doc: "Sent (with the choices) when the answer matches none."},
			{Name: "max_attempts", Kind: KindInt, Min: 1, Max: 10, Doc: "Answers accepted before no_match (default 3)."},
			{Name: "parameter", Kind: KindParameterName, Doc: "Session parameter the chosen choice is saved to."},
			{Name: "timeout", Kind: KindDuration, MinDuration: time.Second, MaxDuration: 24 * time.Hour, Doc: "How long to wait for an answer (default 5m)."},
		},
		ChoiceParam: "choices",
		Outcomes:    []Outcome{{Name: "no_match", Doc: "The answer matched no choice (after retries) or none came in time."}},
		Doc:         "Offers the customer a menu; each choice is a branch."},
	{Type: "message", Name: "Message", IM: true,
		Params: []Param{
			{Name: "text", Kind: KindText, Required: true, Doc: "Sent to the customer; may reference ${parameter}. The text for a channel without its own."},
			{Name: "text_sms", Kind: KindText, Doc: "Sent instead of text on SMS."},
			{Name: "text_whatsapp", Kind: KindText, Doc: "Sent instead of text on WhatsApp."},
			{Name: "content_sid", Kind: KindContentSID, Doc: "WhatsApp only: an approved Twilio Content template (HX followed by 32 hex digits), sent instead of the text when the customer's 24-hour window is closed (free text is refused then)."},
			{Name: "content_variables", Kind: KindTemplateVariables, MaxLen: 50, Needs: "content_sid", Doc: "The template's variables: placeholder (\"1\", \"first_name\") → value, which may reference ${parameter}."},
		},
		Outcomes: next, Doc: "Sends a message to the customer: the channel's text, or on WhatsApp outside the 24-hour window the template."},
	{Type: "save_to_parameter", Name: "Save to Parameter", IM: true,
		Params: []Param{
			{Name: "parameter", Kind: KindParameterName, Required: true},
			{Name: "value", Kind: KindString, Required: true, MaxLen: 1024, Doc: "May reference ${parameter}."},
		},
		Outcomes: next, Doc: "Sets a session parameter."},
	{Type: "transfer", Name: "Transfer", IM: true,
		Params: []Param{{Name: "service_id", Kind: KindServiceID, Required: true, Doc: "IM transfers go to a service only."}},
		Doc:    "Hands the session to another service's workflow."},
	{Type: "web_request", Name: "Web Request", IM: true,
		Params: []Param{
			{Name: "url", Kind: KindURL, Required: true, MaxLen: 2048, Doc: "May reference ${parameter}; the values are URL-escaped."},
			{Name: "method", Kind: KindEnum, Values: []string{"GET", "POST", "PUT", "PATCH", "DELETE"}, Doc: "Default GET."},
			{Name: "headers", Kind: KindHeaders, Doc: "Request headers; values may reference ${parameter}, and ${secret.NAME}: the tenant's secret NAME (config's tenant secrets), resolved when the request is made and never logged or stored. Secrets may be referenced in header values only. Host, Content-Length, Transfer-Encoding and Connection cannot be set."},
			{Name: "body", Kind: KindString, MaxLen: 16384, Doc: "May reference ${parameter}; in a body that starts with { or [ the values are escaped as JSON string content. Sent as application/json unless a Content-Type header says otherwise."},
			{Name: "timeout", Kind: KindDuration, MinDuration: 100 * time.Millisecond, MaxDuration: 30 * time.Second, Doc: "For the whole exchange, redirects and body included (default 10s)."},
			{Name: "response_mapping", Kind: KindParameterMap, MaxLen: 20, Doc: "Session parameter → JSON path in the response (data.booking.status, items.0.id): strings as they are, numbers and booleans as JSON text, objects and lists as compact JSON, null as empty; a path that is not there removes the parameter. A response that is not JSON takes the failure branch."},
			{Name: "save_to", Kind: KindParameterName, Doc: "Session parameter the raw response body is saved to."},
			{Name: "status_parameter", Kind: KindParameterName, Doc: "Session parameter the HTTP status code is saved to (0 when there was no response)."},
			{Name: "error_parameter", Kind: KindParameterName, Doc: "Session parameter the reason of a failure is saved to (emptied on success)."},
		},
		Outcomes: []Outcome{{Name: "success", Doc: "2xx response (and, with response_mapping, a JSON body)."}, {Name: "failure", Doc: "Any other response, none in time, a refused address, or a body over 64 KiB."}},
		Doc:      "Calls an HTTP endpoint and maps fields of its JSON response into session parameters."},
	// Bot does not count as a wait: its failure branch is taken at once, so
	// a loop back into it needs a Delay or a question.
	{Type: "bot", Name: "Bot", IM: true,
		Params: []Param{
			{Name: "url", Kind: KindURL, Required: true, MaxLen: 2048, HTTPSOnly: true, Doc: "The bot's endpoint: an https URL without placeholders. Each turn is a signed JSON POST (see services/workflow-runner/BOT_PROTOCOL.md); the Web Request SSRF guard and WEB_REQUEST_ALLOW_HOSTS apply."},
			{Name: "secret", Kind: KindSecretName, Required: true, Doc: "Name of the tenant secret the requests are signed with (HMAC-SHA256); the bot verifies with the same value."},
			{Name: "timeout", Kind: KindDuration, MinDuration: 500 * time.Millisecond, MaxDuration: 30 * time.Second, Doc: "How long one turn's request may take, body included (default 10s); longer takes the failure branch."},
			{Name: "max_turns", Kind: KindInt, Min: 1, Max: 100, Doc: "Customer messages relayed before the bot is left by handoff, reason \"max_turns\" (default 20)."},
			{Name: "inactivity_timeout", Kind: KindDuration, MinDuration: 10 * time.Second, MaxDuration: 24 * time.Hour, Doc: "How long to wait for the customer's next message before leaving by end, reason \"inactivity\" (default 10m)."},
			{Name: "reason_parameter", Kind: KindParameterName, Doc: "Session parameter that receives why the bot was left: the bot's reason for a handoff or end, max_turns, inactivity, or the failure's reason."},
		},
		Outcomes: []Outcome{
			{Name: "handoff", Doc: "The bot handed the conversation over (typically to Queue Task), or max_turns was reached."},
			{Name: "end", Doc: "The bot ended the conversation, or the customer was silent for inactivity_timeout."},
			{Name: "failure", Doc: "The bot did not answer in time, answered with a non-2xx status, invalid JSON or a body over 64 KiB, the address was refused, or the secret is not set."},
		},
		Doc: "Relays the conversation to a bot over HTTPS until it hands off or ends; its replies go to the customer and its parameters into the session."},
	{Type: "availability_routing", Name: "Availability-based Routing", IM: true,
		Params: []Param{{Name: "service_id", Kind: KindServiceID, Doc: "Default: the session's service."}},
		Outcomes: []Outcome{
			{Name: "available", Doc: "An agent can take the task now."},
			{Name: "busy", Doc: "Agents are signed in but all at capacity."},
			{Name: "offline", Doc: "No agent is signed in."},
		},
		Doc: "Branches on the availability of the service's agents."},
	{Type: "check_opening_hours", Name: "Check Opening Hours", IM: true,
		Params:   []Param{{Name: "service_id", Kind: KindServiceID, Doc: "Default: the session's service."}},
		Outcomes: []Outcome{{Name: "open"}, {Name: "closed", Doc: "Outside the opening hours or on a holiday."}},
		Doc:      "Branches on the service's opening hours."},
	{Type: "check_parameter", Name: "Check Parameter", IM: true,
		Params: []Param{
			{Name: "parameter", Kind: KindParameterName, Required: true},
			{Name: "operator", Kind: KindEnum, Required: true, Values: []string{"equals", "not_equals", "contains", "matches", "exists", "empty", "greater_than", "greater_or_equal", "less_than", "less_or_equal"},
				Doc: "equals and not_equals compare numbers as numbers (10 equals 10.0) and other text ignoring case; the ordering operators compare numbers only (a value that is not a number does not match)."},
			{Name: "value", Kind: KindString, MaxLen: 1024},
		},
		Outcomes: []Outcome{{Name: "match"}, {Name: "no_match"}},
		Doc:      "Compares a session parameter."},
	{Type: "get_available_users", Name: "Get Available Users", IM: true,
		Params: []Param{
			{Name: "service_id", Kind: KindServiceID},
			{Name: "parameter", Kind: KindParameterName, Required: true, Doc: "Receives the number of available agents."},
		},
		Outcomes: next, Doc: "Saves how many agents are available."},
	{Type: "get_queue_position", Name: "Get Queue Position", IM: true,
		Params: []Param{
			{Name: "parameter", Kind: KindParameterName, Required: true, Doc: "Receives the task's 1-based place among the service's waiting tasks (0 when it is not waiting: offered, accepted, or never queued)."},
			{Name: "estimated_wait_parameter", Kind: KindParameterName, Doc: "Receives the estimated wait in whole minutes (at least 1), or an empty value when there is no basis yet (no task of the service completed, or no agent available)."},
		},
		Outcomes: next, Doc: "Saves the task's position in the queue and its estimated wait."},
	{Type: "cancel_task", Name: "Cancel Task", IM: true, Outcomes: next,
		Doc: "Takes the session's task out of the queue (nothing happens when it was never queued or is already accepted)."},
	{Type: "check_task", Name: "Check Task", IM: true,
		Outcomes: []Outcome{{Name: "queued", Doc: "The task waits for an agent or is being offered to one."}, {Name: "not_queued", Doc: "No task, or it was canceled, accepted or completed."}},
		Doc:      "Branches on whether the session's task is queued."},
	{Type: "distribution_priority", Name: "Distribution Priority", IM: true,
		Params:   []Param{{Name: "priority", Kind: KindInt, Required: true, Min: 0, Max: 100}},
		Outcomes: next, Doc: "Sets the priority the task is queued with."},
	{Type: "queue_task", Name: "Queue Task", IM: true, Waits: true,
		Params: []Param{
			{Name: "service_id", Kind: KindServiceID, Doc: "Default: the session's service."},
			{Name: "priority", Kind: KindInt, Min: 0, Max: 100},
			{Name: "required_skills", Kind: KindStringList, MaxLen: 10, Doc: "Skills an agent needs to be offered the task."},
			{Name: "timeout", Kind: KindDuration, MinDuration: 10 * time.Second, MaxDuration: 24 * time.Hour},
		},
		Outcomes: []Outcome{
			{Name: "queued", Optional: true, Doc: "Optional: the task is queued and the workflow goes on while it waits (Delay, Get Queue Position, Message, Check Task in a loop); an agent's accept ends it wherever it is."},
			{Name: "timeout", WhenParam: "timeout", Doc: "No agent accepted in time; the task was canceled at distribution."},
		},
		Doc: "Queues the session for an agent; the workflow ends when an agent accepts."},

	// Not supported for Instant Messaging (voice and other modalities).
	{Type: "announcement", Name: "Announcement", AnyParams: true, Outcomes: next},
	{Type: "disconnect_as_handled", Name: "Disconnect as Handled", AnyParams: true},
	{Type: "forward", Name: "Forward", AnyParams: true},
	{Type: "input_customer_advanced", Name: "Input Customer (Advanced)", AnyParams: true, Outcomes: next},
	{Type: "mark_as_handled", Name: "Mark as Handled", AnyParams: true, Outcomes: next},
	{Type: "play_music", Name: "Play Music", AnyParams: true, Outcomes: next},
	{Type: "reply", Name: "Reply", AnyParams: true, Outcomes: next},
	{Type: "standby_duty", Name: "Standby Duty", AnyParams: true},
	{Type: "virtual_user", Name: "Virtual User", AnyParams: true, Outcomes: next},
	{Type: "voice_message", Name: "Voice Message", AnyParams: true, Outcomes: next},
	{Type: "wait_for_parameter", Name: "Wait for Parameter", AnyParams: true, Outcomes: next},
	{Type: "queue", Name: "Queue", AnyParams: true},
}

// Catalogue returns every known activity type, IM-supported ones first.
func Catalogue() []ActivityType {
	out := make([]ActivityType, len(catalogue))
	copy(out, catalogue)
	return out
}

// Lookup returns the activity type named t.
func Lookup(t string) (ActivityType, bool) {
	for _, a := range catalogue {
		if a.Type == t {
			return a, true
		}
	}
	return ActivityType{}, false
}
