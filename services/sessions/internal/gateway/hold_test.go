package gateway

import (
	"testing"
)

// A frame pushed while a snapshot is being read follows the snapshot:
// before it, the snapshot (read before the frame's change) would undo it.
func TestFramesPushedDuringASnapshotFollowIt(t *testing.T) {
	c := &conn{} // no socket: frames stay queued, in their order
	c.send([]byte("before"))
	c.hold()
	c.send([]byte("session.assigned"))
	c.hold() // a resync while the first snapshot is read
	c.send([]byte("message.added"))
	c.release([]byte("snapshot 2"))
	c.release([]byte("snapshot 1"))
	c.send([]byte("after"))
	var got []string
	for _, f := range c.queue {
		got = append(got, string(f.data))
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
	c := &conn{}
	c.hold()
	for range outQueue + 1 {
		c.send([]byte("frame"))
	}
	if !c.kicked.Load() {
		t.Fatal("socket not closed after more held frames than its queue holds")
	}
	if !c.slow.Load() {
		t.Error("not marked slow")
	}
}

// A socket whose writer cannot keep up is closed once its queue is full,
// and until then its frames wait in order.
func TestTooManyQueuedFramesCloseTheSocket(t *testing.T) {
	c := &conn{} // no socket: nothing drains the queue
	for range outQueue {
		c.send([]byte("frame"))
	}
	if c.kicked.Load() || len(c.queue) != outQueue {
		t.Fatalf("after %d frames: kicked %v, %d queued; want open with all queued", outQueue, c.kicked.Load(), len(c.queue))
	}
	c.send([]byte("one too many"))
	if !c.kicked.Load() || !c.slow.Load() {
		t.Fatal("socket not closed as slow after its queue overflowed")
	}
}
