package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Transcripts live in the TRANSCRIPT stream, one subject per session
// (transcript.<tenant>.<session>): a message is appended once (its dedupe
// id is tenant/session/message) and each delivery status after it. A
// session's transcript is read from the stream's subject index, so it
// costs the same however many sessions are stored; FerretDB, the
// one-machine default, can read a collection only by _id (a query on
// session_key scans every message ever stored: 247 ms at 7,000 messages).

// entry is one transcript record: a message, or a status change of one.
type entry struct {
	Kind    string        `json:"k"` // "m" message, "s" status
	Message *Message      `json:"m,omitempty"`
	Status  *statusChange `json:"s,omitempty"`
}

type statusChange struct {
	MessageID    string `json:"id"`
	Status       string `json:"status"`
	ErrorCode    int32  `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	TwilioSID    string `json:"twilio_sid,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// transcriptLog appends to and reads the TRANSCRIPT stream.
type transcriptLog struct {
	js jetstream.JetStream

	mu     sync.Mutex
	stream jetstream.Stream // for direct reads by subject; looked up once
}

// streamHandle is the TRANSCRIPT stream for reads of single entries,
// looked up once.
func (l *transcriptLog) streamHandle(ctx context.Context) (jetstream.Stream, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stream == nil {
		st, err := l.js.Stream(ctx, subjects.StreamTranscript)
		if err != nil {
			return nil, fmt.Errorf("transcript stream: %w", err)
		}
		l.stream = st
	}
	return l.stream, nil
}

// previewEntries bounds the entries read for a preview.
const previewEntries = 8

// firstCustomerMessage returns the body of the session's first customer
// message, read from the stream's subject index (the first few entries of
// the session's subject, no scan); "" when there is none among them.
func (l *transcriptLog) firstCustomerMessage(ctx context.Context, tenant, sessionID string) (string, error) {
	st, err := l.streamHandle(ctx)
	if err != nil {
		return "", err
	}
	subj := subjects.Transcript(tenant, sessionID)
	seq := uint64(1)
	for range previewEntries {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("read transcript entry: %w", err)
		}
		var e entry
		if json.Unmarshal(m.Data, &e) == nil && e.Kind == "m" && e.Message != nil && e.Message.Direction == "inbound" {
			return e.Message.Body, nil
		}
		seq = m.Sequence + 1
	}
	return "", nil
}

// append stores e; it reports false when the stream already had it.
func (l *transcriptLog) append(ctx context.Context, tenant, sessionID, dedupeID string, e *entry) (bool, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	msg := nats.NewMsg(subjects.Transcript(tenant, sessionID))
	msg.Data = b
	ack, err := l.js.PublishMsg(ctx, msg, jetstream.WithMsgID(dedupeID))
	if err != nil {
		return false, fmt.Errorf("append to transcript: %w", err)
	}
	return !ack.Duplicate, nil
}

// maxTranscript bounds what one read returns.
const maxTranscript = 5000

// MaxTranscript is the most messages Transcript returns: a session that
// reaches it may have more.
const MaxTranscript = maxTranscript

// readAttempts bounds the reads of one transcript that came back behind
// the stream's leader.
const readAttempts = 4

// read folds a session's entries into its messages, oldest first: each
// message once, with its furthest status. The read is served by a
// consumer on one of the stream's replicas, which may be behind the
// leader (catching up after a restart, or unable to write while its disk
// is full) and miss entries already acknowledged, such as the message an
// agent is being assigned the chat for. So the leader is asked for the
// subject's last sequence first, and a read that stops short of it is
// made again.
func (l *transcriptLog) read(ctx context.Context, tenant, sessionID string) ([]*Message, error) {
	subject := subjects.Transcript(tenant, sessionID)
	last, err := kvcas.LastBySubject(ctx, l.js, subjects.StreamTranscript, subject)
	if err != nil {
		return nil, fmt.Errorf("read transcript: the stream's leader: %w", err)
	}
	var want uint64
	if last != nil {
		want = last.Seq
	}
	for attempt := 1; ; attempt++ {
		msgs, got, err := l.readFrom(ctx, subject)
		if err != nil || got >= want {
			return msgs, err
		}
		if attempt == readAttempts {
			return nil, fmt.Errorf("read transcript: the replicas answering stop at sequence %d, the leader has %d", got, want)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

// readFrom reads a transcript through batched direct gets of its subject
// (no consumer: see kvcas.ReadSubject), and the highest stream sequence
// it saw.
func (l *transcriptLog) readFrom(ctx context.Context, subject string) ([]*Message, uint64, error) {
	byID := map[string]*Message{}
	var order []*Message
	read := 0
	maxSeq, err := kvcas.ReadSubject(ctx, l.js, subjects.StreamTranscript, subject, 4*maxTranscript, func(m *jetstream.RawStreamMsg) bool {
		read++
		var e entry
		if json.Unmarshal(m.Data, &e) != nil {
			return true
		}
		switch {
		case e.Kind == "m" && e.Message != nil:
			if byID[e.Message.ID] == nil && len(order) < maxTranscript {
				byID[e.Message.ID] = e.Message
				order = append(order, e.Message)
			}
		case e.Kind == "s" && e.Status != nil:
			if m := byID[e.Status.MessageID]; m != nil {
				applyStatus(m, e.Status)
			}
		}
		return true
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read transcript: %w", err)
	}
	if read >= 4*maxTranscript {
		maxSeq = math.MaxUint64 // capped: this is all a read returns
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].At.Before(order[j].At) })
	return order, maxSeq, nil
}

// applyStatus moves m's status forward, never back.
func applyStatus(m *Message, s *statusChange) bool {
	if StatusRank(s.Status) <= m.StatusRank {
		return false
	}
	m.Status, m.StatusRank = s.Status, StatusRank(s.Status)
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
	return true
}

// ImportTranscript appends messages to a session's transcript in bulk
// (asynchronous publishes, awaited together): for imports and benchmarks,
// not the hot path, which appends one message at a time.
func (s *Store) ImportTranscript(ctx context.Context, tenant, sessionID string, msgs []*Message) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		m.Key, m.SessionKey = messageKey(tenant, sessionID, m.ID), SessionKey(tenant, sessionID)
		b, err := json.Marshal(&entry{Kind: "m", Message: m})
		if err != nil {
			return err
		}
		msg := nats.NewMsg(subjects.Transcript(tenant, sessionID))
		msg.Data = b
		f, err := s.log.js.PublishMsgAsync(msg, jetstream.WithMsgID(m.Key))
		if err != nil {
			return fmt.Errorf("import transcript: %w", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("import transcript: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// lastActivity is when the session's transcript last changed (its newest
// entry, read by subject); zero when it has none.
func (l *transcriptLog) lastActivity(ctx context.Context, tenant, sessionID string) (time.Time, error) {
	// The leader's answer: a replica behind it would make a chat look
	// idle longer than it is, and the stale sweep end it.
	m, err := kvcas.LastBySubject(ctx, l.js, subjects.StreamTranscript, subjects.Transcript(tenant, sessionID))
	if err != nil {
		return time.Time{}, fmt.Errorf("last transcript entry: %w", err)
	}
	if m == nil {
		return time.Time{}, nil
	}
	return m.Time, nil
}
