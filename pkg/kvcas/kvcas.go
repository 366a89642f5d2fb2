// Package kvcas is compare-and-set on JetStream key-value buckets, the way
// Switchboard keeps hot state that several writers share: bind or create a
// bucket, write a key only at the revision it was read at, and retry a
// read-modify-write when another writer got in first.
package kvcas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict is a write at a revision that is no longer the key's.
var ErrConflict = errors.New("written by another writer since it was read")

// Bind returns the bucket cfg names, creating it with cfg when missing.
func Bind(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Put writes value at rev (0: the key must not exist) and returns the new
// revision, or ErrConflict.
func Put(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, rev uint64) (uint64, error) {
	var err error
	var next uint64
	if rev == 0 {
		next, err = kv.Create(ctx, key, value)
	} else {
		next, err = kv.Update(ctx, key, value, rev)
	}
	if IsConflict(err) {
		return 0, ErrConflict
	}
	return next, err
}

// IsConflict reports whether a write (a create, an update, a delete at a
// revision) failed because the key's revision moved: code 10071 on a
// stream of one replica, 10164 on a replicated one (nats.go maps both to
// ErrKeyRevisionMismatch for an update, not for a create). Missing 10164,
// every conflict on an R3 bucket was an error instead of a retry (a chaos
// run's assignment failed on one).
func IsConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Get returns the key's value and revision; a missing key is nil and 0.
func Get(ctx context.Context, kv jetstream.KeyValue, key string) ([]byte, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

const maxAttempts = 50

// backoff is the pause before attempt (2 or more) of a change that lost
// the race: random, so writers that collided do not collide again in
// lockstep, and growing with the attempt up to 20 ms. Without it, a few
// dozen writers on one key can starve one of them past every attempt.
func backoff(attempt int) time.Duration {
	ceiling := time.Duration(min(attempt, 20)) * time.Millisecond
	return time.Duration(rand.Int64N(int64(ceiling)) + 1)
}

// Change applies f to the key's value (nil when missing) and writes the
// result at the revision it read, retrying after a random pause when
// another writer got in first. A result equal to the value read is not
// written. It returns the value now stored.
func Change(ctx context.Context, kv jetstream.KeyValue, key string, f func(current []byte) ([]byte, error)) ([]byte, error) {
	return change(ctx, kv, key, func() ([]byte, uint64, error) { return Get(ctx, kv, key) }, f)
}

// ChangeLatest is Change reading the key from the bucket's stream leader
// (GetLatest): a read answered by a replica catching up could show the
// change made already, or the key missing, and f would then leave it as
// it is without a write to notice.
func ChangeLatest(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string, f func(current []byte) ([]byte, error)) ([]byte, error) {
	return change(ctx, kv, key, func() ([]byte, uint64, error) { return GetLatest(ctx, js, kv.Bucket(), key) }, f)
}

func change(ctx context.Context, kv jetstream.KeyValue, key string, get func() ([]byte, uint64, error), f func(current []byte) ([]byte, error)) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		cur, rev, err := get()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", key, err)
		}
		next, err := f(cur)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(next, cur) {
			return cur, nil
		}
		_, err = Put(ctx, kv, key, next, rev)
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= maxAttempts {
			return nil, fmt.Errorf("write %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("write %s: %w", key, ctx.Err())
		case <-time.After(backoff(attempt)):
		}
	}
}

// DefaultTimeout bounds GetLatest when its context has no deadline.
const DefaultTimeout = 5 * time.Second

// GetLatest is Get answered by the bucket's stream leader: a get may be
// answered by any replica, and one catching up (a restarted node) answers
// from before writes the leader has acknowledged. Read this way what must
// reflect every write acknowledged before the read, at the cost of a
// request to the leader. A missing or deleted key is nil and 0.
func GetLatest(ctx context.Context, js jetstream.JetStream, bucket, key string) ([]byte, uint64, error) {
	m, err := LastBySubject(ctx, js, "KV_"+bucket, "$KV."+bucket+"."+key)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", key, err)
	}
	if m == nil {
		return nil, 0, nil
	}
	if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return nil, 0, nil
	}
	return m.Data, m.Seq, nil
}

// withDefaultTimeout bounds ctx by DefaultTimeout unless it has a deadline
// of its own, as the JetStream API's own calls do: a leader being elected
// may not answer at all.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// LeaderMsg is a stream's message as its leader answers it.
type LeaderMsg struct {
	Seq    uint64
	Time   time.Time
	Header nats.Header
	Data   []byte
}

// LastBySubject is the last message of a stream on subject, as the
// stream's leader answers it (not a direct get, which any replica may
// answer from behind the leader); nil when there is none.
func LastBySubject(ctx context.Context, js jetstream.JetStream, stream, subject string) (*LeaderMsg, error) {
	req, err := json.Marshal(map[string]string{"last_by_subj": subject})
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Message *struct {
			Seq  uint64    `json:"seq"`
			Time time.Time `json:"time"`
			Hdrs []byte    `json:"hdrs"`
			Data []byte    `json:"data"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, err
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, nil
	case resp.Error != nil:
		return nil, resp.Error
	case resp.Message == nil:
		return nil, jetstream.ErrInvalidJetStreamResponse
	}
	out := &LeaderMsg{Seq: resp.Message.Seq, Time: resp.Message.Time, Data: resp.Message.Data}
	if len(resp.Message.Hdrs) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Hdrs)
		if err != nil {
			return nil, err
		}
		out.Header = h
	}
	return out, nil
}
