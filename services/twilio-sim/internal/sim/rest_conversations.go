package sim

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/segments"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/webhook"
)

// Conversation states.
const (
	stateActive   = "active"
	stateInactive = "inactive"
	stateClosed   = "closed"
)

// closedConversation is the answer to changing a closed conversation. The
// code is the emulator's choice; Twilio's exact code is not documented.
func closedConversation(sid string) *restError {
	return badRequest(50438, "Conversation %s is closed and cannot be modified", sid)
}

func webhookEnabled(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("X-Twilio-Webhook-Enabled"), "true")
}

// service resolves the Conversations service a request addresses. Called
// with e.mu held.
func (e *Engine) service(r *http.Request) (*account, *simapi.ConversationsService, *restError) {
	acct := e.accounts[accountOf(r)]
	if acct == nil {
		return nil, nil, &restError{status: http.StatusUnauthorized, code: 20003, msg: "Authenticate"}
	}
	var svc *simapi.ConversationsService
	if serviceScoped(r) {
		svc = acct.convServices[r.PathValue("ChatServiceSid")]
	} else {
		svc = acct.defaultConvService()
	}
	if svc == nil {
		return nil, nil, notFound(r.URL.Path)
	}
	return acct, svc, nil
}

// conversationOf finds a conversation by SID or unique name. Called with e.mu held.
func (e *Engine) conversationOf(r *http.Request, param string) (*conversation, *restError) {
	acct, svc, rerr := e.service(r)
	if rerr != nil {
		return nil, rerr
	}
	id := r.PathValue(param)
	if c := e.conversations[id]; c != nil && c.accountSID == acct.AccountSID && c.serviceSID == svc.SID {
		return c, nil
	}
	for _, c := range e.conversations {
		if c.uniqueName != "" && c.uniqueName == id && c.accountSID == acct.AccountSID && c.serviceSID == svc.SID {
			return c, nil
		}
	}
	return nil, notFound(r.URL.Path)
}

// messageAddedParams are the onMessageAdded parameters. Called with e.mu held.
func (e *Engine) messageAddedParams(c *conversation, m *message, source string) url.Values {
	p := convParams(c, "onMessageAdded", source)
	p.Set("MessageSid", m.sid)
	p.Set("Index", strconv.Itoa(m.index))
	p.Set("Author", m.author)
	if m.participantSID != "" {
		p.Set("ParticipantSid", m.participantSID)
	}
	if m.hasBody {
		p.Set("Body", m.body)
	}
	p.Set("Attributes", m.attributes)
	p.Set("DateCreated", m.created.Format(iso8601ms))
	if c.mgSID != "" {
		p.Set("MessagingServiceSid", c.mgSID)
	}
	if len(m.mediaSIDs) > 0 {
		type item struct {
			Sid         string `json:"Sid"`
			Filename    string `json:"Filename"`
			ContentType string `json:"ContentType"`
			Size        int    `json:"Size"`
			Category    string `json:"Category"`
		}
		var items []item
		for _, sid := range m.mediaSIDs {
			if md := e.media[sid]; md != nil {
				items = append(items, item{Sid: md.sid, Filename: md.filename, ContentType: md.contentType, Size: md.size, Category: "media"})
			}
		}
		b, _ := json.Marshal(items)
		p.Set("Media", string(b))
	}
	if m.contentSID != "" {
		p.Set("ContentSid", m.contentSID)
	}
	return p
}

