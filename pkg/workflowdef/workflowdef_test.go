package workflowdef_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// The catalogue holds exactly the Nimbus IM activity lists (BRIEF.md),
// plus Switchboard's own Bot.
func TestCatalogueMatchesNimbus(t *testing.T) {
	supported := []string{"Accept", "Collect Information", "Delay", "Disconnect", "Input Customer", "Message",
		"Save to Parameter", "Transfer", "Web Request", "Availability-based Routing", "Check Opening Hours",
		"Check Parameter", "Get Available Users", "Get Queue Position", "Cancel Task", "Check Task",
		"Distribution Priority", "Queue Task", "Bot"}
	unsupported := []string{"Announcement", "Disconnect as Handled", "Forward", "Input Customer (Advanced)",
		"Mark as Handled", "Play Music", "Reply", "Standby Duty", "Virtual User", "Voice Message",
		"Wait for Parameter", "Queue"}
	var gotIM, gotOther []string
	for _, a := range workflowdef.Catalogue() {
		if a.IM {
			gotIM = append(gotIM, a.Name)
		} else {
			gotOther = append(gotOther, a.Name)
		}
	}
	slices.Sort(supported)
	slices.Sort(unsupported)
	slices.Sort(gotIM)
	slices.Sort(gotOther)
	if !slices.Equal(gotIM, supported) {
		t.Errorf("IM activities = %v, want %v", gotIM, supported)
	}
	if !slices.Equal(gotOther, unsupported) {
		t.Errorf("non-IM activities = %v, want %v", gotOther, unsupported)
	}
}

func problems(err error) []string {
	var verr *workflowdef.ValidationError
	if !errors.As(err, &verr) {
		return nil
	}
	var out []string
	for _, p := range verr.Problems {
		out = append(out, p.Path)
	}
	return out
}

func TestValidate(t *testing.T) {
	valid := func() *workflowdef.Definition {
		return &workflowdef.Definition{Start: "ask", Activities: []workflowdef.Activity{
			{ID: "ask", Type: "input_customer", Params: map[string]any{"prompt": "1 sales, 2 support", "choices": []any{"1", "2"}, "timeout": "2m"},
				Next: map[string]string{"1": "sales", "2": "hours", "no_match": "ask"}},
			{ID: "hours", Type: "check_opening_hours", Next: map[string]string{"open": "queue", "closed": "bye"}},
			{ID: "queue", Type: "queue_task", Params: map[string]any{"priority": 10, "timeout": "10m"}, Next: map[string]string{"timeout": "bye"}},
			{ID: "sales", Type: "transfer", Params: map[string]any{"service_id": "sales"}},
			{ID: "bye", Type: "disconnect", Params: map[string]any{"text": "Bye"}},
		}}
	}
	if err := workflowdef.Validate(valid()); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*workflowdef.Definition)
		want   string
	}{
		{"no activities", func(d *workflowdef.Definition) { d.Activities = nil; d.Start = "" }, "activities"},
		{"choice branch missing", func(d *workflowdef.Definition) { delete(d.Activities[0].Next, "2") }, "activities[0].next.2"},
		{"timeout branch without timeout", func(d *workflowdef.Definition) { delete(d.Activities[2].Params, "timeout") }, "activities[2].next.timeout"},
		{"timeout branch missing", func(d *workflowdef.Definition) { d.Activities[2].Next = nil }, "activities[2].next.timeout"},
		{"branch on an ending activity", func(d *workflowdef.Definition) { d.Activities[4].Next = map[string]string{"next": "ask"} }, "activities[4].next.next"},
		{"integer out of range", func(d *workflowdef.Definition) { d.Activities[2].Params["priority"] = 1000 }, "activities[2].params.priority"},
		{"fractional integer", func(d *workflowdef.Definition) { d.Activities[2].Params["priority"] = 1.5 }, "activities[2].params.priority"},
		{"duration unparsable", func(d *workflowdef.Definition) { d.Activities[2].Params["timeout"] = "soon" }, "activities[2].params.timeout"},
		{"duration too short", func(d *workflowdef.Definition) { d.Activities[2].Params["timeout"] = "1s" }, "activities[2].params.timeout"},
		{"choices repeat", func(d *workflowdef.Definition) { d.Activities[0].Params["choices"] = []any{"1", "1"} }, "activities[0].params.choices"},
		{"bad id", func(d *workflowdef.Definition) {
			d.Activities[3].ID = "sales team"
			d.Activities[0].Next["1"] = "sales team"
		}, "activities[3].id"},
		{"service id not an id", func(d *workflowdef.Definition) { d.Activities[3].Params["service_id"] = "Sales Team" }, "activities[3].params.service_id"},
		{"loop that never waits", func(d *workflowdef.Definition) {
			d.Activities = append(d.Activities,
				workflowdef.Activity{ID: "a", Type: "message", Params: map[string]any{"text": "x"}, Next: map[string]string{"next": "b"}},
				workflowdef.Activity{ID: "b", Type: "check_parameter", Params: map[string]any{"parameter": "p", "operator": "exists"}, Next: map[string]string{"match": "a", "no_match": "bye"}})
			d.Activities[1].Next["closed"] = "a"
		}, "activities[5]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := valid()
			tc.change(d)
			got := problems(workflowdef.Validate(d))
			if !slices.Contains(got, tc.want) {
				t.Errorf("problems at %v, want one at %s", got, tc.want)
			}
		})
	}
	// A loop through an activity that waits (the menu's no_match) is fine:
	// the valid definition has one.
}

