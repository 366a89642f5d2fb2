package sim

import (
	"context"
	"encoding/xml"
	"errors"
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
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/webhook"
)

// Opt-out keywords Twilio handles by default (single word, any case).
var (
	stopWords  = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
	startWords = []string{"START", "YES", "UNSTOP"}
	helpWords  = []string{"HELP", "INFO"}
)

// Twilio's default auto-replies to keywords.
var autoReplies = map[string]string{
	"STOP":  "You have successfully been unsubscribed. You will not receive any more messages from this number. Reply START to resubscribe.",
	"START": "You have successfully been re-subscribed to messages from this number. Reply HELP for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
	"HELP":  "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}

// keyword classifies a body as STOP, START, HELP or nothing.
func keyword(body string) string {
	w := strings.ToUpper(strings.TrimSpace(body))
	switch {
	case slices.Contains(stopWords, w):
		return "STOP"
	case slices.Contains(startWords, w):
		return "START"
	case slices.Contains(helpWords, w):
		return "HELP"
	}
	return ""
}

// countryOf guesses the ISO country of an E.164 number from its calling
// code, as Twilio's geo fields report it; empty when unknown.
func countryOf(number string) string {
	codes := []struct{ prefix, country string }{
		{"+1", "US"}, {"+44", "GB"}, {"+49", "DE"}, {"+33", "FR"}, {"+41", "CH"}, {"+43", "AT"},
		{"+34", "ES"}, {"+39", "IT"}, {"+31", "NL"}, {"+32", "BE"}, {"+46", "SE"}, {"+47", "NO"},
		{"+45", "DK"}, {"+353", "IE"}, {"+351", "PT"}, {"+48", "PL"}, {"+61", "AU"}, {"+64", "NZ"},
		{"+81", "JP"}, {"+65", "SG"}, {"+91", "IN"}, {"+55", "BR"}, {"+52", "MX"}, {"+27", "ZA"},
	}
	best := ""
	bestLen := 0
	for _, c := range codes {
		if strings.HasPrefix(number, c.prefix) && len(c.prefix) > bestLen {
			best, bestLen = c.country, len(c.prefix)
		}
	}
	return best
}

// messageType is WhatsApp's MessageType for a message.
func messageType(media []simapi.Media) string {
	if len(media) == 0 {
		return "text"
	}
	ct := media[0].ContentType
	switch {
	case strings.HasPrefix(ct, "image/"):
		return "image"
	case strings.HasPrefix(ct, "video/"):
		return "video"
	case strings.HasPrefix(ct, "audio/"):
		return "audio"
	}
	return "document"
}

type customerError struct {
	status int
	err    error
}

func (c *customerError) Error() string { return c.err.Error() }

func validateCustomerMessage(in *simapi.CustomerMessage) error {
	var errs []error
	if !validAddress(in.From) {
		errs = append(errs, fmt.Errorf("from %q is not E.164 or whatsapp:+E.164", in.From))
	}
	if !validAddress(in.To) {
		errs = append(errs, fmt.Errorf("to %q is not E.164 or whatsapp:+E.164", in.To))
	}
	fc, _ := channelOf(in.From)
	tc, _ := channelOf(in.To)
	if fc != tc {
		errs = append(errs, fmt.Errorf("from %q and to %q are on different channels", in.From, in.To))
	}
	if in.Body == "" && len(in.Media) == 0 {
		errs = append(errs, errors.New("a body or media is required"))
	}
	if utf8.RuneCountInString(in.Body) > maxBody {
		errs = append(errs, fmt.Errorf("body is longer than %d characters", maxBody))
	}
	if tc == "whatsapp" && len(in.Media) > 1 {
		errs = append(errs, errors.New("a WhatsApp message carries at most one media item"))
	}
	if len(in.Media) > maxMedia {
		errs = append(errs, fmt.Errorf("at most %d media items", maxMedia))
	}
	limit, limitName := maxMediaBytes, "5 MB for SMS/MMS"
	if tc == "whatsapp" {
		limit, limitName = maxWhatsAppMediaBytes, "16 MB for WhatsApp"
	}
	for i, m := range in.Media {
		switch {
		case m.URL == "" && len(m.Data) == 0:
			errs = append(errs, fmt.Errorf("media[%d] needs a url or data", i))
		case m.URL != "":
			if u, err := url.Parse(m.URL); err != nil || u.Host == "" {
				errs = append(errs, fmt.Errorf("media[%d].url %q is not an absolute url", i, m.URL))
			}
		}
		if len(m.Data) == 0 {
			continue
		}
		if m.ContentType == "" {
			errs = append(errs, fmt.Errorf("media[%d].content_type is required with data", i))
		}
		if len(m.Data) > limit {
			errs = append(errs, fmt.Errorf("media[%d].data is %d bytes, over the %s limit", i, len(m.Data), limitName))
		}
		if m.Size != 0 && m.Size != len(m.Data) {
			errs = append(errs, fmt.Errorf("media[%d].size %d does not match the %d bytes of data", i, m.Size, len(m.Data)))
		}
	}
	if in.Deliveries < 0 || in.Deliveries > 20 {
		errs = append(errs, fmt.Errorf("deliveries %d is outside 1..20", in.Deliveries))
	}
	return errors.Join(errs...)
}

// CustomerSend plays a customer's phone sending a message to a business
// number: it records the message, applies keyword opt-outs, and delivers the
// webhooks (Conversations or Programmable Messaging) before returning.
func (e *Engine) CustomerSend(ctx context.Context, in simapi.CustomerMessage) (simapi.CustomerMessageResult, error) {
	if err := validateCustomerMessage(&in); err != nil {
		return simapi.CustomerMessageResult{}, &customerError{http.StatusBadRequest, err}
	}
	if in.Deliveries == 0 {
		in.Deliveries = 1
	}
	for i := range in.Media {
		if in.Media[i].ContentType == "" {
			in.Media[i].ContentType = "application/octet-stream"
		}
		if len(in.Media[i].Data) == 0 {
			in.Media[i].Data = nil
		} else {
			in.Media[i].Size = len(in.Media[i].Data)
		}
	}

	e.mu.Lock()
	acct := e.numbers[in.To]
	if acct == nil {
		e.mu.Unlock()
		return simapi.CustomerMessageResult{}, &customerError{http.StatusNotFound, fmt.Errorf("no account owns number %s", in.To)}
	}
	num := acct.numbers[in.To]
	now := e.clock.now()
	channel, _ := channelOf(in.To)
	e.windows[pair{in.From, in.To}] = now
	mg := acct.serviceOf[in.To]
	if mg != "" {
		e.lastSender[pair{in.From, mg}] = in.To
	}

	var res simapi.CustomerMessageResult
	var replies []*message
	kw := ""
	if channel == "sms" {
		kw = keyword(in.Body)
	}
	if kw != "" {
		scope := in.To
		if mg != "" {
			scope = mg
		}
		switch kw {
		case "STOP":
			e.optOuts[optKey{scope, in.From}] = true
		case "START":
			delete(e.optOuts, optKey{scope, in.From})
		}
		res.OptOutType = kw
		replies = append(replies, e.autoReply(acct, in.To, in.From, autoReplies[kw], now))
	}
	advanced := mg != "" && acct.msgServices[mg].AdvancedOptOut

	var events []webhook.Event
	msgEvent := -1
	conv := e.pairs[pair{in.From, in.To}]
	if conv != nil || num.ConversationsServiceSID != "" {
		res.Path = pathConversations
		if conv == nil {
			conv = e.autocreate(acct, num, in.From, now)
			cust := conv.customer()
			if ev, ok := e.convEvent(conv, "onConversationAdded", "", e.conversationAddedParams(conv, cust, strings.ToUpper(channel))); ok {
				events = append(events, ev)
			}
			if ev, ok := e.convEvent(conv, "onParticipantAdded", "", participantAddedParams(conv, cust, strings.ToUpper(channel))); ok {
				events = append(events, ev)
			}
		}
		m := e.inboundConvMessage(conv, in, now)
		res.MessageSID, res.ConversationSID, res.ParticipantSID = m.sid, conv.sid, m.participantSID
		if ev, ok := e.convEvent(conv, "onMessageAdded", m.sid, e.messageAddedParams(conv, m, strings.ToUpper(channel))); ok {
			msgEvent = len(events)
			events = append(events, ev)
		}
	} else {
		res.Path = pathMessaging
		m := e.inboundMessage(acct, in, mg, now)
		res.MessageSID = m.sid
		ev, ok := e.messagingEvent(acct, num, m, in, mg, kw, advanced)
		if ok {
			msgEvent = len(events)
			events = append(events, ev)
		}
	}
	e.mu.Unlock()

	for _, m := range replies {
		res.Replies = append(res.Replies, m.sid)
	}
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	if in.OutOfOrder {
		slices.Reverse(order)
	}
	for _, i := range order {
		ev := events[i]
		var sum simapi.WebhookSummary
		var last webhook.Outcome
		next := 0
		for d := 0; d < in.Deliveries; d++ {
			ev.FirstRetryCount = next
			out := e.hooks.Deliver(ctx, ev)
			next = out.NextRetryCount
			attempts := sum.Attempts + out.Attempts
			sum = out.Summary(ev.Event)
			sum.Attempts = attempts
			last = out
		}
		res.Events = append(res.Events, sum)
		if i == msgEvent {
			s := sum
			res.Webhook = &s
			if ev.Kind == webhook.KindMessaging {
				body, ctype := last.Body, last.ContentType
				if !last.OK() && last.FallbackStatus >= 200 && last.FallbackStatus < 300 {
					body, ctype = last.FallbackBody, last.FallbackType
				}
				res.Replies = append(res.Replies, e.twimlReplies(acct.AccountSID, in.To, in.From, body, ctype)...)
			}
		}
	}
	if len(events) == 0 && res.Path == pathMessaging {
		res.Path = "none"
	}
	e.log.InfoContext(ctx, "customer message", "path", res.Path, "message_sid", res.MessageSID, "events", len(events))
	return res, nil
}

// autocreate opens a conversation for a customer writing to a number with
// autocreation on. Called with e.mu held.
func (e *Engine) autocreate(acct *account, num *simapi.PhoneNumber, customer string, now time.Time) *conversation {
	svc := acct.convServices[num.ConversationsServiceSID]
	mg := num.MessagingServiceSID
	if mg == "" {
		mg = acct.serviceOf[num.Address]
	}
	if mg == "" {
		mg = svc.MessagingServiceSID
	}
	conv := &conversation{
		sid: newSID("CH"), accountSID: acct.AccountSID, serviceSID: svc.SID, mgSID: mg,
		attributes: "{}", state: stateActive, created: now, updated: now,
	}
	p := &participant{
		sid: newSID("MB"), address: customer, proxyAddress: num.Address, roleSID: roleSID(svc.SID),
		attributes: "{}", created: now, updated: now,
	}
	conv.participants = append(conv.participants, p)
	e.addConversation(conv)
	e.pairs[pair{customer, num.Address}] = conv
	return conv
}

// inboundConvMessage adds a customer message to a conversation. Called with e.mu held.
func (e *Engine) inboundConvMessage(conv *conversation, in simapi.CustomerMessage, now time.Time) *message {
	cust := conv.customer()
	m := &message{
		sid: newSID("IM"), path: pathConversations, direction: "inbound", accountSID: conv.accountSID,
		from: in.From, to: in.To, author: in.From, body: in.Body, hasBody: in.Body != "",
		media: in.Media, mgSID: conv.mgSID, chatServiceSID: conv.serviceSID, conversationSID: conv.sid,
		index: conv.nextIndex, attributes: "{}", status: "received", seg: segments.Count(in.Body),
		created: now, updated: now, fromChosen: true,
	}
	for _, p := range conv.participants {
		if p.address == in.From {
			m.participantSID = p.sid
		}
	}
	if m.participantSID == "" && cust != nil {
		m.participantSID = cust.sid
	}
	conv.nextIndex++
	for _, md := range in.Media {
		x := &media{
			sid: newSID("ME"), accountSID: conv.accountSID, serviceSID: conv.serviceSID,
			contentType: md.ContentType, filename: md.Filename, size: md.Size, url: md.URL, data: md.Data, created: now,
		}
		e.media[x.sid] = x
		m.mediaSIDs = append(m.mediaSIDs, x.sid)
	}
	conv.messages = append(conv.messages, m)
	e.addMessage(m)
	return m
}

// inboundMessage records a Programmable Messaging inbound message. Called
// with e.mu held.
func (e *Engine) inboundMessage(acct *account, in simapi.CustomerMessage, mg string, now time.Time) *message {
	sid := newSID("SM")
	if len(in.Media) > 0 {
		sid = newSID("MM")
	}
	m := &message{
		sid: sid, path: pathMessaging, direction: "inbound", accountSID: acct.AccountSID,
		from: in.From, to: in.To, body: in.Body, hasBody: true, media: in.Media, mgSID: mg,
		status: "received", seg: segments.Count(in.Body), created: now, updated: now, sent: now, fromChosen: true,
	}
	e.addMessage(m)
	return m
}

// messagingEvent builds the Programmable Messaging webhook for an inbound
// message. Called with e.mu held.
func (e *Engine) messagingEvent(acct *account, num *simapi.PhoneNumber, m *message, in simapi.CustomerMessage, mg, kw string, advanced bool) (webhook.Event, bool) {
	target, method := num.SmsURL, num.SmsMethod
	fallback, fbMethod := num.SmsFallbackURL, num.SmsFallbackMethod
	if svc := acct.msgServices[mg]; svc != nil && svc.InboundURL != "" {
		target, method = svc.InboundURL, svc.InboundMethod
		fallback, fbMethod = svc.FallbackURL, svc.FallbackMethod
	}
	if target == "" {
		return webhook.Event{}, false
	}
	channel, fromNumber := channelOf(in.From)
	_, toNumber := channelOf(in.To)
	p := url.Values{}
	p.Set("MessageSid", m.sid)
	p.Set("SmsMessageSid", m.sid)
	p.Set("SmsSid", m.sid)
	p.Set("SmsStatus", "received")
	p.Set("AccountSid", acct.AccountSID)
	p.Set("From", in.From)
	p.Set("To", in.To)
	p.Set("Body", in.Body)
	p.Set("NumMedia", strconv.Itoa(len(in.Media)))
	p.Set("NumSegments", strconv.Itoa(m.seg.Segments))
	p.Set("ApiVersion", "2010-04-01")
	if mg != "" {
		p.Set("MessagingServiceSid", mg)
	}
	// Twilio's own URL of each attachment (the Media resource without
	// ".json"), not the one the customer's phone sent it from.
	for i, md := range in.Media {
		p.Set(fmt.Sprintf("MediaUrl%d", i), apiOrigin(acct)+mediaURI(acct.AccountSID, m.sid, m.mediaSIDs[i]))
		p.Set(fmt.Sprintf("MediaContentType%d", i), md.ContentType)
	}
	if channel == "whatsapp" {
		p.Set("NumSegments", "1")
		p.Set("ProfileName", in.ProfileName)
		p.Set("WaId", strings.TrimPrefix(fromNumber, "+"))
		p.Set("MessageType", messageType(in.Media))
		p.Set("ReferralNumMedia", "0")
	} else {
		p.Set("FromCountry", countryOf(fromNumber))
		p.Set("FromState", "")
		p.Set("FromCity", "")
		p.Set("FromZip", "")
		p.Set("ToCountry", countryOf(toNumber))
		p.Set("ToState", "")
		p.Set("ToCity", "")
		p.Set("ToZip", "")
	}
	if kw != "" && advanced {
		p.Set("OptOutType", kw)
	}
	return webhook.Event{
		Kind:           webhook.KindMessaging,
		Event:          "incoming",
		AccountSID:     acct.AccountSID,
		MessageSID:     m.sid,
		AuthToken:      acct.AuthToken,
		URL:            target,
		Method:         method,
		Params:         p,
		Token:          webhook.NewToken(),
		Timeout:        e.opts.MessagingTimeout,
		Retries:        e.opts.WebhookRetries,
		FallbackURL:    fallback,
		FallbackMethod: fbMethod,
	}, true
}

// autoReply records Twilio's keyword reply to the customer. Called with e.mu held.
func (e *Engine) autoReply(acct *account, from, to, body string, now time.Time) *message {
	m := &message{
		sid: newSID("SM"), path: pathAutoReply, direction: "outbound-reply", accountSID: acct.AccountSID,
		from: from, to: to, body: body, hasBody: true, status: "delivered", seg: segments.Count(body),
		created: now, updated: now, sent: now, fromChosen: true, mgSID: acct.serviceOf[from],
	}
	e.addMessage(m)
	e.outbound = append(e.outbound, m)
	return m
}

// twiml is the part of a TwiML answer the emulator acts on.
type twiml struct {
	XMLName  xml.Name `xml:"Response"`
	Messages []struct {
		Text  string   `xml:",chardata"`
		Body  string   `xml:"Body"`
		Media []string `xml:"Media"`
		To    string   `xml:"to,attr"`
		From  string   `xml:"from,attr"`
	} `xml:"Message"`
}

// twimlReplies sends the <Message> verbs of a webhook answer and returns
// their SIDs.
func (e *Engine) twimlReplies(acctSID, business, customer string, body []byte, contentType string) []string {
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" || (!strings.Contains(contentType, "xml") && !strings.HasPrefix(trimmed, "<")) {
		return nil
	}
	var doc twiml
	if err := xml.Unmarshal([]byte(trimmed), &doc); err != nil {
		e.log.Debug("webhook answer is not TwiML", "error", err)
		return nil
	}
	type send struct {
		m *message
		p plan
	}
	var sends []send
	e.mu.Lock()
	acct := e.accounts[acctSID]
	if acct == nil {
		e.mu.Unlock()
		return nil
	}
	for _, tm := range doc.Messages {
		text := strings.TrimSpace(tm.Body)
		if text == "" {
			text = strings.TrimSpace(tm.Text)
		}
		to, from := customer, business
		if tm.To != "" {
			to = tm.To
		}
		if tm.From != "" {
			from = tm.From
		}
		if text == "" && len(tm.Media) == 0 {
			continue
		}
		scope := from
		if s := acct.serviceOf[from]; s != "" {
			scope = s
		}
		if ch, _ := channelOf(to); ch == "sms" && e.optOuts[optKey{scope, to}] {
			continue // Twilio drops replies to opted-out recipients (21610)
		}
		now := e.clock.now()
		sid := newSID("SM")
		if len(tm.Media) > 0 {
			sid = newSID("MM")
		}
		m := &message{
			sid: sid, path: pathTwiML, direction: "outbound-reply", accountSID: acctSID,
			from: from, to: to, body: text, hasBody: text != "", status: "queued", seg: segments.Count(text),
			created: now, updated: now, fromChosen: true, mgSID: acct.serviceOf[from],
		}
		for _, u := range tm.Media {
			m.media = append(m.media, simapi.Media{URL: strings.TrimSpace(u)})
		}
		e.addMessage(m)
		e.outbound = append(e.outbound, m)
		p := e.takePlan(to)
		if ch, _ := channelOf(to); ch == "whatsapp" && !e.inWindow(to, from, now) {
			p = p.failWith(63016, "failed")
		}
		sends = append(sends, send{m, p})
	}
	e.mu.Unlock()
	var sids []string
	for _, s := range sends {
		sids = append(sids, s.m.sid)
		e.goBackground(func(ctx context.Context) { e.runMessaging(ctx, s.m, s.p) })
	}
	return sids
}
