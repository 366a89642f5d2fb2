package sessions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// A console that stops reading gets backpressure, not an unbounded
// buffer: once the frames waiting for it fill its queue (64) on top of
// what the network holds, the server closes its socket with 4408, and a
// console that reads on keeps its socket.
func TestSlowClientIsClosedWith4408(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	tok, err := agentclient.Login(ctx, h.url, "acme", "alice@acme.example", "pw")
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.Dial(ctx, agentclient.WebsocketURL(h.url), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	auth, _ := json.Marshal(map[string]any{"v": 1, "type": "auth", "id": "a1", "data": map[string]string{"token": tok}})
	if err := ws.Write(ctx, websocket.MessageText, auth); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("before the snapshot: %v", err)
		}
		if bytes.Contains(data, []byte(`"type":"snapshot"`)) {
			break
		}
	}
	// A reading console alongside: the flood must not close it.
	bob := h.agent(t, "bob@acme.example")

	// alice stops reading; frames for her arrive as another replica
	// would push them (core NATS, no origin header), 60 KB each.
	frame, _ := json.Marshal(map[string]any{"v": 1, "type": "message.added", "data": map[string]any{
		"session_id": "ss_flood", "message": map[string]any{"id": "m", "body": string(bytes.Repeat([]byte("x"), 60_000))}}})
	for i := 0; i < 2000; i++ {
		if err := h.bus.NC.Publish(subjects.AgentPush("acme", "alice"), frame); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			if err := h.bus.NC.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// What was written before the close is still readable; then the close.
	var code websocket.StatusCode = -1
	read := 0
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _, err := ws.Read(rctx)
		cancel()
		if err != nil {
			code = websocket.CloseStatus(err)
			if code == -1 {
				t.Fatalf("after %d frames the socket ended without a close code: %v", read, err)
			}
			break
		}
		read++
	}
	t.Logf("closed with %d after %d frames", code, read)
	if code != 4408 {
		t.Fatalf("closed with %d after %d frames, want 4408 (too slow)", code, read)
	}
	if read >= 2000 {
		t.Errorf("the client read all %d frames: nothing was held back", read)
	}
	// bob's socket is open and answers.
	if _, err := bob.Request(ctx, "presence.set", map[string]string{"presence": "available"}); err != nil {
		t.Errorf("bob's socket after alice's flood: %v", err)
	}
}

// A socket whose snapshot cannot be read is not left open on a desk the
// frames that follow would not complete: the client is told why and the
// socket closes with 1013 (try again later); the reconnect gets its
// snapshot.
func TestSocketWithoutItsSnapshotIsClosedWith1013(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	tok, err := agentclient.Login(ctx, h.url, "acme", "alice@acme.example", "pw")
	if err != nil {
		t.Fatal(err)
	}
	h.dist.mu.Lock()
	h.dist.failStates = 2 // the presence check on arrival, then the snapshot
	h.dist.mu.Unlock()
	dial := func() *websocket.Conn {
		ws, _, err := websocket.Dial(ctx, agentclient.WebsocketURL(h.url), nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.SetReadLimit(1 << 20)
		auth, _ := json.Marshal(map[string]any{"v": 1, "type": "auth", "id": "a1", "data": map[string]string{"token": tok}})
		if err := ws.Write(ctx, websocket.MessageText, auth); err != nil {
			t.Fatal(err)
		}
		return ws
	}
	ws := dial()
	defer ws.CloseNow()
	var told bool
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, data, err := ws.Read(rctx)
		cancel()
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusTryAgainLater {
				t.Fatalf("socket ended with %d (%v), want 1013", code, err)
			}
			break
		}
		if bytes.Contains(data, []byte(`"type":"snapshot"`)) {
			t.Fatalf("got a snapshot while distribution refused: %s", data)
		}
		if bytes.Contains(data, []byte(`"code":"unavailable"`)) && bytes.Contains(data, []byte("could not load your offers and sessions")) {
			told = true
		}
	}
	if !told {
		t.Error("the socket closed without saying why")
	}

	ws2 := dial()
	defer ws2.CloseNow()
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, data, err := ws2.Read(rctx)
		cancel()
		if err != nil {
			t.Fatalf("reconnect: no snapshot: %v", err)
		}
		if bytes.Contains(data, []byte(`"type":"snapshot"`)) {
			return
		}
	}
}
