package sim

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/segments"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
)

const (
	maxBody  = 1600
	maxMedia = 10
	// Largest file a customer's phone can send: 5 MB over MMS, 16 MB over
	// WhatsApp.
	maxMediaBytes         = 5 << 20
	maxWhatsAppMediaBytes = 16 << 20
	whatsWindow           = 24 * time.Hour
)

// restError is a Twilio error answer decided while handling a request.
type restError struct {
	status int
	code   int
	msg    string
}

func (e *restError) Error() string { return fmt.Sprintf("%d %d %s", e.status, e.code, e.msg) }

func badRequest(code int, format string, args ...any) *restError {
	return &restError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

func notFound(path string) *restError {
	return &restError{status: http.StatusNotFound, code: 20404, msg: fmt.Sprintf("The requested resource %s was not found", path)}
}

func writeRestError(w http.ResponseWriter, err *restError) {
	writeTwilioError(w, err.status, err.code, err.msg)
}

// checkAccountPath rejects a path AccountSid other than the caller's.
func checkAccountPath(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("AccountSid") != accountOf(r) {
		writeTwilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return false
	}
	return true
}

// createMessage is POST /2010-04-01/Accounts/{AccountSid}/Messages.json.
func (e *Engine) createMessage(w http.ResponseWriter, r *http.Request) {
	if !checkAccountPath(w, r) {
		return
	}
	if err := parseForm(r); err != nil {
		writeTwilioError(w, http.StatusBadRequest, 20001, err.Error())
		return
	}
	m, plan, rerr := e.newRESTMessage(accountOf(r), r.PostForm)
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	e.mu.Lock()
	body := m.api()
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
	e.goBackground(func(ctx context.Context) { e.runMessaging(ctx, m, plan) })
}

// newRESTMessage validates a create request and records the message.
func (e *Engine) newRESTMessage(acctSID string, f url.Values) (*message, plan, *restError) {
	to, from, mg := f.Get("To"), f.Get("From"), f.Get("MessagingServiceSid")
	body, mediaURLs := f.Get("Body"), f["MediaUrl"]
	contentSID, contentVars := f.Get("ContentSid"), f.Get("ContentVariables")
	statusCB := f.Get("StatusCallback")
	switch {
	case to == "":
		return nil, plan{}, badRequest(21604, "A 'To' phone number is required.")
	case !validAddress(to):
		return nil, plan{}, badRequest(21211, "Invalid 'To' Phone Number: %s", to)
	case from == "" && mg == "":
		return nil, plan{}, badRequest(21603, "A 'From' phone number is required.")
	case body == "" && len(mediaURLs) == 0 && contentSID == "":
		return nil, plan{}, badRequest(21602, "Message body is required.")
	case utf8.RuneCountInString(body) > maxBody:
		return nil, plan{}, badRequest(21617, "The concatenated message body exceeds the %d character limit.", maxBody)
	case len(mediaURLs) > maxMedia:
		return nil, plan{}, badRequest(21623, "The number of media files exceeds the limit of %d.", maxMedia)
	case contentSID != "" && !validSID("HX", contentSID):
		return nil, plan{}, badRequest(21655, "The ContentSid is Invalid.")
	case contentVars != "" && !json.Valid([]byte(contentVars)):
		return nil, plan{}, badRequest(21656, "The ContentVariables Parameter is invalid.")
	case statusCB != "" && !validURL(statusCB):
		return nil, plan{}, badRequest(21609, "Invalid StatusCallback url: %s", statusCB)
	}
	for _, u := range mediaURLs {
		if pu, err := url.Parse(u); err != nil || pu.Host == "" {
			return nil, plan{}, badRequest(21620, "Invalid media URL(s): %s", u)
		}
	}
	toChannel, _ := channelOf(to)

	e.mu.Lock()
	defer e.mu.Unlock()
	acct := e.accounts[acctSID]
	if acct == nil {
		return nil, plan{}, &restError{status: http.StatusUnauthorized, code: 20003, msg: "Authenticate"}
	}
	var svc *simapi.MessagingService
	if mg != "" {
		if svc = acct.msgServices[mg]; svc == nil {
			return nil, plan{}, badRequest(21705, "The Messaging Service Sid %s is invalid.", mg)
		}
	}
	sender := from
	if from != "" {
		if !validAddress(from) {
			return nil, plan{}, badRequest(21212, "The 'From' number %s is not a valid phone number, shortcode, or alphanumeric sender ID.", from)
		}
		if acct.numbers[from] == nil {
			return nil, plan{}, badRequest(21606, "The 'From' phone number provided (%s) is not a valid message-capable Twilio phone number for this destination.", from)
		}
		if ch, _ := channelOf(from); ch != toChannel {
			return nil, plan{}, badRequest(21910, "Invalid From and To pair. From and To should be of the same channel")
		}
	} else {
		sender = e.pickSender(acct, mg, to)
		if sender == "" {
			return nil, plan{}, badRequest(21703, "The Messaging Service does not have a phone number available to send a message to %s.", to)
		}
	}
	scope := sender
	if mg != "" {
		scope = mg
	} else if s := acct.serviceOf[sender]; s != "" {
		scope = s
	}
	if toChannel == "sms" && e.optOuts[optKey{scope, to}] {
		return nil, plan{}, badRequest(21610, "Attempt to send to unsubscribed recipient")
	}

	now := e.clock.now()
	sid := newSID("SM")
	if len(mediaURLs) > 0 {
		sid = newSID("MM")
	}
	m := &message{
		sid:            sid,
		path:           pathMessaging,
		direction:      "outbound-api",
		accountSID:     acctSID,
		from:           sender,
		to:             to,
		body:           body,
		hasBody:        body != "",
		contentSID:     contentSID,
		contentVar:     contentVars,
		mgSID:          mg,
		fromChosen:     mg == "" || from != "",
		statusCallback: statusCB,
		status:         "queued",
		seg:            segments.Count(body),
		created:        now,
		updated:        now,
	}
	if mg != "" {
		m.status = "accepted"
		if statusCB == "" {
			m.statusCallback = svc.StatusCallback
		}
	}
	for _, u := range mediaURLs {
		m.media = append(m.media, simapi.Media{URL: u})
	}
	e.addMessage(m)
	e.outbound = append(e.outbound, m)

	p := e.takePlan(to)
	if toChannel == "whatsapp" && contentSID == "" && !e.inWindow(to, sender, now) {
		p = p.failWith(63016, "failed")
	}
	return m, p, nil
}

// pickSender chooses a pool number on the recipient's channel, preferring
// the one the customer last wrote to (sticky sender).
func (e *Engine) pickSender(acct *account, mg, to string) string {
	toChannel, _ := channelOf(to)
	if last := e.lastSender[pair{to, mg}]; last != "" {
		return last
	}
	for _, addr := range acct.pools[mg] {
		if ch, _ := channelOf(addr); ch == toChannel {
			return addr
		}
	}
	return ""
}

// inWindow reports whether the customer wrote to the business number in the
// last 24 hours.
func (e *Engine) inWindow(customer, business string, now time.Time) bool {
	last, ok := e.windows[pair{customer, business}]
	return ok && now.Sub(last) <= whatsWindow
}

// fetchMessage is GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json.
func (e *Engine) fetchMessage(w http.ResponseWriter, r *http.Request) {
	if !checkAccountPath(w, r) {
		return
	}
	sid, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	e.mu.Lock()
	m := e.messages[sid]
	if !ok || m == nil || m.accountSID != accountOf(r) || m.path == pathConversations {
		e.mu.Unlock()
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	body := m.api()
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// listMessages is GET /2010-04-01/Accounts/{AccountSid}/Messages.json: the
// account's messages newest first (by arrival), filtered by To, From and
// DateSent, DateSent< and DateSent>, in pages.
//
// The date filters work on whole days (dayFilters). A message's date is its
// date_sent, or date_created while it has none.
func (e *Engine) listMessages(w http.ResponseWriter, r *http.Request) {
	if !checkAccountPath(w, r) {
		return
	}
	q := r.URL.Query()
	pg, rerr := pagingOf(q, 1000)
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	sent, rerr := dayFilters(q, "DateSent")
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	to, from := q.Get("To"), q.Get("From")
	filters := []string{"To", to, "From", from, "DateSent", q.Get("DateSent"), "DateSent<", q.Get("DateSent<"), "DateSent>", q.Get("DateSent>")}

	acct := accountOf(r)
	e.mu.Lock()
	hist := e.history[acct]
	n := len(hist)
	// Display position i is hist[n-1-i]: newest first.
	at := func(i int) *message { return hist[n-1-i] }
	keep := func(i int) bool {
		m := at(i)
		if to != "" && m.to != to {
			return false
		}
		if from != "" && (!m.fromChosen || m.from != from) {
			return false
		}
		d := m.sent
		if d.IsZero() {
			d = m.created
		}
		return sent.has(d)
	}
	anchor := 0
	if pg.token.set {
		h, ok := -1, false
		if m := e.messages[pg.token.sid]; m != nil {
			h, ok = slices.BinarySearchFunc(hist, m.seq, func(x *message, seq uint64) int { return cmp.Compare(x.seq, seq) })
			ok = ok && hist[h] == m
		}
		if !ok {
			e.mu.Unlock()
			writeRestError(w, invalidToken(pg.token.String()))
			return
		}
		anchor = n - 1 - h
	}
	win := pickPage(n, keep, pg.size, pg.token, anchor)
	list := make([]apiMessage, 0, len(win.items))
	for _, i := range win.items {
		list = append(list, at(i).api())
	}
	prev, next := win.links(func(i int) string { return at(i).sid })
	e.mu.Unlock()

	writeJSON(w, http.StatusOK, listMessagesPage{Messages: list, page2010: newPage2010(r.URL.Path, filters, pg, len(list), prev, next)})
}

// listMessagesPage is a page of the 2010-04-01 Messages list.
type listMessagesPage struct {
	Messages []apiMessage `json:"messages"`
	page2010
}

// pageSizeOf reads PageSize: 50 unless 1 to 1000 is given.
func pageSizeOf(q url.Values) int {
	if n, err := strconv.Atoi(q.Get("PageSize")); err == nil && n > 0 && n <= 1000 {
		return n
	}
	return 50
}

// writeOnePage answers a 2010-04-01 list as its only page: the items under
// key, and the page URIs with the filters in q named by filterKeys.
func writeOnePage(w http.ResponseWriter, path string, q url.Values, filterKeys []string, pageSize int, key string, items any, n int) {
	pq := url.Values{}
	for _, k := range filterKeys {
		if v := q.Get(k); v != "" {
			pq.Set(k, v)
		}
	}
	pq.Set("PageSize", strconv.Itoa(pageSize))
	uri := path + "?" + pq.Encode() + "&Page=0"
	writeJSON(w, http.StatusOK, map[string]any{
		key: items, "end": n - 1, "first_page_uri": uri, "next_page_uri": nil,
		"page": 0, "page_size": pageSize, "previous_page_uri": nil, "start": 0, "uri": uri,
	})
}
