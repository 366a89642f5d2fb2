// Package transcript reads a session's transcript from the sessions
// service's TRANSCRIPT stream: one subject per session
// (transcript.<tenant>.<session>), each entry a JSON object {"k":"m",
// "m":<message>} when a message is appended (once) or {"k":"s",
// "s":<status change>} when its delivery status moves. The sessions
// service writes them (services/sessions/internal/store/transcript.go);
// this reads the same format and folds it the same way: each message
// once, with its furthest status.
package transcript

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Media is an attachment.
type Media struct {
	URL         string `json:"url"`
	ContentType string `json:"content_type,omitempty"`
}

// Message is one message of a transcript (the sessions service's JSON
// field names).
type Message struct {
	ID           string
	Direction    string // inbound | outbound
	Sender       string // customer | agent | workflow
	AgentID      string
	Body         string
	Media        []Media
	At           time.Time
	Status       string
	StatusRank   int
	ErrorCode    int32
	ErrorMessage string
	TwilioSID    string
	Reason       string
}

// Entry is one record of the stream.
type Entry struct {
	Kind    string        `json:"k"` // "m" message, "s" status
	Message *Message      `json:"m,omitempty"`
	Status  *StatusChange `json:"s,omitempty"`
}

// StatusChange moves a message's delivery status.
type StatusChange struct {
	MessageID    string `json:"id"`
	Status       string `json:"status"`
	ErrorCode    int32  `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	TwilioSID    string `json:"twilio_sid,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

var statusOrder = map[string]int{
	"pending": 1, "queued": 2, "accepted": 2, "sending": 3, "sent": 4,
	"delivered": 5, "undelivered": 6, "failed": 6, "read": 7,
}

// Max bounds the messages one read returns.
const Max = 5000

// Fold turns entries, in stream order, into messages oldest first: each
// message once, with its furthest status.
func Fold(entries [][]byte) []*Message {
	byID := map[string]*Message{}
	var order []*Message
	for _, raw := range entries {
		var e Entry
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		switch {
		case e.Kind == "m" && e.Message != nil:
			if byID[e.Message.ID] == nil && len(order) < Max {
				byID[e.Message.ID] = e.Message
				order = append(order, e.Message)
			}
		case e.Kind == "s" && e.Status != nil:
			m := byID[e.Status.MessageID]
			if m == nil || statusOrder[e.Status.Status] <= m.StatusRank {
				continue
			}
			s := e.Status
			m.Status, m.StatusRank = s.Status, statusOrder[s.Status]
			if s.Reason != "" {
				m.Reason = s.Reason
			}
			if s.ErrorCode != 0 {
				m.ErrorCode = s.ErrorCode
			}
			if s.ErrorMessage != "" {
				m.ErrorMessage = s.ErrorMessage
			}
			if s.TwilioSID != "" {
				m.TwilioSID = s.TwilioSID
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].At.Before(order[j].At) })
	return order
}

// Read reads a session's transcript from the stream's subject index
// through batched direct gets (its cost does not grow with the sessions
// stored, and it leaves no consumer behind: see kvcas.ReadSubject).
func Read(ctx context.Context, js jetstream.JetStream, tenant, sessionID string) ([]*Message, error) {
	var entries [][]byte
	_, err := kvcas.ReadSubject(ctx, js, subjects.StreamTranscript, subjects.Transcript(tenant, sessionID), 4*Max, func(m *jetstream.RawStreamMsg) bool {
		entries = append(entries, m.Data)
		return true
	})
	if errors.Is(err, nats.ErrNoResponders) {
		if _, serr := js.Stream(ctx, subjects.StreamTranscript); errors.Is(serr, jetstream.ErrStreamNotFound) {
			return nil, nil // no session has a transcript yet
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read transcript: %w", err)
	}
	return Fold(entries), nil
}