// createConvMessage adds a message to a conversation and sends it to the
// conversation's SMS/WhatsApp participant.
func (e *Engine) createConvMessage(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(r); err != nil {
		writeTwilioError(w, http.StatusBadRequest, 20001, err.Error())
		return
	}
	f := r.PostForm
	author := f.Get("Author")
	if author == "" {
		author = "system"
	}
	body, mediaSIDs := f.Get("Body"), f["MediaSid"]
	contentSID, contentVars := f.Get("ContentSid"), f.Get("ContentVariables")
	attrs := f.Get("Attributes")
	if attrs == "" {
		attrs = "{}"
	}
	var rerr *restError
	switch {
	case utf8.RuneCountInString(body) > maxBody:
		rerr = badRequest(21617, "The message body exceeds the %d character limit.", maxBody)
	case !json.Valid([]byte(attrs)):
		rerr = badRequest(20001, "Attributes must be a valid JSON string")
	case contentSID != "" && !validSID("HX", contentSID):
		rerr = badRequest(20001, "ContentSid %s is invalid", contentSID)
	case contentVars != "" && !json.Valid([]byte(contentVars)):
		rerr = badRequest(21656, "The ContentVariables Parameter is invalid.")
	case body == "" && len(mediaSIDs) == 0 && contentSID == "":
		rerr = badRequest(21602, "Message body is required.")
	}
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}

	e.mu.Lock()
	conv, rerr := e.conversationOf(r, "ConversationSid")
	if rerr == nil && conv.state == stateClosed {
		rerr = closedConversation(conv.sid)
	}
	for _, sid := range mediaSIDs {
		if md := e.media[sid]; rerr == nil && (md == nil || md.accountSID != accountOf(r) || md.serviceSID == "") {
			rerr = badRequest(20404, "Media %s was not found; upload it to the Media Content Service first", sid)
		}
	}
	if rerr != nil {
		e.mu.Unlock()
		writeRestError(w, rerr)
		return
	}
	if contentSID != "" {
		// Content templates replace Body and MediaSid.
		body, mediaSIDs = "", nil
	}
	now := e.clock.now()
	m := &message{
		sid:             newSID("IM"),
		path:            pathConversations,
		direction:       "outbound-api",
		accountSID:      conv.accountSID,
		author:          author,
		body:            body,
		hasBody:         body != "",
		mediaSIDs:       mediaSIDs,
		contentSID:      contentSID,
		contentVar:      contentVars,
		mgSID:           conv.mgSID,
		chatServiceSID:  conv.serviceSID,
		conversationSID: conv.sid,
		index:           conv.nextIndex,
		attributes:      attrs,
		seg:             segments.Count(body),
		created:         now,
		updated:         now,
	}
	conv.nextIndex++
	for _, p := range conv.participants {
		if (p.identity != "" && p.identity == author) || (p.address != "" && p.address == author) {
			m.participantSID = p.sid
		}
	}
	conv.messages = append(conv.messages, m)
	e.addMessage(m)

	var pl plan
	cust := conv.customer()
	deliver := cust != nil && cust.sid != m.participantSID
	if deliver {
		m.from, m.to, m.fromChosen = cust.proxyAddress, cust.address, true
		m.status = "queued"
		m.channelSID = newSID("SM")
		if len(mediaSIDs) > 0 {
			m.channelSID = newSID("MM")
		}
		for _, sid := range mediaSIDs {
			md := e.media[sid]
			m.media = append(m.media, simapi.Media{URL: simBase(r) + "/sim/media/" + sid, ContentType: md.contentType, Filename: md.filename, Size: md.size})
		}
		m.receipt = &receipt{sid: newSID("DY"), participantSID: cust.sid, created: now, updated: now}
		e.outbound = append(e.outbound, m)
		pl = e.takePlan(cust.address)
		acct := e.accounts[conv.accountSID]
		scope := cust.proxyAddress
		if s := acct.serviceOf[cust.proxyAddress]; s != "" {
			scope = s
		}
		ch, _ := channelOf(cust.address)
		switch {
		case ch == "sms" && e.optOuts[optKey{scope, cust.address}]:
			pl = pl.failWith(21610, "failed")
		case ch == "whatsapp" && contentSID == "" && !e.inWindow(cust.address, cust.proxyAddress, now):
			pl = pl.failWith(63016, "failed")
		}
	}
	var ev webhook.Event
	fire := false
	if webhookEnabled(r) {
		ev, fire = e.convEvent(conv, "onMessageAdded", m.sid, e.messageAddedParams(conv, m, "API"))
	}
	resp := e.convMessageJSON(m, serviceScoped(r))
	e.mu.Unlock()

	writeJSON(w, http.StatusCreated, resp)
	e.goBackground(func(ctx context.Context) {
		if fire {
			e.hooks.Deliver(ctx, ev)
		}
		if deliver {
			e.runConversation(ctx, m, pl)
		}
	})
}

// simBase is the emulator's own base URL as the caller reached it.
func simBase(r *http.Request) string {
	return "http://" + r.Host
}

func (e *Engine) fetchConvMessage(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	conv, rerr := e.conversationOf(r, "ConversationSid")
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	m := e.messages[r.PathValue("Sid")]
	if m == nil || m.conversationSID != conv.sid {
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, e.convMessageJSON(m, serviceScoped(r)))
}

