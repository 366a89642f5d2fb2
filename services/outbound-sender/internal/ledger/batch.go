package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// errDuplicate is a document whose _id exists already.
var errDuplicate = errors.New("duplicate _id")

// Group commit: concurrent sends each insert a few documents; the batcher
// collects what is waiting while the previous batch is being written and
// writes it in one unordered InsertMany. At low load a batch is one
// insert and nothing waits; under load one database round trip (and, on
// FerretDB/SQLite, one transaction and fsync) carries many sends.
type batcher struct {
	c    *mongo.Collection
	ops  chan *insertOp
	stop chan struct{}
	done chan struct{}
}

type insertOp struct {
	docs []any
	errs []error // per document: nil, errDuplicate or another error
	done chan struct{}
}

const (
	maxBatchDocs = 512
	flushers     = 1
)

func newBatcher(c *mongo.Collection) *batcher {
	b := &batcher{c: c, ops: make(chan *insertOp, 4096), stop: make(chan struct{}), done: make(chan struct{})}
	finished := make(chan struct{}, flushers)
	for range flushers {
		go func() { b.run(); finished <- struct{}{} }()
	}
	go func() {
		for range flushers {
			<-finished
		}
		close(b.done)
	}()
	return b
}

func (b *batcher) close() {
	close(b.stop)
	<-b.done
}

// insert writes docs in the next batch and reports each one's fate.
func (b *batcher) insert(ctx context.Context, docs ...any) ([]error, error) {
	op := &insertOp{docs: docs, done: make(chan struct{})}
	select {
	case b.ops <- op:
	case <-b.stop:
		return nil, errors.New("ledger is closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-op.done:
		return op.errs, nil
	case <-ctx.Done():
		// The batch may still be written: callers treat this like any
		// failed write and find the documents on retry.
		return nil, ctx.Err()
	}
}

func (b *batcher) run() {
	for {
		var first *insertOp
		select {
		case first = <-b.ops:
		case <-b.stop:
			return
		}
		batch := []*insertOp{first}
		n := len(first.docs)
	fill:
		for n < maxBatchDocs {
			select {
			case op := <-b.ops:
				batch = append(batch, op)
				n += len(op.docs)
			default:
				break fill
			}
		}
		b.write(batch)
	}
}

func (b *batcher) write(batch []*insertOp) {
	var docs []any
	for _, op := range batch {
		op.errs = make([]error, len(op.docs))
		docs = append(docs, op.docs...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := b.c.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	perDoc := make([]error, len(docs))
	if err != nil {
		var bwe mongo.BulkWriteException
		if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
			for _, we := range bwe.WriteErrors {
				if we.Index < 0 || we.Index >= len(perDoc) {
					continue
				}
				if we.HasErrorCode(11000) || mongo.IsDuplicateKeyError(we) {
					perDoc[we.Index] = errDuplicate
				} else {
					perDoc[we.Index] = fmt.Errorf("insert ledger document: %w", we)
				}
			}
		} else {
			for i := range perDoc {
				perDoc[i] = fmt.Errorf("insert ledger documents: %w", err)
			}
		}
	}
	i := 0
	for _, op := range batch {
		for j := range op.docs {
			op.errs[j] = perDoc[i]
			i++
		}
		close(op.done)
	}
}
