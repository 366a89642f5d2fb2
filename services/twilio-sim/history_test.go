package twiliosim_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/twilio/twilio-go/rest/api/v2010"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// Reading the REST history after an outage: lists page the way Twilio's do,
// twilio-go follows the pages to the end, every item comes exactly once, and
// the date filters select what Twilio would.

// toNoon moves the emulator's clock to 12:00 UTC of the next day and
// returns that day, so a batch of messages never straddles midnight.
func toNoon(ctx context.Context, t *testing.T, s *sim) time.Time {
	t.Helper()
	c, err := s.c.Clock(ctx)
	if err != nil {
		t.Fatalf("Clock: %v", err)
	}
	y, m, d := c.Now.UTC().Date()
	noon := time.Date(y, m, d+1, 12, 0, 0, 0, time.UTC)
	if _, err := s.c.AdvanceClock(ctx, noon.Sub(c.Now)); err != nil {
		t.Fatalf("AdvanceClock: %v", err)
	}
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// checkOnce reports items of got that are not in want, come more than once,
// or are missing.
func checkOnce(t *testing.T, what string, got, want []string) {
	t.Helper()
	wanted := map[string]bool{}
	for _, s := range want {
		wanted[s] = true
	}
	seen := map[string]int{}
	for _, s := range got {
		seen[s]++
	}
	bad := 0
	for s, n := range seen {
		switch {
		case !wanted[s]:
			bad++
			if bad <= 5 {
				t.Errorf("%s: listed %s, which it should not", what, s)
			}
		case n > 1:
			bad++
			if bad <= 5 {
				t.Errorf("%s: listed %s %d times", what, s, n)
			}
		}
	}
	missing := 0
	for _, s := range want {
		if seen[s] == 0 {
			missing++
		}
	}
	if missing > 0 || bad > 0 || len(got) != len(want) {
		t.Errorf("%s: listed %d, want %d (%d missing, %d wrong)", what, len(got), len(want), missing, bad)
	}
}

func messageSIDs(ms []api.ApiV2010Message) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, deref(m.Sid))
	}
	return out
}

// countOps counts the checked REST calls of an operation.
func countOps(ctx context.Context, t *testing.T, s *sim, op string) int {
	t.Helper()
	ex, err := s.c.ContractRequests(ctx)
	if err != nil {
		t.Fatalf("ContractRequests: %v", err)
	}
	n := 0
	for _, e := range ex {
		if e.Operation == op {
			n++
		}
	}
	return n
}

// checkPages checks that want calls of op were made since there were
// before. A call is recorded just after its answer is sent, so the count is
// awaited.
func checkPages(ctx context.Context, t *testing.T, s *sim, op string, before, want int) {
	t.Helper()
	got := 0
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got = countOps(ctx, t, s, op) - before; got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got != want {
		t.Errorf("twilio-go made %d %s calls, want %d", got, op, want)
	}
}

func noViolations(ctx context.Context, t *testing.T, s *sim) {
	t.Helper()
	violations, err := s.c.ContractViolations(ctx)
	if err != nil {
		t.Fatalf("ContractViolations: %v", err)
	}
	for _, v := range violations {
		t.Errorf("contract violation: %s %s (%s, %s): %s", v.Method, v.Path, v.Operation, v.Direction, v.Detail)
	}
}

