package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// errDuplicate is a document whose _id exists already.
var errDuplicate = errors.New("duplicate _id")

// Group commit: the inbound lanes each insert a claim and a done marker per
// customer message, and the outbound lanes a document per reply and an
// update per delivery status. A batcher per collection collects the writes
// that arrive while the previous batch is being written and sends them in
// one unordered bulk write, so under
// load one round trip (on FerretDB one SQLite transaction and fsync, on
// MongoDB one journal commit) carries many messages; at low load a batch
// is one insert and nothing waits. Each insert still learns its own fate
// (written, duplicate _id, or another error), which the claims depend on.
// Updates name one document by _id each, and the lanes handle one
// session's events in order, so no batch holds two writes of one document.
type batcher struct {
	c    *mongo.Collection
	what string
	ops  chan *insertOp
	stop chan struct{}
	done chan struct{}
}

type insertOp struct {
	model mongo.WriteModel
	err   error // nil, errDuplicate or another error
	done  chan struct{}
}

const maxBatchDocs = 256

func newBatcher(c *mongo.Collection, what string) *batcher {
	b := &batcher{c: c, what: what, ops: make(chan *insertOp, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *batcher) close() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
}

// insert writes doc in the next batch: nil, errDuplicate, or an error.
func (b *batcher) insert(ctx context.Context, doc any) error {
	return b.do(ctx, mongo.NewInsertOneModel().SetDocument(doc))
}

// update applies update to the document id in the next batch.
func (b *batcher) update(ctx context.Context, id string, update any) error {
	return b.do(ctx, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": id}).SetUpdate(update))
}

func (b *batcher) do(ctx context.Context, model mongo.WriteModel) error {
	op := &insertOp{model: model, done: make(chan struct{})}
	select {
	case b.ops <- op:
	case <-b.stop:
		return fmt.Errorf("write %s: store is closed", b.what)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		// The batch may still be written: every caller treats this as a
		// failed write, and the redelivery finds the document.
		return ctx.Err()
	}
}

func (b *batcher) run() {
	defer close(b.done)
	for {
		var first *insertOp
		select {
		case first = <-b.ops:
		case <-b.stop:
			return
		}
		batch := []*insertOp{first}
	fill:
		for len(batch) < maxBatchDocs {
			select {
			case op := <-b.ops:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		b.write(batch)
	}
}

func (b *batcher) write(batch []*insertOp) {
	models := make([]mongo.WriteModel, len(batch))
	for i, op := range batch {
		models[i] = op.model
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := b.c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err != nil {
		var bwe mongo.BulkWriteException
		if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
			for _, we := range bwe.WriteErrors {
				if we.Index < 0 || we.Index >= len(batch) {
					continue
				}
				if we.HasErrorCode(11000) || mongo.IsDuplicateKeyError(we) {
					batch[we.Index].err = errDuplicate
				} else {
					batch[we.Index].err = fmt.Errorf("write %s: %w", b.what, we)
				}
			}
		} else {
			for _, op := range batch {
				op.err = fmt.Errorf("write %s: %w", b.what, err)
			}
		}
	}
	for _, op := range batch {
		close(op.done)
	}
}
