package sim

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lists page the way Twilio does: PageSize, Page (the client's page index,
// echoed) and an opaque PageToken from the next or previous page link. A
// token names the last item of the page before it ("PA" + SID) or the first
// item of the page after it ("PB" + SID), so a page starts where the
// previous one ended even while new items arrive.

// addMessage stores a new message and, for the 2010-04-01 API, appends it to
// its account's history. Called with e.mu held.
func (e *Engine) addMessage(m *message) {
	e.seq++
	m.seq = e.seq
	e.messages[m.sid] = m
	if m.path != pathConversations {
		e.history[m.accountSID] = append(e.history[m.accountSID], m)
		e.attachMedia(m)
	}
}

// addConversation stores a new conversation. Called with e.mu held.
func (e *Engine) addConversation(c *conversation) {
	e.seq++
	c.seq = e.seq
	e.conversations[c.sid] = c
	e.convList[c.accountSID] = append(e.convList[c.accountSID], c)
}

// pageMeta is the meta object of a v1 list page (Conversations, Content).
type pageMeta struct {
	FirstPageURL    string  `json:"first_page_url"`
	Key             string  `json:"key"`
	NextPageURL     *string `json:"next_page_url"`
	Page            int     `json:"page"`
	PageSize        int     `json:"page_size"`
	PreviousPageURL *string `json:"previous_page_url"`
	URL             string  `json:"url"`
}

// v1Meta is the meta of a v1 list page at path: the page links carry the
// filters, PageSize, Page and PageToken, on the host the call was meant for
// (X-Original-Host, else defaultHost).
func v1Meta(r *http.Request, defaultHost, key string, filters []string, pg paging, prev, next pageToken) pageMeta {
	host := r.Header.Get("X-Original-Host")
	if host == "" {
		host = defaultHost
	}
	base := "https://" + host + r.URL.Path + "?"
	link := func(page int, tok pageToken) string { return base + pageQuery(filters, pg.size, page, tok) }
	m := pageMeta{FirstPageURL: link(0, pageToken{}), Key: key, Page: pg.page, PageSize: pg.size, URL: link(pg.page, pg.token)}
	if next.set {
		m.NextPageURL = ptr(link(pg.page+1, next))
	}
	if prev.set {
		m.PreviousPageURL = ptr(link(max(pg.page-1, 0), prev))
	}
	return m
}

// page2010 is the envelope of a 2010-04-01 list page, next to the items.
// The page URIs are relative, like Twilio's, and repeat the filters.
type page2010 struct {
	End             int     `json:"end"`
	FirstPageURI    string  `json:"first_page_uri"`
	NextPageURI     *string `json:"next_page_uri"`
	Page            int     `json:"page"`
	PageSize        int     `json:"page_size"`
	PreviousPageURI *string `json:"previous_page_uri"`
	Start           int     `json:"start"`
	URI             string  `json:"uri"`
}

// newPage2010 is the envelope of a page of n items of the list at path.
func newPage2010(path string, filters []string, pg paging, n int, prev, next pageToken) page2010 {
	uri := func(page int, tok pageToken) string { return path + "?" + pageQuery(filters, pg.size, page, tok) }
	out := page2010{
		FirstPageURI: uri(0, pageToken{}), URI: uri(pg.page, pg.token),
		Page: pg.page, PageSize: pg.size, Start: pg.page * pg.size,
	}
	out.End = out.Start + max(n-1, 0)
	if next.set {
		out.NextPageURI = ptr(uri(pg.page+1, next))
	}
	if prev.set {
		out.PreviousPageURI = ptr(uri(max(pg.page-1, 0), prev))
	}
	return out
}

// pageToken is a parsed PageToken: the SID of the item the page follows
// (after) or precedes (before).
type pageToken struct {
	set    bool
	before bool
	sid    string
}

func (t pageToken) String() string {
	switch {
	case !t.set:
		return ""
	case t.before:
		return "PB" + t.sid
	}
	return "PA" + t.sid
}

// paging is a list request's paging parameters.
type paging struct {
	size  int
	page  int
	token pageToken
}

// pagingOf reads PageSize (1 to maxSize, 50 by default), Page and PageToken.
func pagingOf(q url.Values, maxSize int) (paging, *restError) {
	p := paging{size: 50}
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSize {
			return p, badRequest(20001, "PageSize %q must be an integer from 1 to %d", v, maxSize)
		}
		p.size = n
	}
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, badRequest(20001, "Page %q must be a non-negative integer", v)
		}
		p.page = n
	}
	if v := q.Get("PageToken"); v != "" {
		switch {
		case len(v) > 2 && strings.HasPrefix(v, "PA"):
			p.token = pageToken{set: true, sid: v[2:]}
		case len(v) > 2 && strings.HasPrefix(v, "PB"):
			p.token = pageToken{set: true, before: true, sid: v[2:]}
		default:
			return p, invalidToken(v)
		}
	}
	return p, nil
}