func TestListMessagesHistory(t *testing.T) {
	rc := newReceiver(t)
	s, _, ctx := startStrict(t, rc, func(*twiliosim.Account) {})
	tw := twilioClient(t, s.base, keySID, keySecret)

	// Three days of traffic at noon UTC: customers writing to a number
	// without a webhook, and the business answering over REST. On the third
	// day some answers stay queued (no date_sent: their date_created counts).
	inbound := func(n int) []string {
		var sids []string
		for i := range n {
			res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: fmt.Sprintf("+1555300%04d", i), To: plainNumber, Body: fmt.Sprintf("msg %d", i)})
			if err != nil {
				t.Fatalf("SendMessage: %v", err)
			}
			sids = append(sids, res.MessageSID)
		}
		return sids
	}
	outbound := func(n int, waitSent bool) []string {
		var sids []string
		for i := range n {
			p := &api.CreateMessageParams{}
			p.SetTo(fmt.Sprintf("+1555300%04d", i)).SetFrom(plainNumber).SetBody("answer")
			m, err := tw.Api.CreateMessage(p)
			if err != nil {
				t.Fatalf("CreateMessage: %v", err)
			}
			sids = append(sids, deref(m.Sid))
		}
		for _, sid := range sids {
			if !waitSent {
				break // still queued: no date_sent
			}
			eventually(t, func() bool {
				m, err := tw.Api.FetchMessage(sid, &api.FetchMessageParams{})
				return err == nil && m.DateSent != nil
			}, "date_sent of %s", sid)
		}
		return sids
	}
	day1 := toNoon(ctx, t, s)
	in1, out1 := inbound(120), outbound(10, true)
	if _, err := s.c.AdvanceClock(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	day2 := day1.AddDate(0, 0, 1)
	in2, out2 := inbound(120), outbound(10, true)
	if _, err := s.c.AdvanceClock(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	day3 := day2.AddDate(0, 0, 1)
	hour := 3_600_000
	if _, err := s.c.SetDelivery(ctx, simclient.DeliveryOptions{DelayMS: &hour}); err != nil {
		t.Fatalf("SetDelivery: %v", err)
	}
	in3, out3 := inbound(60), outbound(5, false)
	all := slices.Concat(in1, out1, in2, out2, in3, out3)

	list := func(what string, edit func(*api.ListMessageParams)) []string {
		t.Helper()
		p := &api.ListMessageParams{}
		p.SetPageSize(37)
		edit(p)
		got, err := tw.Api.ListMessage(p)
		if err != nil {
			t.Fatalf("%s: ListMessage: %v", what, err)
		}
		return messageSIDs(got)
	}

	// Everything, newest first, over pages of 37.
	before := countOps(ctx, t, s, "ListMessage")
	got := list("all", func(*api.ListMessageParams) {})
	checkOnce(t, "all", got, all)
	newestFirst := slices.Clone(all)
	slices.Reverse(newestFirst)
	if !slices.Equal(got, newestFirst) {
		t.Errorf("messages are not newest first")
	}
	checkPages(ctx, t, s, "ListMessage", before, (len(all)+36)/37)

	// Date filters count days in UTC; the time of day of a timestamp is
	// ignored, as Twilio does.
	at := func(day time.Time, hour int) time.Time { return day.Add(time.Duration(hour) * time.Hour) }
	checkOnce(t, "DateSentAfter day 2 18:00", list("after", func(p *api.ListMessageParams) {
		p.SetDateSentAfter(at(day2, 18))
	}), slices.Concat(in2, out2, in3, out3))
	checkOnce(t, "DateSentBefore day 2 06:00", list("before", func(p *api.ListMessageParams) {
		p.SetDateSentBefore(at(day2, 6))
	}), slices.Concat(in1, out1, in2, out2))
	checkOnce(t, "DateSent day 2 23:59", list("on", func(p *api.ListMessageParams) {
		p.SetDateSent(day2.Add(24*time.Hour - time.Second))
	}), slices.Concat(in2, out2))
	checkOnce(t, "DateSentAfter day 2 and DateSentBefore day 2", list("between", func(p *api.ListMessageParams) {
		p.SetDateSentAfter(at(day2, 23)).SetDateSentBefore(at(day2, 1))
	}), slices.Concat(in2, out2))
	checkOnce(t, "DateSentAfter day 3 (queued messages count by date_created)", list("queued", func(p *api.ListMessageParams) {
		p.SetDateSentAfter(at(day3, 0))
	}), slices.Concat(in3, out3))
	checkOnce(t, "DateSentAfter day 4", list("none", func(p *api.ListMessageParams) {
		p.SetDateSentAfter(day3.AddDate(0, 0, 1))
	}), nil)
	checkOnce(t, "To and DateSentAfter", list("to", func(p *api.ListMessageParams) {
		p.SetTo(plainNumber).SetDateSentAfter(at(day2, 12))
	}), slices.Concat(in2, in3))
	checkOnce(t, "From and DateSentBefore", list("from", func(p *api.ListMessageParams) {
		p.SetFrom(plainNumber).SetDateSentBefore(at(day2, 12))
	}), slices.Concat(out1, out2))

	// Page by page while customers keep writing: later pages continue where
	// the previous one ended, so nothing repeats and nothing is skipped.
	p := &api.ListMessageParams{}
	p.SetPageSize(50).SetDateSentAfter(day1)
	page, err := tw.Api.PageMessage(p, "", "")
	if err != nil {
		t.Fatalf("PageMessage: %v", err)
	}
	var paged, arrived, firstPage []string
	for {
		paged = append(paged, messageSIDs(page.Messages)...)
		arrived = append(arrived, inbound(3)...)
		if page.Page == 0 {
			firstPage = messageSIDs(page.Messages)
		}
		if page.Page == 1 {
			// previous_page_uri leads back to exactly the first page,
			// whatever arrived since.
			if page.PreviousPageUri == nil {
				t.Fatalf("page 1 has no previous_page_uri")
			}
			u, _ := url.Parse(*page.PreviousPageUri)
			prev, err := tw.Api.PageMessage(p, u.Query().Get("PageToken"), u.Query().Get("Page"))
			if err != nil {
				t.Fatalf("PageMessage %s: %v", *page.PreviousPageUri, err)
			}
			if !slices.Equal(messageSIDs(prev.Messages), firstPage) {
				t.Errorf("previous page of page 1 differs from page 0")
			}
			// Messages arrived after page 0 was read: they come before it now.
			if prev.PreviousPageUri == nil {
				t.Errorf("the page before page 1 has no previous page, though messages arrived since")
			}
		}
		if page.NextPageUri == nil {
			break
		}
		next := *page.NextPageUri
		wantPrefix := "/2010-04-01/Accounts/" + acctSID + "/Messages.json?DateSent%3E=" + url.QueryEscape(day1.Format(time.RFC3339)) + "&PageSize=50&Page="
		if !strings.HasPrefix(next, wantPrefix) || !strings.Contains(next, "&PageToken=PA") {
			t.Fatalf("next_page_uri = %q, want %s…&PageToken=PA…", next, wantPrefix)
		}
		u, err := url.Parse(next)
		if err != nil {
			t.Fatalf("parse next_page_uri: %v", err)
		}
		if page, err = tw.Api.PageMessage(p, u.Query().Get("PageToken"), u.Query().Get("Page")); err != nil {
			t.Fatalf("PageMessage %s: %v", next, err)
		}
	}
	checkOnce(t, "pages while messages arrive", paged, all)

	// StreamMessage stops at Limit.
	sp := &api.ListMessageParams{}
	sp.SetPageSize(20).SetLimit(45)
	ch, errs := tw.Api.StreamMessage(sp)
	n := 0
	for range ch {
		n++
	}
	if err := <-errs; err != nil || n != 45 {
		t.Errorf("StreamMessage with Limit 45 gave %d messages (%v)", n, err)
	}
	noViolations(ctx, t, s)

	// A date alone (YYYY-MM-DD) works too, written as Twilio documents it:
	// DateSent<=D and DateSent>=D. (Twilio's document types these parameters
	// date-time, so strict mode records a date as a difference.)
	raw := func(query string) (out struct {
		Messages []struct {
			Sid string `json:"sid"`
		} `json:"messages"`
		NextPageURI *string `json:"next_page_uri"`
		Start       int     `json:"start"`
		End         int     `json:"end"`
	}) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/2010-04-01/Accounts/"+acctSID+"/Messages.json?"+query, nil)
		req.SetBasicAuth(keySID, keySecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", query, err)
		}
		decodeBody(t, resp, http.StatusOK, &out)
		return out
	}
	d1 := day1.Format("2006-01-02")
	r := raw("DateSent<=" + d1 + "&PageSize=1000")
	var ids []string
	for _, m := range r.Messages {
		ids = append(ids, m.Sid)
	}
	checkOnce(t, "DateSent<="+d1, ids, slices.Concat(in1, out1))
	if r.Start != 0 || r.End != len(ids)-1 || r.NextPageURI != nil {
		t.Errorf("one full page: start %d end %d next %v", r.Start, r.End, r.NextPageURI)
	}
	r = raw("DateSent=" + day2.Format("2006-01-02") + "&PageSize=1000")
	if len(r.Messages) != len(in2)+len(out2) {
		t.Errorf("DateSent=day 2 listed %d, want %d", len(r.Messages), len(in2)+len(out2))
	}
	r = raw("DateSent>=" + day3.AddDate(0, 0, 1).Format("2006-01-02"))
	if len(r.Messages) != 0 {
		t.Errorf("DateSent>=day 4 listed %d, want none", len(r.Messages))
	}
	r = raw("DateSent>=" + day3.Format("2006-01-02") + "&PageSize=1000")
	if len(r.Messages) != len(in3)+len(out3)+len(arrived) {
		t.Errorf("DateSent>=day 3 listed %d, want %d", len(r.Messages), len(in3)+len(out3)+len(arrived))
	}

	for _, bad := range []string{"DateSent%3E=yesterday", "PageSize=0", "PageSize=1001", "Page=-1", "PageToken=XX1"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/2010-04-01/Accounts/"+acctSID+"/Messages.json?"+bad, nil)
		req.SetBasicAuth(keySID, keySecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", bad, err)
		}
		var te struct{ Code int }
		decodeBody(t, resp, http.StatusBadRequest, &te)
		if te.Code != 20001 {
			t.Errorf("%s: code %d, want 20001", bad, te.Code)
		}
	}
}

