package sessions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// serverFrame is a frame as a client reads it, with its number.
type serverFrame struct {
	Type   string `json:"type"`
	Seq    uint64 `json:"seq"`
	Stream string `json:"stream"`
	Data   struct {
		Resumed bool `json:"resumed"`
		Message struct {
			ID string `json:"id"`
		} `json:"message"`
	} `json:"data"`
}

// rawAgent is a socket read frame by frame, signed in with an optional
// resume.
func rawAgent(t *testing.T, ctx context.Context, url, tok string, resume map[string]any) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, agentclient.WebsocketURL(url), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	data := map[string]any{"token": tok}
	if resume != nil {
		data["resume"] = resume
	}
	auth, _ := json.Marshal(map[string]any{"v": 1, "type": "auth", "id": "a1", "data": data})
	if err := ws.Write(ctx, websocket.MessageText, auth); err != nil {
		t.Fatal(err)
	}
	return ws
}

func readFrame(t *testing.T, ctx context.Context, ws *websocket.Conn) serverFrame {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, b, err := ws.Read(rctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f serverFrame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

// pushMessages pushes message.added frames m<from>..m<to> to alice as
// another replica would (core NATS).
func pushMessages(t *testing.T, h *harness, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		frame, _ := json.Marshal(map[string]any{"v": 1, "type": "message.added", "data": map[string]any{
			"session_id": "ss_resume", "message": map[string]any{"id": fmt.Sprintf("m%d", i), "body": "hello"}}})
		if err := h.bus.NC.Publish(subjects.AgentPush("acme", "alice"), frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.bus.NC.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A socket dropped mid-stream resumes where its client stopped reading:
// the client names the stream and the last frame it saw, and gets every
// frame after it exactly once, in order, without a snapshot. A client
// further behind than the server keeps, or naming another stream, gets a
// snapshot instead (nothing is lost either way).
func TestResumeAfterADroppedSocket(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	tok, err := agentclient.Login(ctx, h.url, "acme", "alice@acme.example", "pw")
	if err != nil {
		t.Fatal(err)
	}

	ws := rawAgent(t, ctx, h.url, tok, nil)
	var stream string
	var last uint64
	for {
		f := readFrame(t, ctx, ws)
		if f.Type == "snapshot" {
			stream, last = f.Stream, f.Seq
			break
		}
	}
	if stream == "" {
		t.Fatal("the snapshot names no stream")
	}
	pushMessages(t, h, 1, 20)
	// The client reads five of them, then its connection drops.
	for n := 0; n < 5; {
		f := readFrame(t, ctx, ws)
		if f.Seq != 0 {
			if f.Seq != last+1 {
				t.Fatalf("frame %d after %d", f.Seq, last)
			}
			last = f.Seq
		}
		if f.Type == "message.added" {
			n++
		}
	}
	ws.CloseNow()
	pushMessages(t, h, 21, 30)

	ws2 := rawAgent(t, ctx, h.url, tok, map[string]any{"stream": stream, "after": last})
	defer ws2.CloseNow()
	var got []string
	resumed := false
	for len(got) < 25 {
		f := readFrame(t, ctx, ws2)
		switch f.Type {
		case "welcome":
			resumed = f.Data.Resumed
			if !resumed {
				t.Fatal("welcome: not resumed")
			}
		case "snapshot":
			t.Fatal("a resumed socket got a snapshot")
		case "message.added":
			got = append(got, f.Data.Message.ID)
		}
		if f.Seq != 0 {
			if f.Seq != last+1 {
				t.Fatalf("%s: frame %d after %d: a frame lost or repeated", f.Type, f.Seq, last)
			}
			last = f.Seq
		}
	}
	for i, id := range got {
		if want := fmt.Sprintf("m%d", i+6); id != want {
			t.Fatalf("resumed messages %v: want m6..m30 in order", got)
		}
	}
	// Live frames follow on the same numbering.
	pushMessages(t, h, 31, 31)
	for {
		f := readFrame(t, ctx, ws2)
		if f.Seq != 0 && f.Seq != last+1 {
			t.Fatalf("live frame %d after %d", f.Seq, last)
		}
		if f.Seq != 0 {
			last = f.Seq
		}
		if f.Type == "message.added" {
			if f.Data.Message.ID != "m31" {
				t.Fatalf("live frame %s, want m31", f.Data.Message.ID)
			}
			break
		}
	}
	ws2.CloseNow()

	// Further behind than the log's bound: a snapshot.
	pushMessages(t, h, 32, 120)
	expectSnapshot(t, ctx, h.url, tok, map[string]any{"stream": stream, "after": last})
	// Another stream (another replica's, or one reset): a snapshot.
	expectSnapshot(t, ctx, h.url, tok, map[string]any{"stream": "st_elsewhere", "after": 1})
}

func expectSnapshot(t *testing.T, ctx context.Context, url, tok string, resume map[string]any) {
	t.Helper()
	ws := rawAgent(t, ctx, url, tok, resume)
	defer ws.CloseNow()
	for {
		f := readFrame(t, ctx, ws)
		switch f.Type {
		case "welcome":
			if f.Data.Resumed {
				t.Fatalf("resume %v: resumed, want a snapshot", resume)
			}
		case "message.added":
			t.Fatalf("resume %v: a frame before the snapshot", resume)
		case "snapshot":
			if f.Stream == "" {
				t.Fatal("the snapshot names no stream")
			}
			return
		}
	}
}
