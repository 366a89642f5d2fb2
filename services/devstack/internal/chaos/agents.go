package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// agent is a scripted agent: it accepts (or now and then declines) every
// offer, reads the customers' messages (frames and the transcripts of
// snapshots and assignments), answers some, terminates some sessions,
// drops its connection now and then, and reconnects whenever its
// connection breaks (its sessions replica died), sending again the
// replies not yet acknowledged with the same client_msg_id.
type agent struct {
	d     *driver
	email string
	rng   *rand.Rand // only in the reading goroutine

	ws   atomic.Pointer[websocket.Conn]
	next atomic.Int64

	mu      sync.Mutex
	active  map[string]bool        // sessions it holds
	pending map[string]request     // frame id → request
	unacked map[string]outgoing    // client_msg_id → reply not acknowledged yet
	early   map[string][]wsMessage // messages of chats not held yet
	// closed: chats it held that have ended. The console keeps an
	// ended chat on the desk until the agent dismisses it, and a
	// message.added that reaches it after the end is shown there.
	closed map[string]bool
	// stream and seq: where it stands in its numbered frames (only in
	// the reading goroutine); a reconnect resumes from there, as the
	// console does.
	stream string
	seq    uint64
	synced bool // this connection has its snapshot, or resumed
	// token: the console's sign-in, kept across reconnects as the
	// console keeps it (only in the reading goroutine); signed in again
	// when a socket is closed as unauthenticated (expired or revoked).
	token string
}

// closeUnauthenticated: the server closed the socket because its token
// no longer holds.
const closeUnauthenticated websocket.StatusCode = 4401

type request struct {
	kind    string // accept, decline, reply, terminate, presence, other
	session string
	msgID   string // client_msg_id of a reply
	offerID string // of an accept
	tries   int    // accepts sent for this offer, or presence.set sent
}

type outgoing struct {
	session string
	body    string
	seq     int64
}

