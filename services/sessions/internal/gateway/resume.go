package gateway

import (
	"bytes"
	"strconv"
	"time"
)

// Resuming a dropped socket. Every frame pushed to an agent (what changes
// their desk: offers, chats, messages, statuses, presence) is numbered in
// the order this replica hands it to the agent's sockets, and the last
// frames are kept here, per agent, while the agent has a socket on this
// replica and for resumeWindow after their last one closes. A client that
// reconnects names the stream (this log's epoch) and the last number it
// saw; when the log still holds every frame after it, the socket gets
// exactly those frames, in order, instead of a snapshot. Otherwise (another
// replica, a log that moved on past its bound or was reset, the window
// over) it gets a snapshot, as before: nothing is lost either way.
//
// The log is reset (a new epoch) when the replica re-sends the agent's
// state after its broker connection came back: frames other replicas
// pushed meanwhile never reached it, so no resume may cross that gap.

// Bounds of one agent's log: a few seconds of a busy desk, or a network
// blip's worth. A client further behind gets a snapshot. The frames a
// resume sends at once, with the welcome, stay within a socket's queue
// (outQueue).
const (
	resumeFrames = 48
	resumeBytes  = 64 << 10
	resumeWindow = 2 * time.Minute
)

// agentLog is the numbered frames most recently pushed to one agent here.
type agentLog struct {
	// epoch numbers the log among the gateway's (its stream is the
	// gateway's id and this number: streamName).
	epoch uint64
	last  uint64 // number of the newest frame (0: none yet)
	// frames: the newest, oldest first, each stamped with its number.
	frames []loggedFrame
	bytes  int
	// idleSince: when the agent's last socket here closed (zero while one
	// is open).
	idleSince time.Time
}

type loggedFrame struct {
	seq  uint64
	data []byte
}

// streamName is the stream a client names to resume from l.
func (g *Gateway) streamName(l *agentLog) string {
	return g.id + "." + strconv.FormatUint(l.epoch, 10)
}

// add numbers a frame, keeps it, and returns it stamped.
func (l *agentLog) add(frame []byte) []byte {
	l.last++
	stamped := stamp(frame, l.last, "")
	l.frames = append(l.frames, loggedFrame{seq: l.last, data: stamped})
	l.bytes += len(stamped)
	for len(l.frames) > resumeFrames || (l.bytes > resumeBytes && len(l.frames) > 1) {
		l.bytes -= len(l.frames[0].data)
		l.frames[0] = loggedFrame{}
		l.frames = l.frames[1:]
	}
	return stamped
}

// since returns the frames after seq, or false when the log no longer
// holds all of them (or seq is not one of its numbers).
func (l *agentLog) since(seq uint64) ([][]byte, bool) {
	if seq > l.last {
		return nil, false
	}
	if seq == l.last {
		return nil, true
	}
	if len(l.frames) == 0 || l.frames[0].seq > seq+1 {
		return nil, false
	}
	out := make([][]byte, 0, l.last-seq)
	for _, f := range l.frames {
		if f.seq > seq {
			out = append(out, f.data)
		}
	}
	return out, true
}

// stamp adds the frame's number (and, when given, its stream) to a frame
// Frame built, as the envelope's last fields: its first bytes, which
// FrameType reads, stay as they are.
func stamp(frame []byte, seq uint64, stream string) []byte {
	i := bytes.LastIndexByte(frame, '}')
	if i < 0 {
		return frame
	}
	out := make([]byte, 0, len(frame)+40+len(stream))
	out = append(out, frame[:i]...)
	out = append(out, `,"seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	if stream != "" {
		out = append(out, `,"stream":`...)
		out = strconv.AppendQuote(out, stream)
	}
	return append(out, frame[i:]...)
}

// Resume is what a reconnecting client names in its auth frame: the
// stream it followed and the number of the last frame it saw there.
type Resume struct {
	Stream string `json:"stream"`
	After  uint64 `json:"after"`
}

// logFor returns key's log, started when missing (under g.mu).
func (g *Gateway) logFor(key string) *agentLog {
	l := g.logs[key]
	if l == nil {
		l = g.resetLog(key)
	}
	return l
}

// resetLog starts key's log again under a new epoch (under g.mu).
func (g *Gateway) resetLog(key string) *agentLog {
	g.epochs++
	l := &agentLog{epoch: g.epochs}
	g.logs[key] = l
	return l
}

// sweepLogs forgets the logs of agents gone from this replica for longer
// than resumeWindow.
func (g *Gateway) sweepLogs(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, l := range g.logs {
		if len(g.conns[key]) == 0 && !l.idleSince.IsZero() && now.Sub(l.idleSince) > resumeWindow {
			delete(g.logs, key)
		}
	}
}

// runSweep sweeps the logs every half window until the gateway stops.
func (g *Gateway) runSweep() {
	t := time.NewTicker(resumeWindow / 2)
	defer t.Stop()
	for {
		select {
		case <-g.done.Done():
			return
		case now := <-t.C:
			g.sweepLogs(now)
		}
	}
}