func listMeta(r *http.Request, key string, pageSize int) map[string]any {
	u := "https://conversations.twilio.com" + r.URL.Path + "?PageSize=" + strconv.Itoa(pageSize) + "&Page=0"
	return map[string]any{
		"page": 0, "page_size": pageSize, "first_page_url": u, "previous_page_url": nil,
		"url": u, "next_page_url": nil, "key": key,
	}
}

// conversationsHost is where Twilio serves Conversations.
const conversationsHost = "conversations.twilio.com"

// listConvMessages is GET …/Conversations/{ConversationSid}/Messages: by
// index, Order asc (default) or desc, in pages of PageSize (up to 100).
func (e *Engine) listConvMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pg, rerr := pagingOf(q, 100)
	order := strings.ToLower(q.Get("Order"))
	if rerr == nil && order != "" && order != "asc" && order != "desc" {
		rerr = badRequest(20001, "Order %q must be asc or desc", q.Get("Order"))
	}
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	desc := order == "desc"
	e.mu.Lock()
	defer e.mu.Unlock()
	conv, rerr := e.conversationOf(r, "ConversationSid")
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	msgs := conv.messages
	n := len(msgs)
	at := func(i int) *message {
		if desc {
			return msgs[n-1-i]
		}
		return msgs[i]
	}
	var named *message
	if m := e.messages[pg.token.sid]; m != nil && m.conversationSID == conv.sid {
		named = m
	}
	anchor, ok := tokenAnchor(pg.token.set, msgs, named, func(m *message) int { return m.index }, desc)
	if !ok {
		writeRestError(w, invalidToken(pg.token.String()))
		return
	}
	win := pickPage(n, func(int) bool { return true }, pg.size, pg.token, anchor)
	list := make([]convMessage, 0, len(win.items))
	for _, i := range win.items {
		list = append(list, e.convMessageJSON(at(i), serviceScoped(r)))
	}
	prev, next := win.links(func(i int) string { return at(i).sid })
	meta := v1Meta(r, conversationsHost, "messages", []string{"Order", order}, pg, prev, next)
	writeJSON(w, http.StatusOK, struct {
		Messages []convMessage `json:"messages"`
		Meta     pageMeta      `json:"meta"`
	}{list, meta})
}

// listConversations is GET /v1/[Services/{ChatServiceSid}/]Conversations:
// the service's conversations, oldest first, or newest first when
// StartDate or EndDate is given, filtered by State and by creation date, in
// pages of PageSize (up to 100).
//
// StartDate and EndDate are inclusive. A date (YYYY-MM-DD, UTC) covers its
// whole day: StartDate from 00:00:00, EndDate to 23:59:59. A timestamp
// (ISO 8601, such as 2024-05-01T00:00:00Z) is taken to the second.
func (e *Engine) listConversations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pg, rerr := pagingOf(q, 100)
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	var created span
	for _, k := range []string{"StartDate", "EndDate"} {
		v := q.Get(k)
		if v == "" {
			continue
		}
		t, day, err := parseListDate(v)
		if err != nil {
			writeRestError(w, badRequest(20001, "Invalid value for %s: %v", k, err))
			return
		}
		switch {
		case k == "StartDate":
			created = created.narrow(t.Truncate(time.Second), time.Time{})
		case day:
			created = created.narrow(time.Time{}, t.AddDate(0, 0, 1))
		default:
			created = created.narrow(time.Time{}, t.Truncate(time.Second).Add(time.Second))
		}
	}
	state := q.Get("State")
	switch state {
	case "", stateActive, stateInactive, stateClosed, "initializing":
	default:
		writeRestError(w, badRequest(20001, "State %q must be initializing, active, inactive or closed", state))
		return
	}
	desc := q.Get("StartDate") != "" || q.Get("EndDate") != ""
	filters := []string{"StartDate", q.Get("StartDate"), "EndDate", q.Get("EndDate"), "State", state}

	e.mu.Lock()
	defer e.mu.Unlock()
	acct, svc, rerr := e.service(r)
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	convs := e.convList[acct.AccountSID]
	n := len(convs)
	at := func(i int) *conversation {
		if desc {
			return convs[n-1-i]
		}
		return convs[i]
	}
	keep := func(i int) bool {
		c := at(i)
		return c.serviceSID == svc.SID && (state == "" || c.state == state) && created.has(c.created.Truncate(time.Second))
	}
	var named *conversation
	if c := e.conversations[pg.token.sid]; c != nil && c.accountSID == acct.AccountSID && c.serviceSID == svc.SID {
		named = c
	}
	anchor, ok := tokenAnchor(pg.token.set, convs, named, func(c *conversation) uint64 { return c.seq }, desc)
	if !ok {
		writeRestError(w, invalidToken(pg.token.String()))
		return
	}
	win := pickPage(n, keep, pg.size, pg.token, anchor)
	list := make([]convJSON, 0, len(win.items))
	for _, i := range win.items {
		list = append(list, at(i).json(serviceScoped(r)))
	}
	prev, next := win.links(func(i int) string { return at(i).sid })
	meta := v1Meta(r, conversationsHost, "conversations", filters, pg, prev, next)
	writeJSON(w, http.StatusOK, struct {
		Conversations []convJSON `json:"conversations"`
		Meta          pageMeta   `json:"meta"`
	}{list, meta})
}