func TestListConversations(t *testing.T) {
	rc := newReceiver(t)
	s, _, ctx := startStrict(t, rc, func(*twiliosim.Account) {})
	tw := twilioClient(t, s.base, keySID, keySecret)

	create := func(svc string, n int) []string {
		var sids []string
		for i := range n {
			p := &conversations.CreateServiceConversationParams{}
			p.SetFriendlyName(fmt.Sprintf("c%d", i))
			c, err := tw.ConversationsV1.CreateServiceConversation(svc, p)
			if err != nil {
				t.Fatalf("CreateServiceConversation: %v", err)
			}
			sids = append(sids, deref(c.Sid))
		}
		return sids
	}
	day1 := toNoon(ctx, t, s)
	first := create(convSvc, 55)
	other := create(convSvcGet, 5)
	if _, err := s.c.AdvanceClock(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	day2 := day1.AddDate(0, 0, 1)
	second := create(convSvc, 50)
	// Customers writing in autocreate conversations too.
	for i := range 3 {
		res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: fmt.Sprintf("+1555400%04d", i), To: convNumber, Body: "hi"})
		if err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
		second = append(second, res.ConversationSID)
	}
	var closed []string
	for _, sid := range second[:7] {
		up := &conversations.UpdateServiceConversationParams{}
		up.SetState("closed")
		if _, err := tw.ConversationsV1.UpdateServiceConversation(convSvc, sid, up); err != nil {
			t.Fatalf("UpdateServiceConversation: %v", err)
		}
		closed = append(closed, sid)
	}
	all := slices.Concat(first, second)

	convSIDs := func(cs []conversations.ConversationsV1ServiceConversation) []string {
		var out []string
		for _, c := range cs {
			out = append(out, deref(c.Sid))
		}
		return out
	}
	listService := func(svc string, edit func(*conversations.ListServiceConversationParams)) []string {
		t.Helper()
		p := &conversations.ListServiceConversationParams{}
		p.SetPageSize(20)
		edit(p)
		got, err := tw.ConversationsV1.ListServiceConversation(svc, p)
		if err != nil {
			t.Fatalf("ListServiceConversation: %v", err)
		}
		return convSIDs(got)
	}

	before := countOps(ctx, t, s, "ListServiceConversation")
	got := listService(convSvc, func(*conversations.ListServiceConversationParams) {})
	checkOnce(t, "service conversations", got, all)
	if !slices.Equal(got, all) {
		t.Errorf("without dates the list is not oldest first")
	}
	checkPages(ctx, t, s, "ListServiceConversation", before, (len(all)+19)/20)
	checkOnce(t, "other service", listService(convSvcGet, func(*conversations.ListServiceConversationParams) {}), other)

	// Dates: a day covers the whole day; a timestamp is an instant; both
	// ends are inclusive; the list is then newest first.
	got = listService(convSvc, func(p *conversations.ListServiceConversationParams) {
		p.SetStartDate(day2.Format(time.RFC3339))
	})
	checkOnce(t, "StartDate day 2", got, second)
	rev := slices.Clone(second)
	slices.Reverse(rev)
	if !slices.Equal(got, rev) {
		t.Errorf("with StartDate the list is not newest first")
	}
	checkOnce(t, "EndDate day 1 (date)", listService(convSvc, func(p *conversations.ListServiceConversationParams) {
		p.SetEndDate(day1.Format("2006-01-02"))
	}), first)
	checkOnce(t, "EndDate day 1 23:59:59", listService(convSvc, func(p *conversations.ListServiceConversationParams) {
		p.SetEndDate(day1.Add(24*time.Hour - time.Second).Format(time.RFC3339))
	}), first)
	checkOnce(t, "StartDate day 1 13:00", listService(convSvc, func(p *conversations.ListServiceConversationParams) {
		p.SetStartDate(day1.Add(13 * time.Hour).Format(time.RFC3339))
	}), second)
	checkOnce(t, "State closed", listService(convSvc, func(p *conversations.ListServiceConversationParams) {
		p.SetState("closed")
	}), closed)
	checkOnce(t, "State active from day 2", listService(convSvc, func(p *conversations.ListServiceConversationParams) {
		p.SetState("active").SetStartDate(day2.Format("2006-01-02")).SetEndDate(day2.Format("2006-01-02"))
	}), second[7:])

	// The default service's path lists the same conversations.
	dp := &conversations.ListConversationParams{}
	dp.SetPageSize(15).SetStartDate(day1.Format(time.RFC3339))
	dl, err := tw.ConversationsV1.ListConversation(dp)
	if err != nil {
		t.Fatalf("ListConversation: %v", err)
	}
	var dsids []string
	for _, c := range dl {
		dsids = append(dsids, deref(c.Sid))
		if !strings.HasPrefix(deref(c.Url), "https://conversations.twilio.com/v1/Conversations/CH") {
			t.Errorf("default-path url %q", deref(c.Url))
		}
	}
	checkOnce(t, "ListConversation", dsids, all)

	// next_page_url carries the filters, Page and PageToken.
	page, err := tw.ConversationsV1.PageServiceConversation(convSvc, (&conversations.ListServiceConversationParams{}).SetPageSize(10).SetState("active"), "", "")
	if err != nil {
		t.Fatalf("PageServiceConversation: %v", err)
	}
	next := deref(page.Meta.NextPageUrl)
	want := "https://conversations.twilio.com/v1/Services/" + convSvc + "/Conversations?State=active&PageSize=10&Page=1&PageToken=PA"
	if !strings.HasPrefix(next, want) || page.Meta.Key != "conversations" {
		t.Errorf("next_page_url = %q, want %s…", next, want)
	}
	noViolations(ctx, t, s)
}

