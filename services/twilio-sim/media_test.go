package twiliosim_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	api "github.com/twilio/twilio-go/rest/api/v2010"

	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

var mediaSIDPattern = regexp.MustCompile(`^ME[0-9a-f]{32}$`)

// A customer's picture reaches the application as a message with media: the
// application lists and fetches the message's Media resources with
// twilio-go and downloads each one from its URI, as it would from Twilio.
func TestMessageMedia(t *testing.T) {
	rc := newReceiver(t)
	cfg := baseConfig(rc)
	cfg.ContractDir = contractDir(t)
	s := startSim(t, cfg)
	ctx := testCtx(t)
	tw := twilioClient(t, s.base, keySID, keySecret)

	files := map[string]struct{ ctype, body string }{
		"/files/cat.jpg":  {"image/jpeg", "\xff\xd8\xff cat"},
		"/files/clip.mp4": {"video/mp4", "\x00\x00\x00\x18ftypmp42 clip"},
	}
	for p, f := range files {
		rc.handle(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", f.ctype)
			_, _ = io.WriteString(w, f.body)
		})
	}
	catURL, clipURL := rc.url("/files/cat.jpg"), rc.url("/files/clip.mp4")
	day := toNoon(ctx, t, s) // the emulator's day; it is now noon

	in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{
		From: customer, To: smsNumber, Body: "my receipt",
		Media: []simclient.Media{{URL: catURL, ContentType: "image/jpeg"}, {URL: clipURL, ContentType: "video/mp4"}},
	})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	msgSID := in.MessageSID
	if !strings.HasPrefix(msgSID, "MM") {
		t.Fatalf("inbound message SID %s, want MM…", msgSID)
	}

	// The webhook carries the URLs the customer's media was sent with.
	hook := rc.waitRequests(t, "/sms", 1)[0]
	if got := hook.Form.Get("MediaUrl0"); got != catURL {
		t.Errorf("MediaUrl0 = %q, want %q", got, catURL)
	}
	if got := hook.Form.Get("MediaUrl1"); got != clipURL {
		t.Errorf("MediaUrl1 = %q, want %q", got, clipURL)
	}

	msg, err := tw.Api.FetchMessage(msgSID, &api.FetchMessageParams{})
	if err != nil {
		t.Fatalf("FetchMessage: %v", err)
	}
	if deref(msg.NumMedia) != "2" {
		t.Errorf("num_media = %q, want 2", deref(msg.NumMedia))
	}

	list, err := tw.Api.ListMedia(msgSID, &api.ListMediaParams{})
	if err != nil {
		t.Fatalf("ListMedia: %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("ListMedia listed %d items, want 2", len(list))
	}
	wantTypes := []string{"image/jpeg", "video/mp4"}
	wantBodies := []string{files["/files/cat.jpg"].body, files["/files/clip.mp4"].body}
	wantURLs := []string{catURL, clipURL}
	var sids []string
	for i, md := range list {
		sid := deref(md.Sid)
		sids = append(sids, sid)
		if !mediaSIDPattern.MatchString(sid) {
			t.Errorf("media %d sid %q, want ME + 32 hex digits", i, sid)
		}
		if deref(md.ParentSid) != msgSID || deref(md.AccountSid) != acctSID || deref(md.ContentType) != wantTypes[i] {
			t.Errorf("media %d parent %s account %s type %s, want %s %s %s", i, deref(md.ParentSid), deref(md.AccountSid), deref(md.ContentType), msgSID, acctSID, wantTypes[i])
		}
		wantURI := fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s/Media/%s.json", acctSID, msgSID, sid)
		if deref(md.Uri) != wantURI {
			t.Errorf("media %d uri %q, want %q", i, deref(md.Uri), wantURI)
		}
		created, err := time.Parse(time.RFC1123Z, deref(md.DateCreated))
		if err != nil || created.Sub(day.Add(12*time.Hour)).Abs() > time.Minute || deref(md.DateUpdated) == "" {
			t.Errorf("media %d date_created %q (%v), date_updated %q", i, deref(md.DateCreated), err, deref(md.DateUpdated))
		}

		got, err := tw.Api.FetchMedia(msgSID, sid, &api.FetchMediaParams{})
		if err != nil {
			t.Fatalf("FetchMedia(%s): %v", sid, err)
		}
		if deref(got.Sid) != sid || deref(got.Uri) != wantURI || deref(got.ContentType) != wantTypes[i] || deref(got.DateCreated) != deref(md.DateCreated) {
			t.Errorf("FetchMedia(%s) = %+v, want the listed item", sid, got)
		}

		// The URI without ".json" is the content: a redirect to the file.
		content := s.base + strings.TrimSuffix(wantURI, ".json")
		resp := getMedia(t, content, acctSID, authToken, true)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != wantBodies[i] || resp.Header.Get("Content-Type") != wantTypes[i] {
			t.Errorf("GET %s: %d %q (%s), want 200 with the file", content, resp.StatusCode, b, resp.Header.Get("Content-Type"))
		}
		resp = getMedia(t, content, keySID, keySecret, false)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != wantURLs[i] {
			t.Errorf("GET %s without following: %d to %q, want 307 to %s", content, resp.StatusCode, resp.Header.Get("Location"), wantURLs[i])
		}
		resp = getMedia(t, content, "", "", false)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d, want 401", content, resp.StatusCode)
		}
		resp = getMedia(t, s.base+"/sim/media/"+sid, "", "", false)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != wantURLs[i] {
			t.Errorf("GET /sim/media/%s: %d to %q, want 307 to %s", sid, resp.StatusCode, resp.Header.Get("Location"), wantURLs[i])
		}
	}

	// Stable SIDs, and pages of one that twilio-go follows.
	lp := &api.ListMediaParams{}
	lp.SetPageSize(1)
	paged, err := tw.Api.ListMedia(msgSID, lp)
	if err != nil {
		t.Fatalf("ListMedia in pages of 1: %v", err)
	}
	var pagedSIDs []string
	for _, md := range paged {
		pagedSIDs = append(pagedSIDs, deref(md.Sid))
	}
	if strings.Join(pagedSIDs, ",") != strings.Join(sids, ",") {
		t.Errorf("pages of 1 list %v, want %v", pagedSIDs, sids)
	}

	// DateCreated filters whole UTC days.
	today := day.Add(15*time.Hour + 4*time.Minute + 5*time.Second)
	for _, tt := range []struct {
		name string
		set  func(*api.ListMediaParams)
		want int
	}{
		{"DateCreated today", func(p *api.ListMediaParams) { p.SetDateCreated(today) }, 2},
		{"DateCreated tomorrow", func(p *api.ListMediaParams) { p.SetDateCreated(today.AddDate(0, 0, 1)) }, 0},
		{"DateCreated> today", func(p *api.ListMediaParams) { p.SetDateCreatedAfter(today) }, 2},
		{"DateCreated> tomorrow", func(p *api.ListMediaParams) { p.SetDateCreatedAfter(today.AddDate(0, 0, 1)) }, 0},
		{"DateCreated< today", func(p *api.ListMediaParams) { p.SetDateCreatedBefore(today) }, 2},
		{"DateCreated< yesterday", func(p *api.ListMediaParams) { p.SetDateCreatedBefore(today.AddDate(0, 0, -1)) }, 0},
	} {
		p := &api.ListMediaParams{}
		tt.set(p)
		got, err := tw.Api.ListMedia(msgSID, p)
		if err != nil || len(got) != tt.want {
			t.Errorf("%s: %d items (%v), want %d", tt.name, len(got), err, tt.want)
		}
	}

	// A message sent with MediaUrl has Media too, typed by the file name.
	cp := &api.CreateMessageParams{}
	cp.SetTo(customer).SetFrom(smsNumber).SetMediaUrl([]string{"https://example.com/invoice.png"})
	sent, err := tw.Api.CreateMessage(cp)
	if err != nil {
		t.Fatalf("CreateMessage with media: %v", err)
	}
	out, err := tw.Api.ListMedia(deref(sent.Sid), &api.ListMediaParams{})
	if err != nil || len(out) != 1 || deref(out[0].ContentType) != "image/png" || deref(out[0].ParentSid) != deref(sent.Sid) {
		t.Fatalf("ListMedia of a sent message = %d items (%v), want one image/png", len(out), err)
	}
	content := s.base + strings.TrimSuffix(deref(out[0].Uri), ".json")
	resp := getMedia(t, content, keySID, keySecret, false)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "https://example.com/invoice.png" {
		t.Errorf("content of a sent message's media: %d to %q, want 307 to the MediaUrl", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A message without media lists none.
	plain, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: smsNumber, Body: "text only"})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	if got, err := tw.Api.ListMedia(plain.MessageSID, &api.ListMediaParams{}); err != nil || len(got) != 0 {
		t.Errorf("ListMedia of a text message = %d items (%v), want none", len(got), err)
	}

	// Unknown messages and media, and another account's, are 404/20404.
	other := "AC" + fmt.Sprintf("%032x", 77)
	otherNumber := "+12025550177"
	if err := s.c.PutAccount(ctx, twiliosim.Account{
		AccountSID: other, AuthToken: "othertoken77",
		Numbers: []twiliosim.PhoneNumber{{Address: otherNumber}},
	}); err != nil {
		t.Fatalf("PutAccount: %v", err)
	}
	theirs, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: otherNumber, Media: []simclient.Media{{URL: catURL, ContentType: "image/jpeg"}}})
	if err != nil {
		t.Fatalf("SendMessage to another account: %v", err)
	}
	unknownMsg, unknownMedia := "MM"+strings.Repeat("f", 32), "ME"+strings.Repeat("f", 32)
	if _, err := tw.Api.ListMedia(unknownMsg, &api.ListMediaParams{}); !isTwilioError(err, 404, 20404) {
		t.Errorf("ListMedia of an unknown message: %v, want 404/20404", err)
	}
	if _, err := tw.Api.ListMedia(theirs.MessageSID, &api.ListMediaParams{}); !isTwilioError(err, 404, 20404) {
		t.Errorf("ListMedia of another account's message: %v, want 404/20404", err)
	}
	if _, err := tw.Api.FetchMedia(msgSID, unknownMedia, &api.FetchMediaParams{}); !isTwilioError(err, 404, 20404) {
		t.Errorf("FetchMedia of an unknown media: %v, want 404/20404", err)
	}
	if _, err := tw.Api.FetchMedia(deref(sent.Sid), sids[0], &api.FetchMediaParams{}); !isTwilioError(err, 404, 20404) {
		t.Errorf("FetchMedia under another message: %v, want 404/20404", err)
	}
	theirMedia, err := twilioClient(t, s.base, other, "othertoken77").Api.ListMedia(theirs.MessageSID, (&api.ListMediaParams{}).SetPathAccountSid(other))
	if err != nil || len(theirMedia) != 1 {
		t.Fatalf("the other account lists its message's media: %d items (%v), want 1", len(theirMedia), err)
	}
	if _, err := tw.Api.FetchMedia(theirs.MessageSID, deref(theirMedia[0].Sid), &api.FetchMediaParams{}); !isTwilioError(err, 404, 20404) {
		t.Errorf("FetchMedia of another account's media: %v, want 404/20404", err)
	}
	resp = getMedia(t, s.base+fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s/Media/%s", acctSID, theirs.MessageSID, deref(theirMedia[0].Sid)), keySID, keySecret, false)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("content of another account's media: %d, want 404", resp.StatusCode)
	}

	ex, err := s.c.ContractRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, e := range ex {
		ops[e.Operation]++
	}
	if ops["ListMedia"] < 3 || ops["FetchMedia"] < 2 {
		t.Errorf("contract mode checked %d ListMedia and %d FetchMedia calls, want them all", ops["ListMedia"], ops["FetchMedia"])
	}
	violations, err := s.c.ContractViolations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Errorf("contract violation: %s %s (%s, %s): %s", v.Method, v.Path, v.Operation, v.Direction, v.Detail)
	}
}

// getMedia GETs a media content URL with Basic credentials (none when user
// is empty), following redirects or not.
func getMedia(t *testing.T, url, user, pass string, follow bool) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp
}