func TestUnsupportedForIM(t *testing.T) {
	d := &workflowdef.Definition{Start: "m", Activities: []workflowdef.Activity{
		{ID: "m", Type: "play_music", Next: map[string]string{"next": "v"}},
		{ID: "v", Type: "voice_message", Next: map[string]string{"next": "q"}},
		{ID: "q", Type: "queue_task"},
	}}
	if err := workflowdef.Validate(d); err != nil {
		t.Fatalf("a voice workflow is still a valid workflow: %v", err)
	}
	got := workflowdef.UnsupportedForIM(d)
	if len(got) != 2 || got[0].String() != `Play Music (activity "m")` || got[1].Name != "Voice Message" {
		t.Errorf("UnsupportedForIM = %v", got)
	}
}

func TestDefaultAndProtoRoundTrip(t *testing.T) {
	for _, greeting := range []string{"", "Hello!"} {
		d := workflowdef.Default(greeting)
		if err := workflowdef.Validate(d); err != nil {
			t.Errorf("Default(%q) is invalid: %v", greeting, err)
		}
		if bad := workflowdef.UnsupportedForIM(d); len(bad) > 0 {
			t.Errorf("Default(%q) uses %v", greeting, bad)
		}
	}
	d := &workflowdef.Definition{Start: "w", Activities: []workflowdef.Activity{
		{ID: "w", Type: "web_request", Label: "CRM", Params: map[string]any{
			"url": "https://crm.example/lookup", "method": "POST", "headers": map[string]any{"X-Key": "k"}, "timeout": "5s",
		}, Next: map[string]string{"success": "q", "failure": "q"}},
		{ID: "q", Type: "queue_task", Params: map[string]any{"priority": 3}},
	}}
	p, err := workflowdef.ToProto(d)
	if err != nil {
		t.Fatal(err)
	}
	back := workflowdef.FromProto(p)
	if err := workflowdef.Validate(back); err != nil {
		t.Fatalf("round-tripped definition is invalid: %v", err)
	}
	w, _ := back.Activity("w")
	if w.StringParam("method") != "POST" || w.DurationParam("timeout", 0) != 5*time.Second || w.StringMapParam("headers")["X-Key"] != "k" || w.Label != "CRM" {
		t.Errorf("round trip lost parameters: %+v", w)
	}
	q, _ := back.Activity("q")
	if q.IntParam("priority", 0) != 3 || q.IntParam("missing", 7) != 7 {
		t.Errorf("priority = %d", q.IntParam("priority", 0))
	}
	if got := strings.Join(w.Outcomes(), ","); got != "success,failure" {
		t.Errorf("web request outcomes = %s", got)
	}
}

