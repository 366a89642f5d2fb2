package store

import (
	"fmt"
	"testing"
	"time"
)

// The agent list's first format, a JSON array of active ids, still reads;
// ended chats are kept newest first, at most maxEnded, for keepEndedFor.
func TestAgentListFormatsAndLimits(t *testing.T) {
	if l := decodeAgentList([]byte(`["s1","s2"]`)); fmt.Sprint(l.Active) != "[s1 s2]" || len(l.Ended) != 0 {
		t.Errorf("old format read as %+v", l)
	}
	if l := decodeAgentList(nil); len(l.Active)+len(l.Ended) != 0 {
		t.Errorf("missing key read as %+v", l)
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	l := agentList{Ended: []endedEntry{{ID: "old", At: now.Add(-keepEndedFor - time.Minute)}}}
	for i := range maxEnded + 3 {
		l.Active = append(l.Active, fmt.Sprintf("s%02d", i))
	}
	for i := range maxEnded + 3 {
		endIn(&l, fmt.Sprintf("s%02d", i), now.Add(time.Duration(i)*time.Second))
	}
	endIn(&l, "s99", now) // never active: not listed as ended
	if len(l.Active) != 0 {
		t.Errorf("active after every end: %v", l.Active)
	}
	if len(l.Ended) != maxEnded || l.Ended[0].ID != fmt.Sprintf("s%02d", maxEnded+2) {
		t.Errorf("ended = %+v, want the %d most recent, newest first", l.Ended, maxEnded)
	}
	for _, e := range l.Ended {
		if e.ID == "old" || e.ID == "s99" {
			t.Errorf("%s is still listed", e.ID)
		}
	}
}