func invalidToken(v string) *restError {
	return badRequest(20001, "PageToken %q is invalid", v)
}

// window is a page picked from a list: positions in display order, and
// whether matching items lie before and after it.
type window struct {
	items      []int
	prev, next bool
}

// pickPage chooses the page of a list of n items in display order. keep
// reports whether the item at a position passes the filters; anchor is the
// position of the token's item (ignored without a token).
func pickPage(n int, keep func(int) bool, size int, tok pageToken, anchor int) window {
	var w window
	anyIn := func(from, to, step int) bool {
		for i := from; i != to; i += step {
			if keep(i) {
				return true
			}
		}
		return false
	}
	if tok.set && tok.before {
		i := anchor - 1
		for ; i >= 0 && len(w.items) < size; i-- {
			if keep(i) {
				w.items = append(w.items, i)
			}
		}
		slices.Reverse(w.items)
		w.prev = anyIn(i, -1, -1)
		w.next = anyIn(anchor, n, 1)
		return w
	}
	from := 0
	if tok.set {
		from = anchor + 1
	}
	i := from
	for ; i < n && len(w.items) < size; i++ {
		if keep(i) {
			w.items = append(w.items, i)
		}
	}
	w.next = anyIn(i, n, 1)
	w.prev = anyIn(from-1, -1, -1)
	return w
}

// links are the tokens of the pages around w; sidAt names the item at a
// position.
func (w window) links(sidAt func(int) string) (prev, next pageToken) {
	if len(w.items) == 0 {
		return
	}
	if w.prev {
		prev = pageToken{set: true, before: true, sid: sidAt(w.items[0])}
	}
	if w.next {
		next = pageToken{set: true, sid: sidAt(w.items[len(w.items)-1])}
	}
	return
}

// orderedQuery encodes key/value pairs in the given order (Twilio's page
// links keep the filters first, then PageSize, Page and PageToken), leaving
// out empty values.
func orderedQuery(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(kv[i]))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(kv[i+1]))
	}
	return b.String()
}

// pageQuery is orderedQuery of the filters plus the paging parameters.
func pageQuery(filters []string, size, page int, tok pageToken) string {
	kv := append(slices.Clone(filters), "PageSize", strconv.Itoa(size), "Page", strconv.Itoa(page), "PageToken", tok.String())
	return orderedQuery(kv...)
}

// Date formats Twilio accepts in list filters: a day, or a timestamp in one
// of the forms its documents show.
var (
	dayLayouts       = []string{"2006-01-02"}
	timestampLayouts = []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05Z0700",
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05", // no zone: UTC
		"2006-01-02 15:04:05",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02 15:04:05Z07:00",
		time.RFC1123Z,
		time.RFC1123,
		"Mon, 2 Jan 2006 15:04:05 -0700",
		"01/02/2006 15:04:05 MST",
	}
)

// parseListDate reads a filter value: a date (YYYY-MM-DD, GMT) or a
// timestamp. day reports a date without a time of day. The time is in UTC.
func parseListDate(v string) (t time.Time, day bool, err error) {
	v = strings.TrimSpace(v)
	for _, l := range dayLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), true, nil
		}
	}
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), false, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("%q is not a date (YYYY-MM-DD) or a timestamp", v)
}

// dayFilters reads a 2010-04-01 list's date filters name, name< and name>
// (DateSent, DateCreated), which work on whole UTC days, as Twilio's do: a
// value is a date (YYYY-MM-DD) or a timestamp, and a timestamp counts as its
// day (the time of day is ignored). name is that day, name> ("name>=D") that
// day and later, name< ("name<=D") that day and earlier; combined, they
// intersect.
func dayFilters(q url.Values, name string) (span, *restError) {
	var s span
	for _, k := range []string{name, name + "<", name + ">"} {
		v := q.Get(k)
		if v == "" {
			continue
		}
		t, _, err := parseListDate(v)
		if err != nil {
			return s, badRequest(20001, "Invalid value for %s: %v", k, err)
		}
		day := utcDay(t)
		switch k {
		case name:
			s = s.narrow(day, day.AddDate(0, 0, 1))
		case name + "<":
			s = s.narrow(time.Time{}, day.AddDate(0, 0, 1))
		default:
			s = s.narrow(day, time.Time{})
		}
	}
	return s, nil
}

// utcDay is the start of t's day in UTC.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// span is a time range [from, until); zero ends are open.
type span struct{ from, until time.Time }

func (s span) has(t time.Time) bool {
	return (s.from.IsZero() || !t.Before(s.from)) && (s.until.IsZero() || t.Before(s.until))
}

// narrow keeps the part of s that is also in [from, until).
func (s span) narrow(from, until time.Time) span {
	if !from.IsZero() && (s.from.IsZero() || from.After(s.from)) {
		s.from = from
	}
	if !until.IsZero() && (s.until.IsZero() || until.Before(s.until)) {
		s.until = until
	}
	return s
}
