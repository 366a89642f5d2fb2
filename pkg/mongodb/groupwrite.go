package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ErrDuplicate is an insert whose _id exists already.
var ErrDuplicate = errors.New("duplicate _id")

// GroupWriter group-commits one collection's writes: the writes that
// arrive while the previous batch is being written go out together in one
// unordered bulk write, so under load one round trip (on FerretDB one
// SQLite transaction and fsync, on MongoDB one journal commit) carries
// many of them, and at low load a batch is one write and nothing waits.
// Each write still learns its own fate: nil, ErrDuplicate for an insert
// whose _id exists, or another error. Every write names one document by
// _id alone (the only filter FerretDB serves from an index); callers keep
// two writes of one document out of one batch by handling a key's events
// in order, or have its upserts merged (WithMergedUpserts).
type GroupWriter struct {
	c     *mongo.Collection
	what  string
	merge MergeFunc
	ops   chan *groupOp
	stop  chan struct{}
	done  chan struct{}
}

// MergeFunc combines two updates of one document, older first, into one
// with the same effect, or returns nil if it cannot.
type MergeFunc func(older, newer bson.M) bson.M

// GroupOption configures a GroupWriter.
type GroupOption func(*GroupWriter)

// WithMergedUpserts merges the upserts of one document that land in one
// batch (update documents of type bson.M) into one statement with merge:
// FerretDB reads and rewrites the whole document for each statement, so
// a session's burst of events costs one rewrite instead of one each, and
// one document is never named twice in a bulk write. Each merged write
// learns the merged statement's fate.
func WithMergedUpserts(merge MergeFunc) GroupOption {
	return func(w *GroupWriter) { w.merge = merge }
}

type groupOp struct {
	model mongo.WriteModel
	err   error
	done  chan struct{}
}

// MaxGroup bounds the writes taken in one batch; a batch goes out as bulk
// writes of at most GroupChunk statements, one after the other, each with
// its own deadline (groupTimeout). One bulk write of the whole batch had
// one deadline for all of it: on a loaded FerretDB a batch of 256 upserts
// outlasted it, every write of it failed and came back redelivered as an
// equally large batch, and the writer made no progress at all (a soak at
// 50 messages/s stalled reporting this way). A chunk that fails fails its
// own writes only, and the chunks before it have succeeded.
const (
	MaxGroup     = 256
	GroupChunk   = 64
	groupTimeout = 30 * time.Second
)

// NewGroupWriter starts a writer for c; what names its writes in errors.
// Close stops it.
func NewGroupWriter(c *mongo.Collection, what string, opts ...GroupOption) *GroupWriter {
	w := &GroupWriter{c: c, what: what, ops: make(chan *groupOp, 4096), stop: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(w)
	}
	go w.run()
	return w
}

// Close stops the writer once the batch in hand is written; later writes
// fail.
func (w *GroupWriter) Close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Insert writes doc in the next batch: nil, ErrDuplicate, or an error.
func (w *GroupWriter) Insert(ctx context.Context, doc any) error {
	return w.Do(ctx, mongo.NewInsertOneModel().SetDocument(doc))
}

// Update applies update to the document id in the next batch.
func (w *GroupWriter) Update(ctx context.Context, id string, update any) error {
	return w.Do(ctx, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": id}).SetUpdate(update))
}

// Upsert applies update to the document id, creating it if missing.
func (w *GroupWriter) Upsert(ctx context.Context, id string, update any) error {
	return w.Do(ctx, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": id}).SetUpdate(update).SetUpsert(true))
}

// Do writes model in the next batch. A caller whose ctx ends first gets
// ctx's error though the batch may still be written: it must treat the
// write as failed and find the document on its retry.
func (w *GroupWriter) Do(ctx context.Context, model mongo.WriteModel) error {
	closed := fmt.Errorf("write %s: writer is closed", w.what)
	select {
	case <-w.stop:
		return closed
	default:
	}
	op := &groupOp{model: model, done: make(chan struct{})}
	select {
	case w.ops <- op:
	case <-w.stop:
		return closed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-op.done:
		return op.err
	case <-w.done:
		// Stopped with op still queued: it was not written. (The
		// runner closes op.done before w.done for a batch it wrote.)
		select {
		case <-op.done:
			return op.err
		default:
			return closed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *GroupWriter) run() {
	defer close(w.done)
	for {
		var first *groupOp
		select {
		case first = <-w.ops:
		case <-w.stop:
			return
		}
		batch := []*groupOp{first}
	fill:
		for len(batch) < MaxGroup {
			select {
			case op := <-w.ops:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		w.write(batch)
	}
}

// upsertOf is the _id and update of an upsert by _id alone.
func upsertOf(m mongo.WriteModel) (string, bson.M, bool) {
	u, ok := m.(*mongo.UpdateOneModel)
	if !ok || u.Upsert == nil || !*u.Upsert {
		return "", nil, false
	}
	f, ok := u.Filter.(bson.M)
	if !ok || len(f) != 1 {
		return "", nil, false
	}
	id, ok := f["_id"].(string)
	upd, ok2 := u.Update.(bson.M)
	return id, upd, ok && ok2
}

func (w *GroupWriter) write(batch []*groupOp) {
	models := make([]mongo.WriteModel, 0, len(batch))
	// owners[i] are the ops models[i] writes (several when merged).
	owners := make([][]*groupOp, 0, len(batch))
	merged := map[string]int{}
	for _, op := range batch {
		if w.merge != nil {
			if id, upd, ok := upsertOf(op.model); ok {
				if i, seen := merged[id]; seen {
					_, prev, _ := upsertOf(models[i])
					if m := w.merge(prev, upd); m != nil {
						models[i] = mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": id}).SetUpdate(m).SetUpsert(true)
						owners[i] = append(owners[i], op)
						continue
					}
				} else {
					merged[id] = len(models)
				}
			}
		}
		models = append(models, op.model)
		owners = append(owners, []*groupOp{op})
	}
	for start := 0; start < len(models); start += GroupChunk {
		end := min(start+GroupChunk, len(models))
		w.writeChunk(models[start:end], owners[start:end])
		for _, ops := range owners[start:end] {
			for _, op := range ops {
				close(op.done)
			}
		}
	}
}

// writeChunk writes models in one unordered bulk write and sets the error
// of each op of owners (owners[i] wrote models[i]).
func (w *GroupWriter) writeChunk(models []mongo.WriteModel, owners [][]*groupOp) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	_, err := w.c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err == nil {
		return
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
		for _, we := range bwe.WriteErrors {
			if we.Index < 0 || we.Index >= len(owners) {
				continue
			}
			for _, op := range owners[we.Index] {
				if we.HasErrorCode(11000) || mongo.IsDuplicateKeyError(we) {
					op.err = ErrDuplicate
				} else {
					op.err = fmt.Errorf("write %s: %w", w.what, we)
				}
			}
		}
		return
	}
	for _, ops := range owners {
		for _, op := range ops {
			op.err = fmt.Errorf("write %s: %w", w.what, err)
		}
	}
}
