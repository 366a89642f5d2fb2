package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// The events the diagnosis reads, registered by name (Sb-Type).
	_ "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	_ "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	_ "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	_ "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// A lost message's way through the system, read back from the streams
// after the run (before the stack stops): which stages it reached. The
// report says where to look: missing from CHAT (chat-handler answered 200
// without a durable PubAck), in CHAT but in no transcript (sessions never
// completed it), in a transcript of a session no agent was assigned
// (workflow-runner or distribution), or in the transcript of a session an
// agent holds and yet never shown to that agent (sessions' frames).

// streamEvent is one event of a stream, its fields read by name.
type streamEvent struct {
	kind    string // subject kind ("session.message.added"), or the transcript's
	at      time.Time
	seq     uint64
	fields  map[string]string // session_id, message_id, message_sid, body, agent_id, task_id, offer_id
	subject string
}

var diagFields = []protoreflect.Name{"session_id", "message_id", "message_sid", "first_message_sid", "body", "agent_id", "task_id", "offer_id", "request_id", "error_message", "error_code"}

// readStream reads a whole stream (as it is now) message by message: a
// direct get per sequence, slower than a consumer but indifferent to the
// consumer leader moves a run leaves behind (an ordered consumer gave up
// part way with "no responders" on such a cluster).
func readStream(ctx context.Context, js jetstream.JetStream, stream string, fn func(*jetstream.RawStreamMsg)) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			continue
		case err != nil:
			return fmt.Errorf("message %d: %w", seq, err)
		}
		fn(m)
	}
	return nil
}

// protoEvent decodes an event by its Sb-Type header and reads the fields
// the diagnosis follows.
func protoEvent(m *jetstream.RawStreamMsg) *streamEvent {
	ev := &streamEvent{subject: m.Subject, fields: map[string]string{}, at: m.Time, seq: m.Sequence}
	if s, err := subjects.Parse(m.Subject); err == nil {
		ev.kind = s.Kind()
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(m.Header.Get(bus.HeaderType)))
	if err != nil {
		return ev
	}
	msg := mt.New()
	if proto.Unmarshal(m.Data, msg.Interface()) != nil {
		return ev
	}
	for _, name := range diagFields {
		f := msg.Descriptor().Fields().ByName(name)
		switch {
		case f == nil:
		case f.Kind() == protoreflect.StringKind:
			if v := msg.Get(f).String(); v != "" {
				ev.fields[string(name)] = v
			}
		case f.Kind() == protoreflect.Int32Kind:
			if v := msg.Get(f).Int(); v != 0 {
				ev.fields[string(name)] = strconv.FormatInt(v, 10)
			}
		}
	}
	return ev
}