// Queue Task's "queued" branch is optional: left out, the workflow ends at
// the Queue Task; wired, it may lead into a loop that waits.
func TestQueueTaskQueuedBranchIsOptional(t *testing.T) {
	act := func(id, typ string, params map[string]any, next map[string]string) workflowdef.Activity {
		return workflowdef.Activity{ID: id, Type: typ, Params: params, Next: next}
	}
	ends := &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{act("q", "queue_task", nil, nil)}}
	if err := workflowdef.Validate(ends); err != nil {
		t.Errorf("Queue Task without branches: %v", err)
	}
	loop := &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
		act("q", "queue_task", map[string]any{"timeout": "10m"}, map[string]string{"queued": "pos", "timeout": "bye"}),
		act("pos", "get_queue_position", map[string]any{"parameter": "position", "estimated_wait_parameter": "minutes"}, map[string]string{"next": "check"}),
		act("check", "check_task", nil, map[string]string{"queued": "wait", "not_queued": "bye"}),
		act("wait", "delay", map[string]any{"duration": "1m"}, map[string]string{"next": "pos"}),
		act("bye", "disconnect", nil, nil),
	}}
	if err := workflowdef.Validate(loop); err != nil {
		t.Errorf("queue loop: %v", err)
	}
	if got := loop.Activities[0].Outcomes(); !slices.Equal(got, []string{"queued", "timeout"}) {
		t.Errorf("Queue Task outcomes = %v, want [queued timeout]", got)
	}
	spin := &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
		act("q", "queue_task", nil, map[string]string{"queued": "check"}),
		act("check", "check_task", nil, map[string]string{"queued": "check", "not_queued": "bye"}),
		act("bye", "disconnect", nil, nil),
	}}
	if err := workflowdef.Validate(spin); err == nil || !strings.Contains(err.Error(), "spin forever") {
		t.Errorf("a queue loop without a Delay: err = %v, want it refused", err)
	}
}

// Web Request's headers and response mapping are checked entry by entry,
// and a loop through a Web Request must wait somewhere.
func TestWebRequestParams(t *testing.T) {
	web := func(params map[string]any) *workflowdef.Definition {
		params["url"] = "https://crm.example/bookings/${ref}"
		return &workflowdef.Definition{Start: "w", Activities: []workflowdef.Activity{
			{ID: "w", Type: "web_request", Params: params, Next: map[string]string{"success": "bye", "failure": "bye"}},
			{ID: "bye", Type: "disconnect"},
		}}
	}
	ok := web(map[string]any{
		"headers":          map[string]any{"Authorization": "Bearer ${token}", "X-Trace": "1"},
		"response_mapping": map[string]any{"booking_status": "data.booking.status", "first": "items.0.id"},
		"status_parameter": "code", "error_parameter": "why", "save_to": "raw", "timeout": "2s",
	})
	if err := workflowdef.Validate(ok); err != nil {
		t.Errorf("valid web request: %v", err)
	}
	bad := map[string]map[string]any{
		"header name":       {"headers": map[string]any{"X Key": "v"}},
		"reserved header":   {"headers": map[string]any{"Host": "internal"}},
		"two-line value":    {"headers": map[string]any{"X-Key": "a\r\nX-Other: b"}},
		"parameter name":    {"response_mapping": map[string]any{"1st": "a"}},
		"JSON path":         {"response_mapping": map[string]any{"status": "data..status"}},
		"mapping not a map": {"response_mapping": "data.status"},
		"timeout too long":  {"timeout": "1m"},
		"unknown parameter": {"secret": "x"},
		"status param name": {"status_parameter": "http code"},
	}
	for name, params := range bad {
		if err := workflowdef.Validate(web(params)); err == nil || !strings.Contains(err.Error(), "activities[0].params.") {
			t.Errorf("%s: err = %v, want it refused at activities[0].params", name, err)
		}
	}
	spin := &workflowdef.Definition{Start: "w", Activities: []workflowdef.Activity{
		{ID: "w", Type: "web_request", Params: map[string]any{"url": "https://crm.example/poll"}, Next: map[string]string{"success": "bye", "failure": "w"}},
		{ID: "bye", Type: "disconnect"},
	}}
	if err := workflowdef.Validate(spin); err == nil || !strings.Contains(err.Error(), "spin forever") {
		t.Errorf("a web request retried without a Delay: err = %v, want it refused", err)
	}
}

