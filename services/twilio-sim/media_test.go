package twiliosim_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	api "github.com/twilio/twilio-go/rest/api/v2010"

	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

var mediaSIDPattern = regexp.MustCompile(`^ME[0-9a-f]{32}$`)

// twilioMediaURL matches Twilio's URL of a media item of a message, as the
// Messaging webhook's MediaUrl{N} carries it.
func twilioMediaURL(account, messageSID string) *regexp.Regexp {
	return regexp.MustCompile(`^https://api\.twilio\.com/2010-04-01/Accounts/` + account + `/Messages/` + messageSID + `/Media/ME[0-9a-f]{32}$`)
}

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

	// The webhook carries Twilio's URLs of the media, checked below against
	// the message's Media list.
	hook := rc.waitRequests(t, "/sms", 1)[0]
	if hook.Form.Get("NumMedia") != "2" || hook.Form.Get("MediaContentType0") != "image/jpeg" || hook.Form.Get("MediaContentType1") != "video/mp4" {
		t.Errorf("webhook NumMedia %q types %q %q, want 2 image/jpeg video/mp4", hook.Form.Get("NumMedia"), hook.Form.Get("MediaContentType0"), hook.Form.Get("MediaContentType1"))
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

		// The webhook's MediaUrl is the URI without ".json" on Twilio's
		// host; an application whose transport sends Twilio's hosts to the
		// emulator downloads the file from it with its credentials.
		hookURL := hook.Form.Get(fmt.Sprintf("MediaUrl%d", i))
		if want := "https://api.twilio.com" + strings.TrimSuffix(wantURI, ".json"); hookURL != want {
			t.Errorf("MediaUrl%d = %q, want %q", i, hookURL, want)
		}
		resp := getTwilioMedia(t, s.base, hookURL, keySID, keySecret)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != wantBodies[i] {
			t.Errorf("GET MediaUrl%d through the emulator: %d %q, want 200 with the file", i, resp.StatusCode, b)
		}

		// The URI without ".json" is the content: a redirect to the file.
		content := s.base + strings.TrimSuffix(wantURI, ".json")
		resp = getMedia(t, content, acctSID, authToken, true)
		b, _ = io.ReadAll(resp.Body)
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

// twilioHostsToSim sends requests for *.twilio.com to the emulator and the
// others (where media redirects to) where they are addressed.
type twilioHostsToSim struct{ sim toSim }

func (t twilioHostsToSim) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Hostname(), ".twilio.com") {
		return t.sim.RoundTrip(r)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// getTwilioMedia GETs a Twilio media URL (https://api.twilio.com/…) as an
// application does whose HTTP transport sends Twilio's hosts to the
// emulator at base: with Basic credentials (none when user is empty),
// following redirects.
func getTwilioMedia(t *testing.T, base, mediaURL, user, pass string) *http.Response {
	t.Helper()
	target, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %q: %v", base, err)
	}
	req, err := http.NewRequest(http.MethodGet, mediaURL, nil)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	c := &http.Client{Transport: twilioHostsToSim{toSim{target}}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", mediaURL, err)
	}
	return resp
}