func TestListConversationMessagesPages(t *testing.T) {
	rc := newReceiver(t)
	s, _, ctx := startStrict(t, rc, func(*twiliosim.Account) {})
	tw := twilioClient(t, s.base, keySID, keySecret)

	in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "hi"})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	// Do not deliver to the customer: only the listing matters here.
	hour := 3_600_000
	if _, err := s.c.SetDelivery(ctx, simclient.DeliveryOptions{DelayMS: &hour}); err != nil {
		t.Fatalf("SetDelivery: %v", err)
	}
	want := []string{in.MessageSID}
	for i := range 120 {
		p := &conversations.CreateServiceConversationMessageParams{}
		p.SetAuthor("agent").SetBody(fmt.Sprintf("answer %d", i))
		m, err := tw.ConversationsV1.CreateServiceConversationMessage(convSvc, in.ConversationSID, p)
		if err != nil {
			t.Fatalf("CreateServiceConversationMessage: %v", err)
		}
		want = append(want, deref(m.Sid))
	}

	list := func(order string, size int) []string {
		t.Helper()
		p := &conversations.ListServiceConversationMessageParams{}
		p.SetPageSize(size)
		if order != "" {
			p.SetOrder(order)
		}
		got, err := tw.ConversationsV1.ListServiceConversationMessage(convSvc, in.ConversationSID, p)
		if err != nil {
			t.Fatalf("ListServiceConversationMessage: %v", err)
		}
		var out []string
		for i, m := range got {
			out = append(out, deref(m.Sid))
			wantIndex := i
			if order == "desc" {
				wantIndex = len(got) - 1 - i
			}
			if m.Index != wantIndex {
				t.Errorf("order %q: message %d has index %d, want %d", order, i, m.Index, wantIndex)
				break
			}
		}
		return out
	}
	before := countOps(ctx, t, s, "ListServiceConversationMessage")
	asc := list("", 25)
	checkOnce(t, "asc", asc, want)
	checkPages(ctx, t, s, "ListServiceConversationMessage", before, (len(want)+24)/25)
	desc := list("desc", 7)
	checkOnce(t, "desc", desc, want)
	slices.Reverse(desc)
	if !slices.Equal(asc, desc) {
		t.Errorf("desc is not asc reversed")
	}

	// The default-service path pages the same way.
	dp := &conversations.ListConversationMessageParams{}
	dp.SetPageSize(100).SetOrder("desc")
	dl, err := tw.ConversationsV1.ListConversationMessage(in.ConversationSID, dp)
	if err != nil {
		t.Fatalf("ListConversationMessage: %v", err)
	}
	var dsids []string
	for _, m := range dl {
		dsids = append(dsids, deref(m.Sid))
	}
	checkOnce(t, "ListConversationMessage", dsids, want)

	// A page token of another conversation is refused.
	other, err := tw.ConversationsV1.CreateServiceConversation(convSvc, &conversations.CreateServiceConversationParams{})
	if err != nil {
		t.Fatalf("CreateServiceConversation: %v", err)
	}
	_, err = tw.ConversationsV1.PageServiceConversationMessage(convSvc, deref(other.Sid), &conversations.ListServiceConversationMessageParams{}, "PA"+want[3], "1")
	if !isTwilioError(err, 400, 20001) {
		t.Errorf("foreign PageToken: %v, want 400/20001", err)
	}
	noViolations(ctx, t, s)
}