// diagnose reports, for each lost customer message, the stages it reached.
func (d *driver) diagnose(ctx context.Context, lost []int64) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	js, closeJS, err := d.jetStream()
	if err != nil {
		return nil, err
	}
	defer closeJS()

	// CHAT: the customer message by its body ("chaos m<n> …") → its SID.
	type chatRec struct {
		sid    string
		at     time.Time
		seq    uint64
		copies int
	}
	chat := map[int64]*chatRec{}
	if err := readStream(ctx, js, subjects.StreamChat, func(m *jetstream.RawStreamMsg) {
		ev := protoEvent(m)
		if ev.kind != subjects.KindChatMessageReceived {
			return
		}
		if seq, ok := parseSeq(ev.fields["body"], "m"); ok {
			if r := chat[seq]; r != nil {
				r.copies++
				return
			}
			chat[seq] = &chatRec{sid: ev.fields["message_sid"], at: ev.at, seq: ev.seq, copies: 1}
		}
	}); err != nil {
		return nil, fmt.Errorf("read CHAT: %w", err)
	}

	// TRANSCRIPT: the message's entry → its session.
	type trRec struct {
		session string
		at      time.Time
	}
	transcript := map[string]trRec{} // SID → entry
	if err := readStream(ctx, js, subjects.StreamTranscript, func(m *jetstream.RawStreamMsg) {
		var e struct {
			Kind    string               `json:"k"`
			Message *struct{ ID string } `json:"m"`
		}
		if json.Unmarshal(m.Data, &e) != nil || e.Kind != "m" || e.Message == nil {
			return
		}
		if _, ok := transcript[e.Message.ID]; ok {
			return
		}
		r := trRec{session: m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], at: m.Time}
		transcript[e.Message.ID] = r
	}); err != nil {
		return nil, fmt.Errorf("read TRANSCRIPT: %w", err)
	}

	// SESSION, WORKFLOW, DISTRIBUTION: what happened to each session.
	added := map[string]time.Time{}          // SID → session.message.added
	bySession := map[string][]*streamEvent{} // session → its events
	for _, stream := range []string{subjects.StreamSession, subjects.StreamWorkflow, subjects.StreamDistribution} {
		if err := readStream(ctx, js, stream, func(m *jetstream.RawStreamMsg) {
			ev := protoEvent(m)
			if ev.kind == subjects.KindSessionMessageAdded {
				if _, ok := added[ev.fields["message_id"]]; !ok {
					added[ev.fields["message_id"]] = ev.at
				}
				return
			}
			if s := ev.fields["session_id"]; s != "" {
				bySession[s] = append(bySession[s], ev)
			}
		}); err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	classes := map[string]int{}
	trailShown := map[string]bool{} // sessions whose trail a line has shown
	var unoffered []string          // task ids of sessions no agent took
	var lines []string
	slices.Sort(lost)
	for _, seq := range lost {
		m := d.msgs[seq]
		line := fmt.Sprintf("m%d (200 at %s):", seq, m.answered.Format("15:04:05.000"))
		c := chat[seq]
		if c == nil {
			classes["not in CHAT"]++
			lines = append(lines, line+" NOT in CHAT")
			continue
		}
		line += fmt.Sprintf(" CHAT seq %d %s (stored %s", c.seq, c.sid, c.at.Format("15:04:05.000"))
		if c.copies > 1 {
			line += fmt.Sprintf(", %d copies", c.copies)
		}
		line += ");"
		tr, inTranscript := transcript[c.sid]
		if !inTranscript {
			class := "in CHAT, in no transcript"
			if _, ok := added[c.sid]; ok {
				class += " (yet session.message.added)"
			}
			classes[class]++
			lines = append(lines, line+" "+class)
			continue
		}
		line += fmt.Sprintf(" transcript of %s at %s;", tr.session, tr.at.Format("15:04:05.000"))
		if at, ok := added[c.sid]; ok {
			line += fmt.Sprintf(" message.added at %s", at.Format("15:04:05.000"))
			if at.Sub(tr.at) > 500*time.Millisecond {
				line += " (later: a redelivery completed it)"
			}
			line += ";"
		} else {
			line += " NO message.added;"
		}
		var steps []string
		var acceptedAt time.Time
		accepted := ""
		for _, ev := range bySession[tr.session] {
			s := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(ev.kind, "distribution."), "workflow."), "session.")
			if a := ev.fields["agent_id"]; a != "" {
				s += "(" + a + ")"
			}
			steps = append(steps, s+"@"+ev.at.Format("15:04:05.000"))
			if ev.kind == subjects.KindTaskAccepted && accepted == "" {
				accepted, acceptedAt = ev.fields["agent_id"], ev.at
			}
		}
		line += " " + strings.Join(steps, " ") + ";"
		rec := d.sessions[tr.session]
		switch {
		case accepted == "" && rec == nil:
			classes["in a transcript; session never accepted nor held by an agent"]++
			for _, ev := range bySession[tr.session] {
				if id := ev.fields["task_id"]; id != "" && !slices.Contains(unoffered, id) {
					unoffered = append(unoffered, id)
				}
			}
		case accepted != "" && acceptedAt.Before(tr.at):
			classes["in a transcript; appended AFTER the agent accepted, never shown to it"]++
		case rec == nil:
			classes["in a transcript; session accepted but no agent frame for it"]++
		default:
			classes["in a transcript; appended before the agent accepted, yet not in its transcript"]++
		}
		if rec != nil {
			var agents []string
			for a := range rec.agents {
				agents = append(agents, a)
			}
			slices.Sort(agents)
			line += fmt.Sprintf(" harness: held by %v (ended %v, %d of its messages seen)", agents, rec.ended, d.seenIn[tr.session])
			if len(rec.trail) > 0 && !trailShown[tr.session] {
				trailShown[tr.session] = true
				line += "; its agents' view: " + strings.Join(rec.trail, " | ")
			}
		} else {
			line += " harness: no agent held it"
		}
		lines = append(lines, line)
	}
	keys := make([]string, 0, len(classes))
	for k := range classes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%4d  %s", classes[k], k))
	}
	out = append(out, lines...)
	if len(unoffered) > 0 {
		out = append(out, d.distributionView(ctx, unoffered)...)
	}
	return out, nil
}

// diagnoseNoOutcome reports, for each session the agents were given and
// no end was seen of, what the harness saw (who held it, the state its
// last frame showed, why its end was refused) and its events in the
// SESSION and DISTRIBUTION streams (tasks, offers, accepts, its end).
func (d *driver) diagnoseNoOutcome(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	d.mu.Lock()
	lines := map[string]string{}
	var ids []string
	for id, s := range d.sessions {
		if s.ended {
			continue
		}
		var agents []string
		for a := range s.agents {
			agents = append(agents, a)
		}
		slices.Sort(agents)
		ids = append(ids, id)
		lines[id] = fmt.Sprintf("%s: held by %v, last frame state %q, terminate refused %q;", id, agents, s.state, s.refused)
	}
	d.mu.Unlock()
	slices.Sort(ids)
	js, closeJS, err := d.jetStream()
	if err != nil {
		return nil, err
	}
	defer closeJS()
	events := map[string][]string{}
	follow := func(m *jetstream.RawStreamMsg) {
		ev := protoEvent(m)
		id := ev.fields["session_id"]
		if _, ok := lines[id]; !ok {
			return
		}
		e := ev.kind
		if a := ev.fields["agent_id"]; a != "" {
			e += " agent=" + a
		}
		if t := ev.fields["task_id"]; t != "" {
			e += " task=" + t
		}
		events[id] = append(events[id], e)
	}
	for _, stream := range []string{subjects.StreamSession, subjects.StreamDistribution} {
		if err := readStream(ctx, js, stream, follow); err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, lines[id]+" events: "+strings.Join(events[id], ", "))
	}
	return out, nil
}

// endsFromStream marks ended every session the SESSION stream has a
// session.ended event of, and counts those the agents' frames did not
// say had ended.
func (d *driver) endsFromStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	js, closeJS, err := d.jetStream()
	if err != nil {
		return err
	}
	defer closeJS()
	ended := map[string]bool{}
	if err := readStream(ctx, js, subjects.StreamSession, func(m *jetstream.RawStreamMsg) {
		if ev := protoEvent(m); ev.kind == subjects.KindSessionEnded {
			ended[ev.fields["session_id"]] = true
		}
	}); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, s := range d.sessions {
		if !s.ended && ended[id] {
			s.ended = true
			d.rep.Counts["session ended without its agent being told (read from SESSION)"]++
		}
	}
	return nil
}