// Web Request header values may reference tenant secrets; nothing else may.
func TestSecretReferences(t *testing.T) {
	web := func(params map[string]any) *workflowdef.Definition {
		if _, ok := params["url"]; !ok {
			params["url"] = "https://crm.example/bookings"
		}
		return &workflowdef.Definition{Start: "w", Activities: []workflowdef.Activity{
			{ID: "w", Type: "web_request", Params: params, Next: map[string]string{"success": "bye", "failure": "bye"}},
			{ID: "bye", Type: "disconnect", Params: map[string]any{"text": "Bye"}},
		}}
	}
	ok := web(map[string]any{"headers": map[string]any{"Authorization": "Bearer ${secret.crm_api_token}", "X-Ref": "${ref}"}})
	if err := workflowdef.Validate(ok); err != nil {
		t.Errorf("a secret in a header value: %v", err)
	}
	for name, tc := range map[string]struct {
		def  *workflowdef.Definition
		path string
	}{
		"secret in the URL":  {web(map[string]any{"url": "https://crm.example/?key=${secret.crm_api_token}"}), "activities[0].params.url"},
		"secret in the body": {web(map[string]any{"body": `{"key": "${secret.crm_api_token}"}`}), "activities[0].params.body"},
		"bad secret name":    {web(map[string]any{"headers": map[string]any{"X-Key": "${secret.Bad-Name}"}}), "activities[0].params.headers"},
		"secret in a message": {&workflowdef.Definition{Start: "m", Activities: []workflowdef.Activity{
			{ID: "m", Type: "disconnect", Params: map[string]any{"text": "your key is ${secret.crm_api_token}"}}}}, "activities[0].params.text"},
		"parameter named secret.": {&workflowdef.Definition{Start: "m", Activities: []workflowdef.Activity{
			{ID: "m", Type: "save_to_parameter", Params: map[string]any{"parameter": "secret.crm_api_token", "value": "x"}, Next: map[string]string{"next": "bye"}},
			{ID: "bye", Type: "disconnect"}}}, "activities[0].params.parameter"},
	} {
		got := problems(workflowdef.Validate(tc.def))
		if !slices.Contains(got, tc.path) {
			t.Errorf("%s: problems at %v, want one at %s", name, got, tc.path)
		}
	}
}

// The Bot activity's parameters: an https URL without placeholders, a
// secret name, bounded timeouts and turns; its three branches are required.
// Errors name the activity type and the field.
func TestBotParams(t *testing.T) {
	bot := func(params map[string]any, next map[string]string) *workflowdef.Definition {
		if next == nil {
			next = map[string]string{"handoff": "queue", "end": "bye", "failure": "queue"}
		}
		return &workflowdef.Definition{Start: "bot", Activities: []workflowdef.Activity{
			{ID: "bot", Type: "bot", Params: params, Next: next},
			{ID: "queue", Type: "queue_task"},
			{ID: "bye", Type: "disconnect"},
		}}
	}
	good := func() map[string]any {
		return map[string]any{"url": "https://bot.example/switchboard", "secret": "bot_signing_key", "timeout": "5s",
			"max_turns": 10, "inactivity_timeout": "15m", "reason_parameter": "bot_reason"}
	}
	if err := workflowdef.Validate(bot(good(), nil)); err != nil {
		t.Fatalf("valid bot: %v", err)
	}
	if got := strings.Join(bot(good(), nil).Activities[0].Outcomes(), ","); got != "handoff,end,failure" {
		t.Errorf("bot outcomes = %s", got)
	}
	for _, tc := range []struct {
		name   string
		change func(p map[string]any)
		next   map[string]string
		path   string
		msg    string
	}{
		{"no url", func(p map[string]any) { delete(p, "url") }, nil, "activities[0].params.url", `Bot needs parameter "url"`},
		{"http url", func(p map[string]any) { p["url"] = "http://bot.example/" }, nil, "activities[0].params.url", "not an absolute https URL"},
		{"url placeholder", func(p map[string]any) { p["url"] = "https://bot.example/${ref}" }, nil, "activities[0].params.url", "placeholders"},
		{"url credentials", func(p map[string]any) { p["url"] = "https://u:p@bot.example/" }, nil, "activities[0].params.url", "credentials"},
		{"no secret", func(p map[string]any) { delete(p, "secret") }, nil, "activities[0].params.secret", `Bot needs parameter "secret"`},
		{"secret name", func(p map[string]any) { p["secret"] = "Bot Key" }, nil, "activities[0].params.secret", "not a secret name"},
		{"secret reference as name", func(p map[string]any) { p["secret"] = "${secret.bot_signing_key}" }, nil, "activities[0].params.secret", "Bot:"},
		{"timeout too long", func(p map[string]any) { p["timeout"] = "1m" }, nil, "activities[0].params.timeout", "out of range"},
		{"max_turns zero", func(p map[string]any) { p["max_turns"] = 0 }, nil, "activities[0].params.max_turns", "out of range"},
		{"max_turns text", func(p map[string]any) { p["max_turns"] = "ten" }, nil, "activities[0].params.max_turns", "must be an integer"},
		{"inactivity too short", func(p map[string]any) { p["inactivity_timeout"] = "1s" }, nil, "activities[0].params.inactivity_timeout", "out of range"},
		{"reason parameter name", func(p map[string]any) { p["reason_parameter"] = "bot reason" }, nil, "activities[0].params.reason_parameter", "not a parameter name"},
		{"unknown parameter", func(p map[string]any) { p["headers"] = map[string]any{} }, nil, "activities[0].params.headers", `Bot has no parameter "headers"`},
		{"failure not wired", func(map[string]any) {}, map[string]string{"handoff": "queue", "end": "bye"}, "activities[0].next.failure", `branch "failure" of Bot`},
		{"failure loops back without a wait", func(map[string]any) {}, map[string]string{"handoff": "queue", "end": "bye", "failure": "bot"}, "activities[0]", "spin forever"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.change(p)
			err := workflowdef.Validate(bot(p, tc.next))
			var verr *workflowdef.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			found := false
			for _, pr := range verr.Problems {
				if pr.Path == tc.path && strings.Contains(pr.Message, tc.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("problems %v, want one at %s containing %q", verr.Problems, tc.path, tc.msg)
			}
		})
	}
}

