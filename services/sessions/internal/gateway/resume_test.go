package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/protocol"
)

func TestStampKeepsTheFrameReadable(t *testing.T) {
	f := protocol.Frame("message.added", map[string]string{"session_id": "s"})
	got := stamp(f, 42, "st_x")
	if protocol.FrameType(got) != "message.added" {
		t.Fatalf("type of %s: %q", got, protocol.FrameType(got))
	}
	var env struct {
		Seq    uint64          `json:"seq"`
		Stream string          `json:"stream"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(got, &env); err != nil || env.Seq != 42 || env.Stream != "st_x" || !strings.Contains(string(env.Data), `"s"`) {
		t.Fatalf("%s: %+v %v", got, env, err)
	}
}

func TestAgentLogSince(t *testing.T) {
	l := &agentLog{epoch: 1}
	if got, ok := l.since(0); !ok || len(got) != 0 {
		t.Fatalf("empty log since 0: %v %v", got, ok)
	}
	for i := 1; i <= 100; i++ {
		l.add(protocol.Frame("message.added", map[string]int{"n": i}))
	}
	if len(l.frames) != resumeFrames || l.last != 100 {
		t.Fatalf("kept %d, last %d", len(l.frames), l.last)
	}
	first := l.last - resumeFrames + 1
	for _, tc := range []struct {
		after uint64
		ok    bool
		n     int
	}{
		{100, true, 0}, {99, true, 1}, {first - 1, true, resumeFrames}, {first - 2, false, 0}, {0, false, 0}, {101, false, 0},
	} {
		got, ok := l.since(tc.after)
		if ok != tc.ok || len(got) != tc.n {
			t.Errorf("since(%d): %d frames, %v; want %d, %v", tc.after, len(got), ok, tc.n, tc.ok)
			continue
		}
		for i, f := range got {
			if want := fmt.Sprintf(`"seq":%d`, tc.after+uint64(i)+1); !strings.Contains(string(f), want) {
				t.Errorf("since(%d)[%d] = %s, want %s", tc.after, i, f, want)
			}
		}
	}
	// The byte bound holds too: big frames keep fewer.
	big := &agentLog{epoch: 2}
	for i := 0; i < 10; i++ {
		big.add(protocol.Frame("message.added", map[string]string{"body": strings.Repeat("x", 20<<10)}))
	}
	if big.bytes > resumeBytes || len(big.frames) >= 10 {
		t.Fatalf("big frames: kept %d (%d bytes)", len(big.frames), big.bytes)
	}
}
