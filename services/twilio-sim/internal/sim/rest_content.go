package sim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
)

// The Content API (content.twilio.com/v1): the account's templates, listed
// in pages as Twilio's document describes them.

// contentHost is where Twilio serves the Content API.
const contentHost = "content.twilio.com"

// apiContent is the v1 Content resource.
type apiContent struct {
	AccountSID   string            `json:"account_sid"`
	DateCreated  string            `json:"date_created"`
	DateUpdated  string            `json:"date_updated"`
	FriendlyName string            `json:"friendly_name"`
	Language     string            `json:"language"`
	Links        map[string]string `json:"links"`
	SID          string            `json:"sid"`
	Types        map[string]any    `json:"types"`
	URL          string            `json:"url"`
	Variables    map[string]string `json:"variables"`
}

// contentPageToken is the opaque PageToken of the page starting at offset.
func contentPageToken(offset int) string { return "PT" + strconv.Itoa(offset) }

// listContent is GET /v1/Content: PageSize (1-1000, 50 by default), Page
// (the client's page index, echoed) and PageToken (from next_page_url).
func (e *Engine) listContent(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, page, offset := 50, 0, 0
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeRestError(w, badRequest(20001, "PageSize %q must be an integer from 1 to 1000", v))
			return
		}
		size = n
	}
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeRestError(w, badRequest(20001, "Page %q must be a non-negative integer", v))
			return
		}
		page = n
	}
	if v := q.Get("PageToken"); v != "" {
		rest, ok := strings.CutPrefix(v, "PT")
		n, err := strconv.Atoi(rest)
		if !ok || err != nil || n < 0 {
			writeRestError(w, badRequest(20001, "PageToken %q is invalid", v))
			return
		}
		offset = n
	}
	sid := accountOf(r)
	e.mu.Lock()
	var all []simapi.ContentTemplate
	if a := e.accounts[sid]; a != nil {
		all = append(all, a.ContentTemplates...)
	}
	e.mu.Unlock()

	host := r.Header.Get("X-Original-Host")
	if host == "" {
		host = contentHost
	}
	pageURL := func(p, off int) string {
		v := url.Values{"PageSize": {strconv.Itoa(size)}, "Page": {strconv.Itoa(p)}}
		if off > 0 {
			v.Set("PageToken", contentPageToken(off))
		}
		return "https://" + host + "/v1/Content?" + v.Encode()
	}
	dated := e.started.UTC().Format("2006-01-02T15:04:05Z")
	out := struct {
		Contents []apiContent `json:"contents"`
		Meta     pageMeta     `json:"meta"`
	}{Contents: []apiContent{}, Meta: pageMeta{
		FirstPageURL: pageURL(0, 0), Key: "contents", Page: page, PageSize: size, URL: pageURL(page, offset),
	}}
	for i := offset; i < len(all) && i < offset+size; i++ {
		t := all[i]
		self := "https://" + host + "/v1/Content/" + t.SID
		vars := t.Variables
		if vars == nil {
			vars = map[string]string{}
		}
		out.Contents = append(out.Contents, apiContent{
			AccountSID: sid, DateCreated: dated, DateUpdated: dated, FriendlyName: t.FriendlyName, Language: t.Language,
			SID: t.SID, Types: t.Types, URL: self, Variables: vars,
			Links: map[string]string{"approval_create": self + "/ApprovalRequests/whatsapp", "approval_fetch": self + "/ApprovalRequests"},
		})
	}
	if next := offset + size; next < len(all) {
		u := pageURL(page+1, next)
		out.Meta.NextPageURL = &u
	}
	if offset > 0 {
		u := pageURL(max(page-1, 0), max(offset-size, 0))
		out.Meta.PreviousPageURL = &u
	}
	writeJSON(w, http.StatusOK, out)
}

// apiDomain is the X-Api-Domain Twilio answers a path with.
func apiDomain(path string) string {
	switch {
	case path == "/v1/Content" || strings.HasPrefix(path, "/v1/Content/"):
		return contentHost
	case strings.HasPrefix(path, "/v1/"):
		return "conversations.twilio.com"
	}
	return "api.twilio.com"
}