// Message takes a text per channel and a WhatsApp template with its
// variables; a wrong one is refused naming the activity and the field.
func TestMessageChannelsAndTemplate(t *testing.T) {
	message := func(params map[string]any) *workflowdef.Definition {
		if _, ok := params["text"]; !ok {
			params["text"] = "Hello ${customer_name}"
		}
		return &workflowdef.Definition{Start: "m", Activities: []workflowdef.Activity{
			{ID: "m", Type: "message", Params: params, Next: map[string]string{"next": "bye"}},
			{ID: "bye", Type: "disconnect"},
		}}
	}
	ok := message(map[string]any{
		"text_sms": "Hi ${customer_name}, reply STOP to opt out", "text_whatsapp": "Hi ${customer_name} 👋",
		"content_sid":       "HX0123456789abcdef0123456789ABCDEF",
		"content_variables": map[string]any{"1": "${customer_name}", "ticket_ref": "${ref}"},
	})
	if err := workflowdef.Validate(ok); err != nil {
		t.Errorf("valid message: %v", err)
	}
	for _, tc := range []struct {
		name   string
		params map[string]any
		field  string
		want   string
	}{
		{"template SID", map[string]any{"content_sid": "HX123"}, "content_sid", "not a Twilio Content template SID"},
		{"not a template SID", map[string]any{"content_sid": "MG0123456789abcdef0123456789abcdef"}, "content_sid", "HX followed by 32 hex digits"},
		{"variables without template", map[string]any{"content_variables": map[string]any{"1": "x"}}, "content_variables", `needs parameter "content_sid"`},
		{"variable name", map[string]any{"content_sid": "HX0123456789abcdef0123456789abcdef", "content_variables": map[string]any{"first name": "x"}}, "content_variables", "not a template variable name"},
		{"empty variable", map[string]any{"content_sid": "HX0123456789abcdef0123456789abcdef", "content_variables": map[string]any{"1": " "}}, "content_variables", "must not be empty"},
		{"variable not text", map[string]any{"content_sid": "HX0123456789abcdef0123456789abcdef", "content_variables": map[string]any{"1": 2.0}}, "content_variables", "must be a string"},
		{"variables not a map", map[string]any{"content_sid": "HX0123456789abcdef0123456789abcdef", "content_variables": "1=x"}, "content_variables", "must be an object"},
		{"long variable", map[string]any{"content_sid": "HX0123456789abcdef0123456789abcdef", "content_variables": map[string]any{"1": strings.Repeat("x", 1025)}}, "content_variables", "longer than 1024"},
		{"secret in a variable", map[string]any{"content_sid": "HX0123456789abcdef0123456789abcdef", "content_variables": map[string]any{"1": "${secret.api_key}"}}, "content_variables", "only in Web Request header values"},
		{"empty SMS text", map[string]any{"text_sms": "  "}, "text_sms", "must not be empty"},
		{"long WhatsApp text", map[string]any{"text_whatsapp": strings.Repeat("x", 1601)}, "text_whatsapp", "longer than 1600"},
		{"no text", map[string]any{"text": nil, "text_sms": "hi"}, "text", `needs parameter "text"`},
	} {
		err := workflowdef.Validate(message(tc.params))
		if err == nil || !strings.Contains(err.Error(), "activities[0].params."+tc.field+": Message") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want activities[0].params.%s: Message … %s", tc.name, err, tc.field, tc.want)
		}
	}
}