func (e *Engine) listReceipts(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	conv, rerr := e.conversationOf(r, "ConversationSid")
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	m := e.messages[r.PathValue("MessageSid")]
	if m == nil || m.conversationSID != conv.sid {
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	list := []receiptJSON{}
	if m.receipt != nil && m.receipt.status != "" {
		list = append(list, m.receiptJSON(serviceScoped(r)))
	}
	writeJSON(w, http.StatusOK, map[string]any{"delivery_receipts": list, "meta": listMeta(r, "delivery_receipts", 50)})
}

func (e *Engine) fetchConversation(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	conv, rerr := e.conversationOf(r, "Sid")
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	writeJSON(w, http.StatusOK, conv.json(serviceScoped(r)))
}

// createConversation is POST /v1/[Services/{IS}/]Conversations.
func (e *Engine) createConversation(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(r); err != nil {
		writeTwilioError(w, http.StatusBadRequest, 20001, err.Error())
		return
	}
	f := r.PostForm
	attrs := f.Get("Attributes")
	if attrs == "" {
		attrs = "{}"
	}
	state := f.Get("State")
	if state == "" {
		state = stateActive
	}
	if !json.Valid([]byte(attrs)) {
		writeRestError(w, badRequest(20001, "Attributes must be a valid JSON string"))
		return
	}
	if state != stateActive && state != stateInactive && state != stateClosed {
		writeRestError(w, badRequest(20001, "State %q is invalid", state))
		return
	}
	mg := f.Get("MessagingServiceSid")

	e.mu.Lock()
	acct, svc, rerr := e.service(r)
	if rerr == nil && mg != "" && acct.msgServices[mg] == nil {
		rerr = badRequest(21705, "The Messaging Service Sid %s is invalid.", mg)
	}
	if un := f.Get("UniqueName"); rerr == nil && un != "" {
		for _, c := range e.conversations {
			if c.serviceSID == svc.SID && c.uniqueName == un {
				rerr = &restError{status: http.StatusConflict, code: 50353, msg: fmt.Sprintf("Conversation with provided unique name %s already exists", un)}
			}
		}
	}
	if rerr != nil {
		e.mu.Unlock()
		writeRestError(w, rerr)
		return
	}
	if mg == "" {
		mg = svc.MessagingServiceSID
	}
	now := e.clock.now()
	conv := &conversation{
		sid: newSID("CH"), accountSID: acct.AccountSID, serviceSID: svc.SID, mgSID: mg,
		friendlyName: f.Get("FriendlyName"), uniqueName: f.Get("UniqueName"), attributes: attrs,
		state: state, created: now, updated: now,
	}
	e.addConversation(conv)
	var ev webhook.Event
	fire := false
	if webhookEnabled(r) {
		ev, fire = e.convEvent(conv, "onConversationAdded", "", e.conversationAddedParams(conv, nil, "API"))
	}
	resp := conv.json(serviceScoped(r))
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, resp)
	if fire {
		e.goBackground(func(ctx context.Context) { e.hooks.Deliver(ctx, ev) })
	}
}

// conversationAddedParams are the onConversationAdded parameters; p is the
// customer participant of an autocreated conversation. Called with e.mu held.
func (e *Engine) conversationAddedParams(c *conversation, p *participant, source string) url.Values {
	v := convParams(c, "onConversationAdded", source)
	if c.friendlyName != "" {
		v.Set("FriendlyName", c.friendlyName)
	}
	if c.uniqueName != "" {
		v.Set("UniqueName", c.uniqueName)
	}
	v.Set("Attributes", c.attributes)
	v.Set("State", c.state)
	v.Set("DateCreated", c.created.Format(iso8601ms))
	if c.mgSID != "" {
		v.Set("MessagingServiceSid", c.mgSID)
	}
	if p != nil {
		v.Set("MessagingBinding.Address", p.address)
		v.Set("MessagingBinding.ProxyAddress", p.proxyAddress)
	}
	return v
}