// A customer can send the file itself: the emulator keeps it, the webhook's
// MediaUrl0 is Twilio's URL of the message's media, and an application
// whose transport sends Twilio's hosts to the emulator downloads exactly
// those bytes from it with the account's credentials.
func TestCustomerMediaData(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	tw := twilioClient(t, s.base, keySID, keySecret)

	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR receipt \xff\xfe")
	in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{
		From: customer, To: smsNumber, Body: "my receipt",
		Media: []simclient.Media{{Data: png, ContentType: "image/png", Filename: "receipt.png"}},
	})
	if err != nil {
		t.Fatalf("SendMessage with data: %v", err)
	}
	hook := rc.waitRequests(t, "/sms", 1)[0]
	checkSignature(t, hook)
	mediaURL := hook.Form.Get("MediaUrl0")
	if !twilioMediaURL(acctSID, in.MessageSID).MatchString(mediaURL) || hook.Form.Get("MediaContentType0") != "image/png" || hook.Form.Get("NumMedia") != "1" {
		t.Fatalf("webhook NumMedia %q MediaUrl0 %q MediaContentType0 %q, want 1, Twilio's media URL, image/png",
			hook.Form.Get("NumMedia"), mediaURL, hook.Form.Get("MediaContentType0"))
	}
	list, err := tw.Api.ListMedia(in.MessageSID, &api.ListMediaParams{})
	if err != nil || len(list) != 1 || deref(list[0].ContentType) != "image/png" ||
		"https://api.twilio.com"+strings.TrimSuffix(deref(list[0].Uri), ".json") != mediaURL {
		t.Fatalf("ListMedia = %d items (%v), want the webhook's image/png", len(list), err)
	}

	for _, cred := range []struct{ name, user, pass string }{
		{"API key", keySID, keySecret},
		{"auth token", acctSID, authToken},
	} {
		resp := getTwilioMedia(t, s.base, mediaURL, cred.user, cred.pass)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != string(png) ||
			resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("Content-Length") != fmt.Sprint(len(png)) {
			t.Errorf("GET MediaUrl0 with the %s: %d %q (type %q, length %q), want 200 with the %d bytes sent as image/png",
				cred.name, resp.StatusCode, b, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Length"), len(png))
		}
	}
	for _, cred := range []struct{ name, user, pass string }{
		{"no credentials", "", ""},
		{"a wrong secret", keySID, "wrongsecret"},
	} {
		resp := getTwilioMedia(t, s.base, mediaURL, cred.user, cred.pass)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET MediaUrl0 with %s: %d, want 401", cred.name, resp.StatusCode)
		}
	}

	// In JSON the file is base64 under "data". WhatsApp takes up to 16 MB.
	big := make([]byte, 6<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	body, _ := json.Marshal(map[string]any{
		"from": waCustomer, "to": waNumber,
		"media": []map[string]any{{"data": base64.StdEncoding.EncodeToString(big), "content_type": "application/pdf", "filename": "scan.pdf"}},
	})
	resp, err := http.Post(s.base+"/sim/customers/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /sim/customers/messages: %v", err)
	}
	var waRes simclient.CustomerMessageResult
	err = json.NewDecoder(resp.Body).Decode(&waRes)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("POST /sim/customers/messages with 6 MB of WhatsApp data: %d (%v), want 200", resp.StatusCode, err)
	}
	wa := rc.waitRequests(t, "/wa", 1)[0].Form
	if !twilioMediaURL(acctSID, waRes.MessageSID).MatchString(wa.Get("MediaUrl0")) || wa.Get("MessageType") != "document" {
		t.Errorf("WhatsApp webhook MediaUrl0 %q MessageType %q, want Twilio's media URL, document", wa.Get("MediaUrl0"), wa.Get("MessageType"))
	}
	resp = getTwilioMedia(t, s.base, wa.Get("MediaUrl0"), keySID, keySecret)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, big) || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Errorf("GET the WhatsApp MediaUrl0: %d, %d bytes (%s), want the %d bytes sent", resp.StatusCode, len(b), resp.Header.Get("Content-Type"), len(big))
	}

	// On the Conversations path the file is the Media Content Service's.
	conv, err := s.c.SendMessage(ctx, simclient.CustomerMessage{
		From: customer, To: convNumber,
		Media: []simclient.Media{{Data: png, ContentType: "image/png", Filename: "receipt.png"}},
	})
	if err != nil {
		t.Fatalf("SendMessage with data to a conversation: %v", err)
	}
	var added url.Values
	for _, r := range rc.requests("/conv") {
		if r.Form.Get("MessageSid") == conv.MessageSID {
			added = r.Form
		}
	}
	var items []struct {
		Sid, ContentType, Filename string
		Size                       int
	}
	if err := json.Unmarshal([]byte(added.Get("Media")), &items); err != nil || len(items) != 1 ||
		items[0].ContentType != "image/png" || items[0].Filename != "receipt.png" || items[0].Size != len(png) {
		t.Fatalf("onMessageAdded Media = %q (%v), want one image/png receipt.png of %d bytes", added.Get("Media"), err, len(png))
	}
	content := s.base + "/v1/Services/" + convSvc + "/Media/" + items[0].Sid + "/Content"
	resp = getMedia(t, content, keySID, keySecret, false)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, png) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("GET %s: %d %q (%s), want 200 with the bytes sent", content, resp.StatusCode, b, resp.Header.Get("Content-Type"))
	}

	// A regional account's media URL is on its region's host, where its
	// credentials work.
	regional, regionalNumber := "AC"+fmt.Sprintf("%032x", 78), "+12025550178"
	if err := s.c.PutAccount(ctx, twiliosim.Account{
		AccountSID: regional, AuthToken: "regionaltoken78", Region: "ie1",
		Numbers: []twiliosim.PhoneNumber{{Address: regionalNumber, SmsURL: rc.url("/sms-ie1")}},
	}); err != nil {
		t.Fatalf("PutAccount: %v", err)
	}
	ie, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: regionalNumber, Media: []simclient.Media{{Data: png, ContentType: "image/png"}}})
	if err != nil {
		t.Fatalf("SendMessage to a regional account: %v", err)
	}
	ieURL := rc.waitRequests(t, "/sms-ie1", 1)[0].Form.Get("MediaUrl0")
	if want := "https://api.ie1.twilio.com/2010-04-01/Accounts/" + regional + "/Messages/" + ie.MessageSID + "/Media/ME"; !strings.HasPrefix(ieURL, want) {
		t.Errorf("regional MediaUrl0 = %q, want %s…", ieURL, want)
	}
	resp = getTwilioMedia(t, s.base, ieURL, regional, "regionaltoken78")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, png) {
		t.Errorf("GET the regional MediaUrl0: %d %q, want 200 with the bytes sent", resp.StatusCode, b)
	}

	// Data is checked like the rest of the message.
	for _, tt := range []struct {
		name  string
		to    string
		media []simclient.Media
		want  string
	}{
		{"data without content type", smsNumber, []simclient.Media{{Data: png}}, "media[0].content_type is required with data"},
		{"over 5 MB on SMS", smsNumber, []simclient.Media{{URL: "https://example.com/a.png"}, {Data: make([]byte, 5<<20+1), ContentType: "image/png"}}, "media[1].data is 5242881 bytes, over the 5 MB for SMS/MMS limit"},
		{"over 16 MB on WhatsApp", waNumber, []simclient.Media{{Data: make([]byte, 16<<20+1), ContentType: "video/mp4"}}, "media[0].data is 16777217 bytes, over the 16 MB for WhatsApp limit"},
		{"size not the data's", smsNumber, []simclient.Media{{Data: png, ContentType: "image/png", Size: 3}}, "media[0].size 3 does not match"},
		{"neither url nor data", smsNumber, []simclient.Media{{ContentType: "image/png"}}, "media[0] needs a url or data"},
	} {
		from := customer
		if strings.HasPrefix(tt.to, "whatsapp:") {
			from = waCustomer
		}
		_, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: from, To: tt.to, Media: tt.media})
		var se *simclient.Error
		if !asSimError(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, tt.want) {
			t.Errorf("%s: SendMessage error = %v, want a 400 saying %q", tt.name, err, tt.want)
		}
	}
}
