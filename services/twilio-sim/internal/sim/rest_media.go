package sim

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
)

// The Media subresource of a 2010-04-01 message: each attachment of a
// Programmable Messaging message (received, sent over REST, TwiML reply) is
// a Media resource ME… with the message as its parent. Its content, at the
// resource's URI without ".json", is the file a customer's phone sent, or a
// redirect to where the attachment lives: the URL the customer's phone sent
// it from, or the MediaUrl it was sent with. The inbound webhook's
// MediaUrl{N} is that URI on Twilio's API host.

// attachMedia gives each attachment of a 2010-04-01 message its Media
// resource. Called with e.mu held.
func (e *Engine) attachMedia(m *message) {
	if len(m.mediaSIDs) > 0 {
		return
	}
	for _, a := range m.media {
		md := &media{
			sid: newSID("ME"), accountSID: m.accountSID, messageSID: m.sid,
			contentType: a.ContentType, filename: a.Filename, size: a.Size, url: a.URL, data: a.Data, created: m.created,
		}
		if md.contentType == "" {
			md.contentType = guessContentType(a.URL)
		}
		e.media[md.sid] = md
		m.mediaSIDs = append(m.mediaSIDs, md.sid)
	}
}

// guessContentType is the MIME type of a media URL's file extension, which
// is what the emulator knows of an attachment sent with only a MediaUrl
// (Twilio reads the type when it fetches the file).
func guessContentType(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if t := mime.TypeByExtension(strings.ToLower(path.Ext(u.Path))); t != "" {
			if mt, _, err := mime.ParseMediaType(t); err == nil {
				return mt
			}
		}
	}
	return "application/octet-stream"
}

// apiMedia is the 2010-04-01 Media resource.
type apiMedia struct {
	AccountSID  string `json:"account_sid"`
	ContentType string `json:"content_type"`
	DateCreated string `json:"date_created"`
	DateUpdated string `json:"date_updated"`
	ParentSID   string `json:"parent_sid"`
	SID         string `json:"sid"`
	URI         string `json:"uri"`
}

// apiOrigin is the scheme and host of Twilio's REST API for an account:
// api.twilio.com, or the account's region's host (api.ie1.twilio.com), where
// its credentials work.
func apiOrigin(a *account) string {
	if a.Region == "" || a.Region == "us1" {
		return "https://api.twilio.com"
	}
	return "https://api." + a.Region + ".twilio.com"
}

// mediaURI is the path of a message's Media resource; without ".json" it is
// the content.
func mediaURI(accountSID, messageSID, sid string) string {
	return fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s/Media/%s", accountSID, messageSID, sid)
}

func (md *media) api() apiMedia {
	return apiMedia{
		AccountSID:  md.accountSID,
		ContentType: md.contentType,
		DateCreated: md.created.Format(rfc2822),
		DateUpdated: md.created.Format(rfc2822),
		ParentSID:   md.messageSID,
		SID:         md.sid,
		URI:         mediaURI(md.accountSID, md.messageSID, md.sid) + ".json",
	}
}

// restMessageOf returns the path's MessageSid when it is a 2010-04-01
// message of the caller's account. Called with e.mu held.
func (e *Engine) restMessageOf(r *http.Request) *message {
	m := e.messages[r.PathValue("MessageSid")]
	if m == nil || m.accountSID != accountOf(r) || m.path == pathConversations {
		return nil
	}
	return m
}

// listMessageMedia is GET
// /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media.json: the
// message's attachments in the order they were attached, filtered by
// DateCreated, DateCreated< and DateCreated> (whole days, as dayFilters), in
// pages under "media_list".
func (e *Engine) listMessageMedia(w http.ResponseWriter, r *http.Request) {
	if !checkAccountPath(w, r) {
		return
	}
	q := r.URL.Query()
	pg, rerr := pagingOf(q, 1000)
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	created, rerr := dayFilters(q, "DateCreated")
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	filters := []string{"DateCreated", q.Get("DateCreated"), "DateCreated<", q.Get("DateCreated<"), "DateCreated>", q.Get("DateCreated>")}

	e.mu.Lock()
	m := e.restMessageOf(r)
	if m == nil {
		e.mu.Unlock()
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	sids := m.mediaSIDs
	keep := func(i int) bool {
		md := e.media[sids[i]]
		return md != nil && created.has(md.created)
	}
	anchor := 0
	if pg.token.set {
		anchor = slices.Index(sids, pg.token.sid)
		if anchor < 0 {
			e.mu.Unlock()
			writeRestError(w, invalidToken(pg.token.String()))
			return
		}
	}
	win := pickPage(len(sids), keep, pg.size, pg.token, anchor)
	list := make([]apiMedia, 0, len(win.items))
	for _, i := range win.items {
		list = append(list, e.media[sids[i]].api())
	}
	prev, next := win.links(func(i int) string { return sids[i] })
	e.mu.Unlock()

	writeJSON(w, http.StatusOK, listMediaPage{MediaList: list, page2010: newPage2010(r.URL.Path, filters, pg, len(list), prev, next)})
}

// listMediaPage is a page of a message's Media list.
type listMediaPage struct {
	MediaList []apiMedia `json:"media_list"`
	page2010
}

// messageMedia is GET
// /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}.json,
// the Media resource, and the same path without ".json", its content.
func (e *Engine) messageMedia(w http.ResponseWriter, r *http.Request) {
	if !checkAccountPath(w, r) {
		return
	}
	file := r.PathValue("file")
	sid, asJSON := strings.CutSuffix(file, ".json")
	e.mu.Lock()
	var md *media
	if m := e.restMessageOf(r); m != nil && (asJSON || !strings.Contains(file, ".")) && slices.Contains(m.mediaSIDs, sid) {
		md = e.media[sid]
	}
	if md == nil {
		e.mu.Unlock()
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	body := md.api()
	e.mu.Unlock()
	if !asJSON {
		serveMedia(w, r, md)
		return
	}
	writeJSON(w, http.StatusOK, body)
}