// participantAddedParams are the onParticipantAdded parameters.
func participantAddedParams(c *conversation, p *participant, source string) url.Values {
	v := convParams(c, "onParticipantAdded", source)
	v.Set("ParticipantSid", p.sid)
	if p.identity != "" {
		v.Set("Identity", p.identity)
	}
	if p.address != "" {
		v.Set("MessagingBinding.Address", p.address)
		v.Set("MessagingBinding.ProxyAddress", p.proxyAddress)
	}
	v.Set("RoleSid", p.roleSID)
	v.Set("Attributes", p.attributes)
	v.Set("DateCreated", p.created.Format(iso8601ms))
	return v
}

// updateConversation is POST /v1/[Services/{IS}/]Conversations/{Sid}:
// renames, attributes and state changes. Closing releases the number pair.
func (e *Engine) updateConversation(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(r); err != nil {
		writeTwilioError(w, http.StatusBadRequest, 20001, err.Error())
		return
	}
	f := r.PostForm
	state := f.Get("State")
	if state != "" && state != stateActive && state != stateInactive && state != stateClosed {
		writeRestError(w, badRequest(20001, "State %q is invalid", state))
		return
	}
	if a := f.Get("Attributes"); a != "" && !json.Valid([]byte(a)) {
		writeRestError(w, badRequest(20001, "Attributes must be a valid JSON string"))
		return
	}

	e.mu.Lock()
	conv, rerr := e.conversationOf(r, "Sid")
	if rerr == nil && conv.state == stateClosed && len(f) > 0 {
		rerr = closedConversation(conv.sid)
	}
	if mg := f.Get("MessagingServiceSid"); rerr == nil && mg != "" && e.accounts[conv.accountSID].msgServices[mg] == nil {
		rerr = badRequest(21705, "The Messaging Service Sid %s is invalid.", mg)
	}
	if rerr != nil {
		e.mu.Unlock()
		writeRestError(w, rerr)
		return
	}
	if f.Has("FriendlyName") {
		conv.friendlyName = f.Get("FriendlyName")
	}
	if f.Has("UniqueName") {
		conv.uniqueName = f.Get("UniqueName")
	}
	if a := f.Get("Attributes"); a != "" {
		conv.attributes = a
	}
	if mg := f.Get("MessagingServiceSid"); mg != "" {
		conv.mgSID = mg
	}
	conv.updated = e.clock.now()
	var events []webhook.Event
	if state != "" && state != conv.state {
		if ev, ok := e.setState(conv, state, "API", "API"); ok && webhookEnabled(r) {
			events = append(events, ev)
		}
	}
	resp := conv.json(serviceScoped(r))
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
	if len(events) > 0 {
		e.goBackground(func(ctx context.Context) {
			for _, ev := range events {
				e.hooks.Deliver(ctx, ev)
			}
		})
	}
}

// setState changes a conversation's state, releasing its number pairs when
// it closes, and returns the onConversationStateUpdated event. Called with
// e.mu held.
func (e *Engine) setState(c *conversation, state, reason, source string) (webhook.Event, bool) {
	from := c.state
	c.state = state
	c.updated = e.clock.now()
	if state == stateClosed {
		for k, v := range e.pairs {
			if v == c {
				delete(e.pairs, k)
			}
		}
	}
	p := convParams(c, "onConversationStateUpdated", source)
	p.Set("StateFrom", from)
	p.Set("StateTo", state)
	p.Set("Reason", reason)
	p.Set("DateCreated", c.created.Format(iso8601ms))
	p.Set("DateUpdated", c.updated.Format(iso8601ms))
	if c.mgSID != "" {
		p.Set("MessagingServiceSid", c.mgSID)
	}
	return e.convEvent(c, "onConversationStateUpdated", "", p)
}

