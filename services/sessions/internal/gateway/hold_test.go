package gateway

import (
	"testing"
)

// A frame pushed while a snapshot is being read follows the snapshot:
// before it, the snapshot (read before the frame's change) would undo it.
func TestFramesPushedDuringASnapshotFollowIt(t *testing.T) {
	c := &conn{out: make(chan outFrame, outQueue), kicked: make(chan struct{})}
	c.send([]byte("before"))
	c.hold()
	c.send([]byte("session.assigned"))
	c.hold() // a resync while the first snapshot is read
	c.send([]byte("message.added"))
	c.release([]byte("snapshot 2"))
	c.release([]byte("snapshot 1"))
	c.send([]byte("after"))
	var got []string
	for len(c.out) > 0 {
		got = append(got, string((<-c.out).data))
	}
	want := []string{"before", "snapshot 2", "snapshot 1", "session.assigned", "message.added", "after"}
	if len(got) != len(want) {
		t.Fatalf("frames %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frames %q, want %q", got, want)
		}
	}
}

// A socket whose held frames overflow is closed as slow, as one whose
// queue overflows: its client reconnects to a fresh snapshot.
func TestTooManyHeldFramesCloseTheSocket(t *testing.T) {
	c := &conn{out: make(chan outFrame, outQueue), kicked: make(chan struct{})}
	c.hold()
	for range outQueue + 1 {
		c.send([]byte("frame"))
	}
	select {
	case <-c.kicked:
	default:
		t.Fatal("socket not closed after more held frames than its queue holds")
	}
	if !c.slow.Load() {
		t.Error("not marked slow")
	}
}
