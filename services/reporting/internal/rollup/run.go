package rollup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/pricing"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
)

// Records reads session records (records.Store).
type Records interface {
	Raw(ctx context.Context, tenant, session string) (*records.Doc, error)
	MarkRolledUp(ctx context.Context, tenant, session string, seq uint64) error
}

// RunOptions tune the reader.
type RunOptions struct {
	// Delay after a SessionEnded is stored before its session is rolled
	// up, so the events of the other streams (DISTRIBUTION, OUTBOUND) that
	// happened before the end are in the record; 1 minute when zero,
	// none when negative.
	Delay time.Duration
	// RecordWait bounds how long to wait for the record to show the end
	// (the record consumer lagging); 30 s when zero. After it, the
	// session is rolled up from what the record has and the event.
	RecordWait time.Duration
	// Batch is the most sessions applied together; 256 when zero.
	Batch int
	// OnApplied, if set, is told the cursor after each batch (tests).
	OnApplied func(cursor uint64)
	// Lease is how long the writer lease lasts unrenewed; 30 s when zero.
	Lease time.Duration
}

func (o *RunOptions) defaults() {
	if o.Delay == 0 {
		o.Delay = time.Minute
	}
	if o.Delay < 0 {
		o.Delay = 0
	}
	if o.RecordWait <= 0 {
		o.RecordWait = 30 * time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
}

// Run rolls up ended sessions until ctx is done. It reads the SESSION
// stream's SessionEnded events with an ordered consumer (in stream order,
// no gaps, no acknowledgements) from the stored cursor on; after any
// error it starts over from the cursor. One writer runs per database: it
// holds a lease in rollup_state (renewed every third of RunOptions.Lease);
// the others wait for it to lapse, so replicas may all run Run.
func (s *Store) Run(ctx context.Context, js jetstream.JetStream, recs Records, o RunOptions, log *slog.Logger) error {
	o.defaults()
	s.log = log
	defer s.release(context.WithoutCancel(ctx))
	for {
		held, err := s.acquire(ctx, o.Lease)
		if held {
			err = s.runHeld(ctx, js, recs, o)
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := o.Lease / 3
		if err != nil {
			log.WarnContext(ctx, "rollups: starting over from the cursor", "err", err)
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// runHeld writes while the lease is renewed; losing it stops the writing.
func (s *Store) runHeld(ctx context.Context, js jetstream.JetStream, recs Records, o RunOptions) error {
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		for {
			select {
			case <-lctx.Done():
				return
			case <-time.After(o.Lease / 3):
			}
			held, err := s.acquire(lctx, o.Lease)
			if err == nil && !held {
				err = errors.New("another writer holds it")
			}
			if err != nil {
				cancel(fmt.Errorf("writer lease lost: %w", err))
				return
			}
		}
	}()
	err := s.runOnce(lctx, js, recs, o)
	if c := context.Cause(lctx); c != nil && ctx.Err() == nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

func (s *Store) runOnce(ctx context.Context, js jetstream.JetStream, recs Records, o RunOptions) error {
	s.forgetPeriods() // another writer may have held the lease meanwhile
	cursor, err := s.Cursor(ctx)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects.AllTenants(subjects.KindSessionEnded)}}
	if cursor > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cursor+1
	}
	cons, err := js.OrderedConsumer(ctx, subjects.StreamSession, cfg)
	if err != nil {
		return fmt.Errorf("read ended sessions: %w", err)
	}
	for {
		batch, err := cons.Fetch(o.Batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("read ended sessions: %w", err)
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read ended sessions: %w", err)
		}
		if len(msgs) == 0 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		last, err := s.applyMsgs(ctx, recs, o, msgs)
		if err != nil {
			return err
		}
		if err := s.SetCursor(ctx, last); err != nil {
			return err
		}
		if o.OnApplied != nil {
			o.OnApplied(last)
		}
	}
}

func (s *Store) applyMsgs(ctx context.Context, recs Records, o RunOptions, msgs []jetstream.Msg) (uint64, error) {
	var last uint64
	var newest time.Time
	type item struct {
		seq uint64
		ev  *sessionv1.SessionEnded
	}
	items := make([]item, 0, len(msgs))
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			return 0, fmt.Errorf("read ended sessions: %w", err)
		}
		last = meta.Sequence.Stream
		newest = meta.Timestamp
		bm, err := bus.Received(m)
		if err != nil {
			return 0, err
		}
		var ev sessionv1.SessionEnded
		if bm.Decode(&ev) != nil || ev.GetSessionId() == "" || ev.GetTenantId() != bm.Tenant() {
			continue // not a session's end: nothing to roll up
		}
		items = append(items, item{meta.Sequence.Stream, &ev})
	}
	// Wait until the newest end is Delay old (the older ones are too).
	if wait := time.Until(newest.Add(o.Delay)); wait > 0 {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
	}
	// A session ends once, but its SessionEnded may be in the stream
	// twice (published again after the stream's duplicate window): only
	// the first is rolled up. The record remembers which one was (marked
	// after the rollups are written, before the cursor moves past it).
	docs := make([]*records.Doc, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, it := range items {
		g.Go(func() (err error) {
			docs[i], err = s.final(gctx, recs, o, it.ev)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	batch := make([]Session, 0, len(items))
	inBatch := map[string]bool{}
	for i, it := range items {
		d := docs[i]
		k := it.ev.GetTenantId() + "/" + it.ev.GetSessionId()
		if inBatch[k] || (d != nil && d.RolledUp != 0 && uint64(d.RolledUp) != it.seq) {
			continue
		}
		inBatch[k] = true
		ss := FromRecord(it.seq, d, it.ev)
		if d != nil {
			c := &ss.Rows[0].C
			c[CostMicros] = s.prices(ctx, it.ev.GetTenantId()).Estimate(messagingv1.Channel(d.Channel), pricing.Country(d.Customer), c[SegmentsIn], c[SegmentsOut])
		}
		batch = append(batch, ss)
	}
	if err := s.Apply(ctx, batch); err != nil {
		return 0, err
	}
	// Marked together: the records' writer commits them in few batches.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(64)
	for _, ss := range batch {
		_, id, _ := strings.Cut(ss.key, "/")
		g.Go(func() error { return recs.MarkRolledUp(gctx, ss.Tenant, id, ss.Seq) })
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return last, nil
}

// final reads the session's record once it shows the end, or after
// RecordWait whatever it shows; nil if there is none.
func (s *Store) final(ctx context.Context, recs Records, o RunOptions, ev *sessionv1.SessionEnded) (*records.Doc, error) {
	deadline := time.Now().Add(o.RecordWait)
	for {
		d, err := recs.Raw(ctx, ev.GetTenantId(), ev.GetSessionId())
		switch {
		case errors.Is(err, records.ErrNotFound):
			d = nil
		case err != nil:
			return nil, err
		}
		if (d != nil && d.State == int32(reportingv1.SessionState_SESSION_STATE_ENDED)) || time.Now().After(deadline) {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
