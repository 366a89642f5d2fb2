package records

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Group commit: each event is one upsert by _id. The writer collects the
// upserts that arrive while the previous batch is being written and sends
// them in one unordered bulk write, so one round trip (and on MongoDB one
// journal commit) carries many events. One writer per store also means
// this process never updates one record from two connections at once,
// which FerretDB (read-modify-write without a transaction) would get wrong.
type writer struct {
	c    *mongo.Collection
	ops  chan *upsertOp
	stop chan struct{}
	done chan struct{}
}

type upsertOp struct {
	id     string
	update bson.M
	err    error
	done   chan struct{}
}

const maxBatch = 256

func newWriter(c *mongo.Collection) *writer {
	w := &writer{c: c, ops: make(chan *upsertOp, 4096), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *writer) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// upsert applies update to the record id in the next batch.
func (w *writer) upsert(ctx context.Context, id string, update bson.M) error {
	op := &upsertOp{id: id, update: update, done: make(chan struct{})}
	select {
	case w.ops <- op:
	case <-w.stop:
		return errors.New("records store is closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		// The batch may still be written; every update is idempotent, so
		// the redelivery that follows applies it again harmlessly.
		return ctx.Err()
	}
}

func (w *writer) run() {
	defer close(w.done)
	for {
		var first *upsertOp
		select {
		case first = <-w.ops:
		case <-w.stop:
			return
		}
		batch := []*upsertOp{first}
	fill:
		for len(batch) < maxBatch {
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

func (w *writer) write(batch []*upsertOp) {
	models := make([]mongo.WriteModel, len(batch))
	for i, op := range batch {
		models[i] = mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": op.id}).SetUpdate(op.update).SetUpsert(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := w.c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err != nil {
		var bwe mongo.BulkWriteException
		if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
			for _, we := range bwe.WriteErrors {
				if we.Index >= 0 && we.Index < len(batch) {
					batch[we.Index].err = fmt.Errorf("upsert record %s: %w", batch[we.Index].id, we)
				}
			}
		} else {
			for _, op := range batch {
				op.err = fmt.Errorf("upsert record %s: %w", op.id, err)
			}
		}
	}
	for _, op := range batch {
		close(op.done)
	}
}