// createParticipant is POST .../Conversations/{ConversationSid}/Participants.
func (e *Engine) createParticipant(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(r); err != nil {
		writeTwilioError(w, http.StatusBadRequest, 20001, err.Error())
		return
	}
	f := r.PostForm
	identity := f.Get("Identity")
	address, proxy := f.Get("MessagingBinding.Address"), f.Get("MessagingBinding.ProxyAddress")
	attrs := f.Get("Attributes")
	if attrs == "" {
		attrs = "{}"
	}
	var rerr *restError
	switch {
	case identity == "" && address == "":
		rerr = badRequest(50400, "Either Identity or MessagingBinding.Address is required")
	case identity != "" && address != "":
		rerr = badRequest(50400, "Identity and MessagingBinding.Address cannot both be set")
	case address != "" && !validAddress(address):
		rerr = badRequest(50407, "Invalid messaging binding address %s", address)
	case address != "" && proxy == "":
		rerr = badRequest(50408, "MessagingBinding.ProxyAddress is required with MessagingBinding.Address")
	case address != "" && address == proxy:
		rerr = badRequest(50409, "Participant address and proxy address must differ")
	case !json.Valid([]byte(attrs)):
		rerr = badRequest(20001, "Attributes must be a valid JSON string")
	}
	if rerr == nil && address != "" {
		addrChannel, _ := channelOf(address)
		proxyChannel, _ := channelOf(proxy)
		if addrChannel != proxyChannel {
			rerr = badRequest(50414, "Participant address %s and proxy address %s are on different channels", address, proxy)
		}
	}
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}

	e.mu.Lock()
	conv, rerr := e.conversationOf(r, "ConversationSid")
	if rerr == nil && conv.state == stateClosed {
		rerr = closedConversation(conv.sid)
	}
	if rerr == nil && address != "" {
		if e.accounts[conv.accountSID].numbers[proxy] == nil {
			rerr = badRequest(50408, "Invalid messaging binding proxy address %s", proxy)
		} else if other := e.pairs[pair{address, proxy}]; other == conv {
			rerr = &restError{status: http.StatusConflict, code: 50437, msg: "Participant with this address and proxy address is already in the conversation"}
		} else if other != nil {
			rerr = &restError{status: http.StatusConflict, code: 50416, msg: fmt.Sprintf("A binding for this participant and proxy address already exists in Conversation %s", other.sid)}
		}
	}
	if rerr == nil && identity != "" {
		for _, p := range conv.participants {
			if p.identity == identity {
				rerr = &restError{status: http.StatusConflict, code: 50433, msg: "Participant already exists"}
			}
		}
	}
	if rerr != nil {
		e.mu.Unlock()
		writeRestError(w, rerr)
		return
	}
	now := e.clock.now()
	role := f.Get("RoleSid")
	if role == "" {
		role = roleSID(conv.serviceSID)
	}
	p := &participant{sid: newSID("MB"), identity: identity, address: address, proxyAddress: proxy, roleSID: role, attributes: attrs, created: now, updated: now}
	conv.participants = append(conv.participants, p)
	if address != "" {
		e.pairs[pair{address, proxy}] = conv
	}
	var ev webhook.Event
	fire := false
	if webhookEnabled(r) {
		ev, fire = e.convEvent(conv, "onParticipantAdded", "", participantAddedParams(conv, p, "API"))
	}
	resp := p.json(conv, serviceScoped(r))
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, resp)
	if fire {
		e.goBackground(func(ctx context.Context) { e.hooks.Deliver(ctx, ev) })
	}
}

// roleSID is the service's default participant role, stable per service.
func roleSID(serviceSID string) string {
	return "RL" + strings.ToLower(serviceSID[2:])
}

func (e *Engine) listParticipants(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	conv, rerr := e.conversationOf(r, "ConversationSid")
	if rerr != nil {
		writeRestError(w, rerr)
		return
	}
	list := []participantJSON{}
	for _, p := range conv.participants {
		list = append(list, p.json(conv, serviceScoped(r)))
	}
	writeJSON(w, http.StatusOK, map[string]any{"participants": list, "meta": listMeta(r, "participants", 50)})
}

type mediaJSON struct {
	SID               string            `json:"sid"`
	AccountSID        string            `json:"account_sid"`
	ServiceSID        string            `json:"service_sid"`
	DateCreated       string            `json:"date_created"`
	DateUploadUpdated string            `json:"date_upload_updated"`
	DateUpdated       string            `json:"date_updated"`
	Links             map[string]string `json:"links"`
	Size              int               `json:"size"`
	ContentType       string            `json:"content_type"`
	Filename          *string           `json:"filename"`
	Author            string            `json:"author"`
	Category          string            `json:"category"`
	MessageSID        *string           `json:"message_sid"`
	ChannelSID        *string           `json:"channel_sid"`
	URL               string            `json:"url"`
}

