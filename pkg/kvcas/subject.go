package kvcas

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// subjectPage is how many messages one batched direct get asks for.
const subjectPage = 256

// numPendingHeader: on each message of a batch, how many of the
// subject's messages come after it.
const numPendingHeader = "Nats-Num-Pending"

// ReadSubject hands every message of a stream on subject to fn, oldest
// first, through batched direct gets (the stream must allow direct
// gets): a request per page, served from the subject index, and no
// consumer. An ordered consumer per read would do the same work, but each
// one outlives the read by its inactivity threshold and counts against
// the stream's consumer limit (1,000 by default): a few reads a second
// reach it, and every read after is refused.
//
// Any replica may answer a direct get, and one behind the leader misses
// the newest messages: callers that must see everything compare the last
// sequence they got with LastBySubject's. fn returning false stops the
// read; limit > 0 stops it after that many messages. It returns the
// highest stream sequence handed to fn (0 when the subject is empty).
func ReadSubject(ctx context.Context, js jetstream.JetStream, stream, subject string, limit int, fn func(*jetstream.RawStreamMsg) bool) (uint64, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var last uint64
	next, read := uint64(1), 0
	for {
		page := subjectPage
		if limit > 0 {
			page = min(page, limit-read)
		}
		msgs, err := jetstreamext.GetBatch(ctx, js, stream, page, jetstreamext.GetBatchSubject(subject), jetstreamext.GetBatchSeq(next))
		if err != nil {
			return last, fmt.Errorf("read %s from %s: %w", subject, stream, err)
		}
		got, pending := 0, uint64(0)
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				return last, nil
			}
			if err != nil {
				return last, fmt.Errorf("read %s from %s: %w", subject, stream, err)
			}
			got++
			read++
			last, next = m.Sequence, m.Sequence+1
			pending, _ = strconv.ParseUint(m.Header.Get(numPendingHeader), 10, 64)
			if !fn(m) {
				return last, nil
			}
		}
		if got == 0 || pending == 0 || (limit > 0 && read >= limit) {
			return last, nil
		}
	}
}
