package twiliosim_test

import (
	"fmt"
	"net/http"
	"testing"

	content "github.com/twilio/twilio-go/rest/content/v1"

	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
)

// The Content API lists the account's templates in pages that twilio-go
// follows, checked against Twilio's document in strict contract mode; other
// accounts' templates are not listed; wrong credentials and bad paging
// parameters answer Twilio's errors.
func TestContentList(t *testing.T) {
	rc := newReceiver(t)
	var want []string
	s, _, ctx := startStrict(t, rc, func(a *twiliosim.Account) {
		for i := range 5 {
			sid := fmt.Sprintf("HX%032x", i+1)
			want = append(want, sid)
			a.ContentTemplates = append(a.ContentTemplates, twiliosim.ContentTemplate{
				SID: sid, FriendlyName: fmt.Sprintf("template %d", i), Language: "en",
				Variables: map[string]string{"1": "Customer_Name"},
				Types: map[string]any{
					"twilio/text":        map[string]any{"body": "Hello {{1}}"},
					"twilio/quick-reply": map[string]any{"body": "Hello {{1}}", "actions": []any{map[string]any{"title": "Yes", "id": "yes"}}},
				},
			})
		}
	})
	tw := twilioClient(t, s.base, keySID, keySecret)
	p := &content.ListContentParams{}
	p.SetPageSize(2)
	got, err := tw.ContentV1.ListContent(p)
	if err != nil {
		t.Fatalf("ListContent: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d templates over pages of 2, want %d", len(got), len(want))
	}
	for i, c := range got {
		if deref(c.Sid) != want[i] || deref(c.AccountSid) != acctSID || deref(c.Language) != "en" {
			t.Errorf("template %d = %s/%s/%s", i, deref(c.Sid), deref(c.AccountSid), deref(c.Language))
		}
		if c.Types == nil || (*c.Types)["twilio/text"] == nil || c.Variables == nil || (*c.Variables)["1"] != "Customer_Name" {
			t.Errorf("template %d types %v variables %v", i, c.Types, c.Variables)
		}
	}

	// Another account sees only its own (none).
	other := "AC" + fmt.Sprintf("%032x", 99)
	otherKey, otherSecret := "SK"+fmt.Sprintf("%032x", 99), "othersecret99"
	if err := s.c.PutAccount(ctx, twiliosim.Account{AccountSID: other, AuthToken: "othertoken99", APIKeys: map[string]string{otherKey: otherSecret}}); err != nil {
		t.Fatalf("PutAccount: %v", err)
	}
	if list, err := twilioClient(t, s.base, otherKey, otherSecret).ContentV1.ListContent(&content.ListContentParams{}); err != nil || len(list) != 0 {
		t.Errorf("other account lists %d templates (%v), want 0", len(list), err)
	}

	if _, err := twilioClient(t, s.base, keySID, "wrongsecret").ContentV1.ListContent(&content.ListContentParams{}); !isTwilioError(err, 401, 20003) {
		t.Errorf("wrong secret: %v, want 401/20003", err)
	}
	ex, err := s.c.ContractRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := 0
	for _, e := range ex {
		if e.Operation == "ListContent" && e.OriginalHost == "content.twilio.com" {
			listed++
		}
	}
	if listed < 3 {
		t.Errorf("contract mode checked %d ListContent calls to content.twilio.com, want at least 3 (pages of 2)", listed)
	}
	violations, err := s.c.ContractViolations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Errorf("contract violation: %s %s (%s, %s): %s", v.Method, v.Path, v.Operation, v.Direction, v.Detail)
	}
	for _, q := range []string{"PageSize=0", "PageSize=1001", "PageToken=nope", "Page=-1"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/Content?"+q, nil)
		req.SetBasicAuth(keySID, keySecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Code int `json:"code"`
		}
		decodeBody(t, resp, 400, &e)
		if e.Code != 20001 {
			t.Errorf("%s: code %d, want 20001", q, e.Code)
		}
	}
}