type wsFrame struct {
	V      int             `json:"v"`
	Type   string          `json:"type"`
	ID     string          `json:"id,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Seq    uint64          `json:"seq,omitempty"`
	Stream string          `json:"stream,omitempty"`
}

type wsMessage struct {
	ID        string `json:"id"`
	Direction string `json:"direction"`
	Body      string `json:"body"`
}

type wsSession struct {
	SessionID string      `json:"session_id"`
	State     string      `json:"state"`
	Messages  []wsMessage `json:"messages"`
}

func (a *agent) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := a.session(ctx); err != nil && ctx.Err() == nil {
			a.d.count("agent reconnects")
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(200+a.d.jitter(800)) * time.Millisecond):
		}
	}
}

// session is one connection: sign in, read until it breaks.
func (a *agent) session(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if a.token == "" {
		tok, err := agentclient.Login(cctx, a.d.st.info.ConsoleURL, tenantID, a.email, agentPassword)
		if err != nil {
			return err
		}
		a.token = tok
		a.d.count("agent signs in")
	}
	tok := a.token
	ws, _, err := websocket.Dial(cctx, agentclient.WebsocketURL(a.d.st.info.ConsoleURL), nil)
	if err != nil {
		return err
	}
	ws.SetReadLimit(1 << 22)
	a.ws.Store(ws)
	defer ws.CloseNow()
	a.mu.Lock()
	clear(a.pending)
	a.mu.Unlock()
	a.synced = false
	auth := map[string]any{"token": tok}
	if a.stream != "" {
		auth["resume"] = map[string]any{"stream": a.stream, "after": a.seq}
	}
	if err := a.send(ctx, "auth", auth, request{kind: "other"}); err != nil {
		return err
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			a.trackHeld("socket closed: " + err.Error())
			if websocket.CloseStatus(err) == closeUnauthenticated {
				a.token = "" // expired or revoked: sign in again
			}
			return err
		}
		var f wsFrame
		if json.Unmarshal(data, &f) != nil {
			a.d.count("agent: unreadable frame")
			continue
		}
		switch {
		case f.Stream != "": // a snapshot
			a.stream, a.seq, a.synced = f.Stream, f.Seq, true
		case f.Seq == 0 || !a.synced:
			// Frames before the connection's snapshot are numbered in a
			// stream it does not know yet.
		case f.Seq > a.seq+1:
			a.d.count("agent: numbered frames skipped (a gap in its stream)")
			a.seq = f.Seq
		case f.Seq == a.seq+1:
			a.seq = f.Seq
		}
		a.handle(ctx, f)
		if !a.d.draining.Load() && a.rng.Float64() < a.d.dropProb {
			a.d.count("agent drops its connection (scripted)")
			return nil
		}
	}
}

func (a *agent) send(ctx context.Context, typ string, data any, r request) error {
	ws := a.ws.Load()
	id := fmt.Sprintf("c%d", a.next.Add(1))
	raw, _ := json.Marshal(data)
	b, _ := json.Marshal(wsFrame{V: 1, Type: typ, ID: id, Data: raw})
	a.mu.Lock()
	a.pending[id] = r
	a.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return ws.Write(wctx, websocket.MessageText, b)
}

// sendAsync writes without holding up the reading goroutine; a failed
// write shows as a broken connection to the reader.
func (a *agent) sendAsync(ctx context.Context, typ string, data any, r request) {
	go func() { _ = a.send(ctx, typ, data, r) }()
}

func (a *agent) handle(ctx context.Context, f wsFrame) {
	d := a.d
	switch f.Type {
	case "welcome":
		var w struct {
			Resumed bool `json:"resumed"`
		}
		_ = json.Unmarshal(f.Data, &w)
		if w.Resumed {
			a.synced = true
			// The frames it missed follow; its desk stays. What it sent
			// and never saw acknowledged goes again.
			d.count("agent reconnects: resumed (the frames it missed, no snapshot)")
			a.trackHeld("resumed")
			a.resendUnacked(ctx)
		}
		a.sendAsync(ctx, "presence.set", map[string]string{"presence": "available"}, request{kind: "presence", tries: 1})
	case "snapshot":
		var s struct {
			Offers []struct {
				OfferID string `json:"offer_id"`
			} `json:"offers"`
			Sessions []wsSession `json:"sessions"`
		}
		_ = json.Unmarshal(f.Data, &s)
		a.mu.Lock()
		dropped := make(map[string]bool, len(a.active))
		for id := range a.active {
			dropped[id] = true
		}
		clear(a.active)
		for _, ss := range s.Sessions {
			delete(dropped, ss.SessionID)
			if ss.State != "ended" {
				a.active[ss.SessionID] = true
			} else {
				a.closed[ss.SessionID] = true
			}
		}
		a.mu.Unlock()
		for id := range dropped {
			d.track(a, id, "snapshot WITHOUT it")
		}
		for _, ss := range s.Sessions {
			d.track(a, ss.SessionID, fmt.Sprintf("snapshot with it (%s, %d messages)", ss.State, len(ss.Messages)))
			d.assigned(a, ss.SessionID, ss.State)
			for _, m := range append(ss.Messages, a.takeEarly(ss.SessionID)...) {
				d.seen(ss.SessionID, m)
			}
		}
		a.mu.Lock()
		clear(a.early)
		a.mu.Unlock()
		a.resendUnacked(ctx)
		for _, o := range s.Offers {
			a.answerOffer(ctx, o.OfferID)
		}
	case "offer.created":
		var o struct {
			OfferID string `json:"offer_id"`
		}
		_ = json.Unmarshal(f.Data, &o)
		a.answerOffer(ctx, o.OfferID)
	case "session.assigned":
		var s wsSession
		_ = json.Unmarshal(f.Data, &s)
		a.mu.Lock()
		a.active[s.SessionID] = true
		n := len(a.active)
		a.mu.Unlock()
		if n > d.cfg.Capacity {
			// The agent's view only: an end whose frame was lost (its
			// sessions replica's connection dropped) stays in it.
			// Distribution's own events are what checkOffers judges.
			d.count("agent's view above capacity (an end's frame late or lost)")
		}
		d.track(a, s.SessionID, fmt.Sprintf("session.assigned (%s, %d messages)", s.State, len(s.Messages)))
		d.assigned(a, s.SessionID, s.State)
		for _, m := range append(s.Messages, a.takeEarly(s.SessionID)...) {
			d.seen(s.SessionID, m)
		}
		if d.draining.Load() {
			a.sendAsync(ctx, "session.terminate", map[string]string{"session_id": s.SessionID}, request{kind: "terminate", session: s.SessionID})
		}
	case "message.added":
		var m struct {
			SessionID string    `json:"session_id"`
			Message   wsMessage `json:"message"`
		}
		_ = json.Unmarshal(f.Data, &m)
		a.mu.Lock()
		held, closed := a.active[m.SessionID], a.closed[m.SessionID]
		if !held && !closed && len(a.early[m.SessionID]) < 200 {
			a.early[m.SessionID] = append(a.early[m.SessionID], m.Message)
		}
		a.mu.Unlock()
		if closed {
			// Appended as the chat ended (the end and this frame crossed):
			// the console shows it in the ended chat; nothing to answer.
			if _, first := d.seen(m.SessionID, m.Message); first {
				d.count("message shown in a chat the agent had just ended")
			}
			return
		}
		if !held {
			d.track(a, m.SessionID, "message.added before it is held: "+m.Message.Body)
			// As the console does: a message of a chat the agent does not
			// hold yet is kept, not shown or answered, until the chat's
			// session.assigned comes (from another replica, or once
			// sessions' retried assignment completes).
			d.count("message before its chat's session.assigned (kept until it comes)")
			return
		}
		seq, first := d.seen(m.SessionID, m.Message)
		if !first || d.draining.Load() {
			return
		}
		switch r := a.rng.Float64(); {
		case r < d.replyProb:
			id := "r" + strconv.FormatInt(seq, 10)
			o := outgoing{session: m.SessionID, body: fmt.Sprintf("chaos r%d: on it", seq), seq: seq}
			a.mu.Lock()
			a.unacked[id] = o
			a.mu.Unlock()
			a.sendAsync(ctx, "message.send", map[string]string{"session_id": o.session, "body": o.body, "client_msg_id": id}, request{kind: "reply", msgID: id})
		case r < d.replyProb+d.terminateProb:
			a.sendAsync(ctx, "session.terminate", map[string]string{"session_id": m.SessionID}, request{kind: "terminate", session: m.SessionID})
		}
	case "presence":
		// A RONA flags the agent (its accept was refused while a backend
		// was down, or the offer never reached it): like an agent back at
		// the desk, it sets itself available again, or every task queued
		// behind its capacity would wait for the end of the run.
		var p struct {
			Rona bool `json:"rona"`
		}
		_ = json.Unmarshal(f.Data, &p)
		if p.Rona {
			d.count("agent flagged by RONA, sets itself available")
			a.sendAsync(ctx, "presence.set", map[string]string{"presence": "available"}, request{kind: "presence", tries: 1})
		}
	case "session.ended":
		var e struct {
			SessionID string `json:"session_id"`
		}
		_ = json.Unmarshal(f.Data, &e)
		d.track(a, e.SessionID, "session.ended")
		a.ended(e.SessionID)
		// Seen to its end: off the desk, as an agent closes it (a chat
		// ended while this agent was away stays in its snapshots).
		a.sendAsync(ctx, "session.dismiss", map[string]string{"session_id": e.SessionID}, request{kind: "dismiss"})
	case "ack", "error":
		var r struct {
			Ref  string `json:"ref"`
			Code string `json:"code"`
		}
		_ = json.Unmarshal(f.Data, &r)
		a.mu.Lock()
		req, ok := a.pending[r.Ref]
		delete(a.pending, r.Ref)
		o, hasReply := a.unacked[req.msgID]
		if req.kind == "reply" && ok {
			delete(a.unacked, req.msgID)
		}
		a.mu.Unlock()
		if !ok {
			return
		}
		if f.Type == "error" {
			d.count(fmt.Sprintf("agent %s refused: %s", req.kind, r.Code))
			if req.kind == "terminate" {
				d.terminateRefused(req.session, r.Code)
			}
			// "unavailable": a backend is down; retry (PROTOCOL.md), as the
			// console's user would click again while the offer is open.
			// The same for going available: an agent left offline after a
			// refusal (distribution between replicas) is offered nothing.
			switch {
			case r.Code != "unavailable":
			case req.kind == "presence" && req.tries < 30:
				a.sendLater(ctx, "presence.set", map[string]string{"presence": "available"}, req)
			case req.kind == "accept" && req.tries < 10:
				a.sendLater(ctx, "offer.accept", map[string]string{"offer_id": req.offerID}, req)
			}
			return
		}
		switch req.kind {
		case "reply":
			if hasReply {
				d.replyRequested(o.seq)
			}
		case "terminate":
			d.track(a, req.session, "terminate acknowledged")
			a.ended(req.session)
		}
	}
}

func (a *agent) answerOffer(ctx context.Context, offerID string) {
	if !a.d.draining.Load() && a.rng.Float64() < a.d.declineProb {
		a.sendAsync(ctx, "offer.decline", map[string]string{"offer_id": offerID}, request{kind: "decline"})
		return
	}
	a.sendAsync(ctx, "offer.accept", map[string]string{"offer_id": offerID}, request{kind: "accept", offerID: offerID, tries: 1})
}

// resendUnacked sends again the replies not acknowledged yet, with their
// client_msg_id.
func (a *agent) resendUnacked(ctx context.Context) {
	a.mu.Lock()
	resend := make(map[string]outgoing, len(a.unacked))
	for k, v := range a.unacked {
		resend[k] = v
	}
	a.mu.Unlock()
	for id, o := range resend {
		a.sendAsync(ctx, "message.send", map[string]string{"session_id": o.session, "body": o.body, "client_msg_id": id}, request{kind: "reply", msgID: id})
	}
}

// trackHeld notes a step in the trail of every session the agent holds.
func (a *agent) trackHeld(what string) {
	a.mu.Lock()
	ids := make([]string, 0, len(a.active))
	for id := range a.active {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	for _, id := range ids {
		a.d.track(a, id, what)
	}
}

// takeEarly returns and forgets the messages of a chat that came before
// it did.
func (a *agent) takeEarly(session string) []wsMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	list := a.early[session]
	delete(a.early, session)
	return list
}

func (a *agent) ended(session string) {
	a.mu.Lock()
	delete(a.early, session)
	delete(a.active, session)
	a.closed[session] = true
	a.mu.Unlock()
	a.d.ended(session)
}

// terminateAll ends every session the agent holds (the end of the run).
func (a *agent) terminateAll(ctx context.Context) {
	a.mu.Lock()
	var ids []string
	for id := range a.active {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	for _, id := range ids {
		a.sendAsync(ctx, "session.terminate", map[string]string{"session_id": id}, request{kind: "terminate", session: id})
	}
}

// parseSeq reads n from "chaos <p><n>…".
func parseSeq(body, p string) (int64, bool) {
	rest, ok := strings.CutPrefix(body, "chaos "+p)
	if !ok {
		return 0, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	n, err := strconv.ParseInt(rest[:end], 10, 64)
	return n, err == nil
}

// sendLater sends a refused request again a second from now, counting the
// try.
func (a *agent) sendLater(ctx context.Context, typ string, data any, req request) {
	req.tries++
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			_ = a.send(ctx, typ, data, req)
		}
	}()
}