// Tens of thousands of messages: twilio-go reads them all in pages of 1000,
// and a DateSentAfter bound reads one day of them, each message once.
func TestListMessagesVolume(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 messages through the list (about 3 s): skipped under -short; make test runs it (where ../shared/twilio-oai holds the contract it is checked against)")
	}
	const perDay = 10_000
	rc := newReceiver(t)
	s, _, ctx := startStrict(t, rc, func(*twiliosim.Account) {})
	tw := twilioClient(t, s.base, keySID, keySecret)

	send := func(day int) []string {
		const workers = 4
		sids := make([]string, perDay)
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				for i := w; i < perDay; i += workers {
					res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: fmt.Sprintf("+1555%d%06d", day, i), To: plainNumber, Body: "hello"})
					if err != nil {
						errs <- err
						return
					}
					sids[i] = res.MessageSID
				}
				errs <- nil
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				t.Fatalf("SendMessage: %v", err)
			}
		}
		return sids
	}
	day1 := toNoon(ctx, t, s)
	first := send(1)
	if _, err := s.c.AdvanceClock(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	second := send(2)

	p := &api.ListMessageParams{}
	p.SetPageSize(1000)
	got, err := tw.Api.ListMessage(p)
	if err != nil {
		t.Fatalf("ListMessage: %v", err)
	}
	checkOnce(t, "all", messageSIDs(got), slices.Concat(first, second))

	p = &api.ListMessageParams{}
	p.SetPageSize(1000).SetDateSentAfter(day1.AddDate(0, 0, 1).Add(20 * time.Hour))
	got, err = tw.Api.ListMessage(p)
	if err != nil {
		t.Fatalf("ListMessage DateSentAfter: %v", err)
	}
	checkOnce(t, "DateSentAfter day 2", messageSIDs(got), second)
	noViolations(ctx, t, s)
}
