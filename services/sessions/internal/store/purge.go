package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Retention and erasure (background and admin work, never the hot path).
// Transcripts are purged from the TRANSCRIPT stream by subject filter:
// transcript.<tenant>.> up to the first entry at or after the cutoff (a
// direct get by start time finds it), so a tenant's purge costs one
// lookup and one purge however much it stores. Mongo documents are found
// with a filtered scan (FerretDB reads the whole collection for any filter
// but _id, which is acceptable here) that reads only their _id, at most
// scanLimit per pass, and are deleted or masked by _id in batches.

// scanLimit bounds the ids one pass collects; the next sweep goes on.
const scanLimit = 100_000

// PurgeTranscriptsBefore removes every transcript entry of tenant stored
// before cutoff and returns how many it removed.
func (s *Store) PurgeTranscriptsBefore(ctx context.Context, tenant string, cutoff time.Time) (int64, error) {
	filter := subjects.DomainTranscript + "." + tenant + ".>"
	seq, err := s.log.firstAtOrAfter(ctx, filter, cutoff)
	if err != nil {
		return 0, err
	}
	return s.log.purge(ctx, filter, seq)
}

// firstAtOrAfter is the sequence of the first entry matching filter stored
// at or after t; 0 when there is none.
func (l *transcriptLog) firstAtOrAfter(ctx context.Context, filter string, t time.Time) (uint64, error) {
	req, err := json.Marshal(struct {
		StartTime time.Time `json:"start_time"`
		NextFor   string    `json:"next_by_subj"`
	}{t.UTC(), filter})
	if err != nil {
		return 0, err
	}
	resp, err := l.js.Conn().RequestWithContext(ctx, "$JS.API.DIRECT.GET."+subjects.StreamTranscript, req)
	if err != nil {
		return 0, fmt.Errorf("find the first transcript entry after %s: %w", t, err)
	}
	switch resp.Header.Get("Status") {
	case "":
	case "404":
		return 0, nil
	default:
		return 0, fmt.Errorf("find the first transcript entry after %s: %s %s", t, resp.Header.Get("Status"), resp.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(resp.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("find the first transcript entry after %s: sequence %q", t, resp.Header.Get(jetstream.SequenceHeader))
	}
	return seq, nil
}

// purge removes the entries matching filter below seq (all of them when
// seq is 0) and returns how many it removed.
func (l *transcriptLog) purge(ctx context.Context, filter string, seq uint64) (int64, error) {
	return purgeStream(ctx, l.js, subjects.StreamTranscript, filter, seq)
}

// purgeStream purges stream's messages matching filter below seq (all when
// 0) and returns how many it removed (nats.go's Purge does not say).
func purgeStream(ctx context.Context, js jetstream.JetStream, stream, filter string, seq uint64) (int64, error) {
	req, err := json.Marshal(jetstream.StreamPurgeRequest{Subject: filter, Sequence: seq})
	if err != nil {
		return 0, err
	}
	resp, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+stream, req)
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", filter, err)
	}
	var out struct {
		Success bool   `json:"success"`
		Purged  uint64 `json:"purged"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return 0, fmt.Errorf("purge %s: %w", filter, err)
	}
	if out.Error != nil || !out.Success {
		desc := "refused"
		if out.Error != nil {
			desc = out.Error.Description
		}
		return 0, fmt.Errorf("purge %s: %s", filter, desc)
	}
	return int64(out.Purged), nil
}

// PurgeMessagesBefore deletes tenant's outbound message documents sent
// before cutoff.
func (s *Store) PurgeMessagesBefore(ctx context.Context, tenant string, cutoff time.Time) (int64, error) {
	return deleteMatching(ctx, s.messages, bson.M{"tenant": tenant, "at": bson.M{"$lt": cutoff}})
}

// PurgeSessionsBefore deletes tenant's sessions that ended before cutoff
// (a session still going on is kept, however old).
func (s *Store) PurgeSessionsBefore(ctx context.Context, tenant string, cutoff time.Time) (int64, error) {
	return deleteMatching(ctx, s.sessions, bson.M{"tenant": tenant, "state": StateEnded, "ended_at": bson.M{"$lt": cutoff}})
}

// PurgeAttachmentsBefore deletes tenant's agents' attachments uploaded
// before cutoff (by their `at`, set at upload), open sessions' included,
// as their transcripts are.
func (s *Store) PurgeAttachmentsBefore(ctx context.Context, tenant string, cutoff time.Time) (int64, error) {
	return deleteMatching(ctx, s.attachments, bson.M{"tenant": tenant, "at": bson.M{"$lt": cutoff}})
}

// PurgeHistoryBefore drops, from every customer history of tenant, the
// sessions started before cutoff, and the histories left empty; it
// returns the entries dropped.
func (s *Store) PurgeHistoryBefore(ctx context.Context, tenant string, cutoff time.Time) (int64, error) {
	lister, err := s.history.kv.ListKeysFiltered(ctx, tenant+".>")
	if err != nil {
		return 0, fmt.Errorf("list customer histories: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	var dropped int64
	for _, k := range keys {
		var n int64
		empty := false
		_, err := kvcas.Change(ctx, s.history.kv, k, func(cur []byte) ([]byte, error) {
			var list []HistoryEntry
			if cur == nil || json.Unmarshal(cur, &list) != nil {
				return cur, nil
			}
			kept := slices.DeleteFunc(slices.Clone(list), func(e HistoryEntry) bool { return e.StartedAt.Before(cutoff) })
			n, empty = int64(len(list)-len(kept)), len(kept) == 0
			if n == 0 {
				return cur, nil
			}
			return json.Marshal(kept)
		})
		if err != nil {
			return dropped, fmt.Errorf("customer history: %w", err)
		}
		dropped += n
		if empty {
			if _, err := s.history.remove(ctx, k); err != nil {
				return dropped, err
			}
		}
	}
	return dropped, nil
}

// deleteMatching deletes, by _id, at most scanLimit documents filter finds.
func deleteMatching(ctx context.Context, c *mongo.Collection, filter bson.M) (int64, error) {
	return mongodb.DeleteMatching(ctx, c, filter, scanLimit)
}

// CustomerSessions lists the sessions of tenant whose customer is the
// erased one (+E.164, either channel): the customer's history and a scan
// of the sessions collection, so sessions older than the history's 50
// are found too.
func (s *Store) CustomerSessions(ctx context.Context, tenant, customer string) ([]*Session, error) {
	cur, err := s.sessions.Find(ctx, bson.M{"tenant": tenant, "conversation.customer": bson.M{"$in": []string{customer, "whatsapp:" + customer}}})
	if err != nil {
		return nil, fmt.Errorf("find the customer's sessions: %w", err)
	}
	defer func() { _ = cur.Close(ctx) }()
	var out []*Session
	for cur.Next(ctx) {
		var sess Session
		if err := cur.Decode(&sess); err != nil {
			return nil, fmt.Errorf("find the customer's sessions: %w", err)
		}
		out = append(out, &sess)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("find the customer's sessions: %w", err)
	}
	hist, err := s.History(ctx, tenant, customer)
	if err != nil {
		return nil, err
	}
	for _, h := range hist {
		if slices.ContainsFunc(out, func(x *Session) bool { return x.ID == h.SessionID }) {
			continue
		}
		sess, err := s.Session(ctx, tenant, h.SessionID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if erasure.Matches(sess.Conversation.Customer, customer) {
			out = append(out, sess)
		}
	}
	return out, nil
}

// PurgeTranscript removes a session's whole transcript.
func (s *Store) PurgeTranscript(ctx context.Context, tenant, sessionID string) (int64, error) {
	return s.log.purge(ctx, subjects.Transcript(tenant, sessionID), 0)
}

// DeleteSessionMessages deletes the outbound message documents of the
// sessions.
func (s *Store) DeleteSessionMessages(ctx context.Context, tenant string, sessionIDs []string) (int64, error) {
	keys := make([]string, len(sessionIDs))
	for i, id := range sessionIDs {
		keys[i] = SessionKey(tenant, id)
	}
	return deleteMatching(ctx, s.messages, bson.M{"tenant": tenant, "session_key": bson.M{"$in": keys}})
}

// DeleteSessionAttachments deletes the agents' attachments of the
// sessions (their tenant and session_id, set at upload).
func (s *Store) DeleteSessionAttachments(ctx context.Context, tenant string, sessionIDs []string) (int64, error) {
	return deleteMatching(ctx, s.attachments, bson.M{"tenant": tenant, "session_id": bson.M{"$in": sessionIDs}})
}

// MaskCustomer replaces the session's customer address, name and what
// the workflow collected with erasure.Masked; it reports whether the
// document changed.
func (s *Store) MaskCustomer(ctx context.Context, sess *Session) (bool, error) {
	if sess.Conversation.Customer == erasure.Masked && sess.CustomerName == "" && len(sess.Parameters) == 0 {
		return false, nil
	}
	// The state bucket first: an active session's end writes the document
	// from it (states.go).
	if _, _, err := s.states.change(ctx, sess.Tenant, sess.ID, func(st *Session) {
		st.Conversation.Customer, st.CustomerName, st.Parameters = erasure.Masked, "", nil
	}); err != nil {
		return false, err
	}
	set := bson.M{"conversation.customer": erasure.Masked}
	if sess.State != StateActive {
		// An active session's conversation key names its active pointer;
		// it is masked once the session has ended and been erased again.
		set["conversation_key"] = erasure.Masked
	}
	_, err := s.sessions.UpdateOne(ctx, bson.M{"_id": sess.Key},
		bson.M{"$set": set, "$unset": bson.M{"customer_name": "", "parameters": ""}})
	if err != nil {
		return false, fmt.Errorf("mask session %s: %w", sess.Key, err)
	}
	return true, nil
}

// ForgetHistory deletes the customer's history (both channels share it).
func (s *Store) ForgetHistory(ctx context.Context, tenant, customer string) (bool, error) {
	n, err := s.history.remove(ctx, customerKey(tenant, customer))
	return n > 0, err
}

// remove purges every revision of a history key from the bucket's stream,
// leaving no delete marker (a KV delete or purge keeps one, and the key
// names the customer).
func (h *historyIndex) remove(ctx context.Context, key string) (int64, error) {
	n, err := purgeStream(ctx, h.js, "KV_"+subjects.BucketCustomerHistory, "$KV."+subjects.BucketCustomerHistory+"."+key, 0)
	if err != nil {
		return 0, fmt.Errorf("customer history: %w", err)
	}
	return n, nil
}