func (md *media) json(base string) mediaJSON {
	path := fmt.Sprintf("/v1/Services/%s/Media/%s", md.serviceSID, md.sid)
	direct := md.url
	if direct == "" || md.data != nil {
		direct = base + "/sim/media/" + md.sid
	}
	return mediaJSON{
		SID: md.sid, AccountSID: md.accountSID, ServiceSID: md.serviceSID,
		DateCreated: md.created.Format(iso8601), DateUploadUpdated: md.created.Format(iso8601), DateUpdated: md.created.Format(iso8601),
		Links: map[string]string{"content": path + "/Content", "content_direct_temporary": direct},
		Size:  md.size, ContentType: md.contentType, Filename: strOrNil(md.filename),
		Author: "system", Category: "media", URL: path,
	}
}

// uploadMedia is the Media Content Service upload: a raw body with its
// Content-Type, or a multipart form with one file.
func (e *Engine) uploadMedia(w http.ResponseWriter, r *http.Request) {
	ct := r.Header.Get("Content-Type")
	var data []byte
	var filename string
	var err error
	if mt, params, perr := mime.ParseMediaType(ct); perr == nil && strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(http.MaxBytesReader(nil, r.Body, 16<<20), params["boundary"])
		part, perr := mr.NextPart()
		if perr != nil {
			writeTwilioError(w, http.StatusBadRequest, 20001, fmt.Sprintf("read multipart upload: %v", perr))
			return
		}
		filename = part.FileName()
		ct = part.Header.Get("Content-Type")
		data, err = io.ReadAll(part)
	} else {
		data, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, 16<<20))
		if _, p, perr := mime.ParseMediaType(r.Header.Get("Content-Disposition")); perr == nil {
			filename = p["filename"]
		}
	}
	if err != nil {
		writeTwilioError(w, http.StatusBadRequest, 20001, fmt.Sprintf("read upload: %v", err))
		return
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	e.mu.Lock()
	acct := e.accounts[accountOf(r)]
	svcSID := r.PathValue("ChatServiceSid")
	if acct == nil || acct.convServices[svcSID] == nil {
		e.mu.Unlock()
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	md := &media{sid: newSID("ME"), accountSID: acct.AccountSID, serviceSID: svcSID, contentType: ct, filename: filename, size: len(data), data: data, created: e.clock.now()}
	e.media[md.sid] = md
	resp := md.json(simBase(r))
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, resp)
}

func (e *Engine) mediaOf(r *http.Request) *media {
	e.mu.Lock()
	defer e.mu.Unlock()
	md := e.media[r.PathValue("Sid")]
	if md == nil || md.accountSID != accountOf(r) || md.serviceSID != r.PathValue("ChatServiceSid") {
		return nil
	}
	return md
}

func (e *Engine) fetchMedia(w http.ResponseWriter, r *http.Request) {
	md := e.mediaOf(r)
	if md == nil {
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, md.json(simBase(r)))
}

func (e *Engine) mediaContent(w http.ResponseWriter, r *http.Request) {
	md := e.mediaOf(r)
	if md == nil {
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	serveMedia(w, r, md)
}

// serveMedia answers with uploaded bytes, or redirects to where a
// customer's media lives.
func serveMedia(w http.ResponseWriter, r *http.Request, md *media) {
	if md.data == nil && md.url != "" {
		http.Redirect(w, r, md.url, http.StatusTemporaryRedirect)
		return
	}
	w.Header().Set("Content-Type", md.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(md.data)))
	_, _ = w.Write(md.data)
}

// tokenAnchor is where a page token's item sits in items (sorted by key),
// counted from the end when the list is read descending; 0 without a
// token. ok is false when the token names no item of the list (named is
// nil, or not where its key says).
func tokenAnchor[T any, K cmp.Ordered](set bool, items []*T, named *T, key func(*T) K, desc bool) (int, bool) {
	if !set {
		return 0, true
	}
	if named == nil {
		return 0, false
	}
	h, ok := slices.BinarySearchFunc(items, key(named), func(x *T, k K) int { return cmp.Compare(key(x), k) })
	if !ok || items[h] != named {
		return 0, false
	}
	if desc {
		return len(items) - 1 - h, true
	}
	return h, true
}
