// Package agentclient is a Go client of the agent websocket protocol v1:
// what tests, load drivers and tools use to act as an agent.
package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Frame is one server frame.
type Frame struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Decode unmarshals the frame's data.
func (f Frame) Decode(v any) error { return json.Unmarshal(f.Data, v) }

// Field returns a top-level string field of the data.
func (f Frame) Field(name string) string {
	var m map[string]any
	_ = json.Unmarshal(f.Data, &m)
	s, _ := m[name].(string)
	return s
}

// Login signs an agent in and returns the token.
func Login(ctx context.Context, baseURL, tenant, email, password string) (string, error) {
	s, err := SignIn(ctx, baseURL, tenant, email, password)
	if err != nil {
		return "", err
	}
	return s.Token, nil
}

// Session is a sign-in's answer: the token and what it carries.
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// Roles the token carries: agent, supervisor, analyst, admin.
	Roles []string `json:"roles"`
	User  struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
		TenantID    string `json:"tenant_id"`
	} `json:"agent"`
}

// SignInError is a refused sign-in: the HTTP status, the gateway's
// message and, for 429, how long to wait before trying again.
type SignInError struct {
	Status     int
	Message    string
	RetryAfter time.Duration
}

func (e *SignInError) Error() string {
	return fmt.Sprintf("login: status %d: %s", e.Status, e.Message)
}

// SignIn signs a user in (POST /api/agent/v1/login): any user holding a
// role a token is good for, not only agents. A refusal is a *SignInError.
func SignIn(ctx context.Context, baseURL, tenant, email, password string) (*Session, error) {
	body, _ := json.Marshal(map[string]string{"tenant_id": tenant, "email": email, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+"/api/agent/v1/login", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var out struct {
			Error      string `json:"error"`
			RetryAfter int    `json:"retry_after_seconds"`
		}
		_ = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&out)
		e := &SignInError{Status: res.StatusCode, Message: out.Error, RetryAfter: time.Duration(out.RetryAfter) * time.Second}
		if secs, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && e.RetryAfter == 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
		if e.Message == "" {
			e.Message = http.StatusText(res.StatusCode)
		}
		return nil, e
	}
	var s Session
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&s); err != nil || s.Token == "" {
		return nil, fmt.Errorf("login: the answer is not a sign-in: %v", err)
	}
	return &s, nil
}

// Conn is an authenticated agent socket. It records every frame the server
// sends so callers can wait for what they expect.
type Conn struct {
	ws     *websocket.Conn
	mu     sync.Mutex
	cond   *sync.Cond
	frames []Frame
	err    error
	nextID int
}

// WebsocketURL turns the sessions base URL into the websocket URL.
func WebsocketURL(baseURL string) string {
	u := strings.TrimRight(baseURL, "/") + "/api/agent/v1/ws"
	u = strings.Replace(u, "https://", "wss://", 1)
	return strings.Replace(u, "http://", "ws://", 1)
}

// DialRaw opens a socket without authenticating (for protocol tests).
func DialRaw(ctx context.Context, baseURL string) (*Conn, error) {
	ws, _, err := websocket.Dial(ctx, WebsocketURL(baseURL), nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	c := &Conn{ws: ws}
	c.cond = sync.NewCond(&c.mu)
	go c.read()
	return c, nil
}

// Dial opens a socket and authenticates with token; it returns once the
// server has welcomed the agent.
func Dial(ctx context.Context, baseURL, token string) (*Conn, error) {
	c, err := DialRaw(ctx, baseURL)
	if err != nil {
		return nil, err
	}
	if _, err := c.Request(ctx, "auth", map[string]string{"token": token}); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.WaitFor(ctx, "welcome", nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) read() {
	for {
		_, data, err := c.ws.Read(context.Background())
		c.mu.Lock()
		if err != nil {
			c.err = err
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		var f Frame
		if json.Unmarshal(data, &f) == nil {
			c.frames = append(c.frames, f)
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// Close closes the socket.
func (c *Conn) Close() { _ = c.ws.Close(websocket.StatusNormalClosure, "") }

// Closed reports the error that ended the socket, if it ended.
func (c *Conn) Closed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// WriteRaw sends bytes as a text frame.
func (c *Conn) WriteRaw(ctx context.Context, data []byte) error {
	return c.ws.Write(ctx, websocket.MessageText, data)
}

// ProtocolError is an error frame answering a request.
type ProtocolError struct{ Code, Message string }

func (e *ProtocolError) Error() string { return e.Code + ": " + e.Message }

// Request sends a client frame and waits for its ack (returned) or error.
func (c *Conn) Request(ctx context.Context, typ string, data any) (Frame, error) {
	c.mu.Lock()
	c.nextID++
	id := fmt.Sprintf("t%d", c.nextID)
	c.mu.Unlock()
	raw, _ := json.Marshal(data)
	b, _ := json.Marshal(Frame{V: 1, Type: typ, ID: id, Data: raw})
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return Frame{}, err
	}
	f, err := c.WaitFor(ctx, "", func(f Frame) bool {
		return (f.Type == "ack" || f.Type == "error") && f.Field("ref") == id
	})
	if err != nil {
		return Frame{}, err
	}
	if f.Type == "error" {
		return f, &ProtocolError{Code: f.Field("code"), Message: f.Field("message")}
	}
	return f, nil
}

// WaitFor returns the first frame received so far or later of type typ
// (any type when empty) that match accepts (nil accepts all).
func (c *Conn) WaitFor(ctx context.Context, typ string, match func(Frame) bool) (Frame, error) {
	return c.WaitFrom(ctx, 0, typ, match)
}

// Len is the number of frames received so far.
func (c *Conn) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// WaitFrom is WaitFor looking only at frames from index from on (see Len).
// match runs with the connection locked and must not call its methods.
func (c *Conn) WaitFrom(ctx context.Context, from int, typ string, match func(Frame) bool) (Frame, error) {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; ; i++ {
		for ; i < len(c.frames); i++ {
			f := c.frames[i]
			if (typ == "" || f.Type == typ) && (match == nil || match(f)) {
				return f, nil
			}
		}
		if c.err != nil {
			return Frame{}, fmt.Errorf("socket closed waiting for %q: %w", typ, c.err)
		}
		if ctx.Err() != nil {
			return Frame{}, fmt.Errorf("waiting for %q: %w", typ, ctx.Err())
		}
		c.cond.Wait()
		i--
	}
}

// Frames returns every frame received so far.
func (c *Conn) Frames() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.frames...)
}

// Count counts received frames of a type that match.
func (c *Conn) Count(typ string, match func(Frame) bool) int {
	n := 0
	for _, f := range c.Frames() {
		if f.Type == typ && (match == nil || match(f)) {
			n++
		}
	}
	return n
}

// IsCode reports whether err is a protocol error with code.
func IsCode(err error, code string) bool {
	var pe *ProtocolError
	return errors.As(err, &pe) && pe.Code == code
}
