package e2ebench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// agent is a scripted agent on the websocket. It accepts every offer,
// records every customer message frame, and answers some of them. It
// speaks protocol v1 itself rather than through agentclient.Conn, which
// keeps every frame and rescans them for each answer: fine for tests, too
// slow for hundreds of frames a second.
type agent struct {
	r     *run
	email string
	ws    *websocket.Conn
	next  atomic.Int64

	mu       sync.Mutex
	sessions map[string]int // session id → customer index
	pending  map[string]pendingReq
	welcome  chan struct{}
}

type pendingReq struct {
	kind string // "accept", "reply", "other"
	seq  int64
}

type frame struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

func dialAgent(ctx context.Context, r *run, email string) (*agent, error) {
	tok, err := agentclient.Login(ctx, r.info.ConsoleURL, tenantID, email, agentPassword)
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", email, err)
	}
	ws, _, err := websocket.Dial(ctx, agentclient.WebsocketURL(r.info.ConsoleURL), nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", email, err)
	}
	ws.SetReadLimit(1 << 22)
	a := &agent{r: r, email: email, ws: ws, sessions: map[string]int{}, pending: map[string]pendingReq{}, welcome: make(chan struct{})}
	go a.read()
	if err := a.send(ctx, "auth", map[string]string{"token": tok}, pendingReq{kind: "other"}); err != nil {
		return nil, err
	}
	select {
	case <-a.welcome:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s not welcomed: %w", email, ctx.Err())
	}
	if err := a.send(ctx, "presence.set", map[string]string{"presence": "available"}, pendingReq{kind: "other"}); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *agent) close() { _ = a.ws.Close(websocket.StatusNormalClosure, "") }

func (a *agent) send(ctx context.Context, typ string, data any, p pendingReq) error {
	id := fmt.Sprintf("c%d", a.next.Add(1))
	raw, _ := json.Marshal(data)
	b, _ := json.Marshal(frame{V: 1, Type: typ, ID: id, Data: raw})
	a.mu.Lock()
	a.pending[id] = p
	a.mu.Unlock()
	return a.ws.Write(ctx, websocket.MessageText, b)
}

func (a *agent) read() {
	for {
		_, data, err := a.ws.Read(context.Background())
		if err != nil {
			if !errors.Is(err, context.Canceled) && websocket.CloseStatus(err) != websocket.StatusNormalClosure && !a.r.stopping.Load() {
				a.r.count("agent socket closed: " + err.Error())
			}
			return
		}
		at := time.Now()
		var f frame
		if json.Unmarshal(data, &f) != nil {
			a.r.count("agent: unreadable frame")
			continue
		}
		a.handle(f, at)
	}
}

type sessionData struct {
	SessionID string `json:"session_id"`
	Customer  string `json:"customer"`
}

type messageData struct {
	SessionID string `json:"session_id"`
	Message   struct {
		Direction string `json:"direction"`
		Sender    string `json:"sender"`
		Body      string `json:"body"`
	} `json:"message"`
}

func (a *agent) handle(f frame, at time.Time) {
	switch f.Type {
	case "welcome":
		close(a.welcome)
	case "offer.created":
		var o struct {
			OfferID string `json:"offer_id"`
		}
		_ = json.Unmarshal(f.Data, &o)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.send(ctx, "offer.accept", map[string]string{"offer_id": o.OfferID}, pendingReq{kind: "accept"}); err != nil {
				a.r.count("agent: accept not sent")
			}
		}()
	case "session.assigned":
		var s sessionData
		_ = json.Unmarshal(f.Data, &s)
		c, ok := a.r.customerByAddress[s.Customer]
		if !ok {
			return
		}
		a.mu.Lock()
		a.sessions[s.SessionID] = c
		a.mu.Unlock()
		a.r.assigned(c)
	case "message.added":
		var m messageData
		if json.Unmarshal(f.Data, &m) != nil || m.Message.Direction != "inbound" {
			return
		}
		seq, ok := parseSeq(m.Message.Body, "m")
		if !ok {
			return // a warm-up message
		}
		if first := a.r.frameSeen(seq, at); first {
			a.maybeReply(m.SessionID, seq)
		}
	case "ack", "error":
		var d struct {
			Ref  string `json:"ref"`
			Code string `json:"code"`
		}
		_ = json.Unmarshal(f.Data, &d)
		a.mu.Lock()
		p, ok := a.pending[d.Ref]
		delete(a.pending, d.Ref)
		a.mu.Unlock()
		if !ok {
			return
		}
		if f.Type == "error" {
			a.r.count(fmt.Sprintf("agent %s refused: %s", p.kind, d.Code))
			return
		}
		if p.kind == "reply" {
			a.r.replyAcked(p.seq, at)
		}
	}
}

// maybeReply answers every ReplyEvery-th message, when the customer's
// sender has room under the benchmark's share of its pacing limit.
func (a *agent) maybeReply(sessionID string, seq int64) {
	cfg := a.r.cfg
	if cfg.ReplyEvery <= 0 || seq%int64(cfg.ReplyEvery) != 0 || a.r.noReplies.Load() {
		return
	}
	a.mu.Lock()
	c, ok := a.sessions[sessionID]
	a.mu.Unlock()
	if !ok {
		a.r.count("agent: message in a session it was not assigned")
		return
	}
	if !a.r.laneBudget(a.r.customers[c].lane) {
		a.r.repliesSkipped.Add(1)
		return
	}
	body := fmt.Sprintf("bench r%d: thanks, let me check that for you", seq)
	a.r.replySent(seq, time.Now())
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.send(ctx, "message.send", map[string]string{"session_id": sessionID, "body": body, "client_msg_id": fmt.Sprintf("r%d", seq)}, pendingReq{kind: "reply", seq: seq}); err != nil {
			a.r.count("agent: reply not sent")
		}
	}()
}

// parseSeq reads the sequence number from "bench <p><seq>…".
func parseSeq(body, p string) (int64, bool) {
	rest, ok := strings.CutPrefix(body, "bench "+p)
	if !ok {
		return 0, false
	}
	var n int64
	i := 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		n = n*10 + int64(rest[i]-'0')
	}
	return n, i > 0
}
