package bus

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// KeyFunc names the ordering key of a message: messages with one key are
// handled one at a time, in stream order; messages with different keys run
// concurrently. An error settles the message as the handler's would.
type KeyFunc func(m *Message) (string, error)

// ConsumeKeyed is Consume with concurrency that keeps per-key order: each
// message goes to one of workers lanes chosen by a hash of its key, and
// each lane handles its messages in the order they arrived. One slow
// conversation holds up only the keys that share its lane, and a handler
// that waits on I/O no longer holds up the whole consumer. MaxAckPending
// bounds the messages queued in all lanes. The handler contract is
// Consume's (ack, redeliver with backoff, dead-letter); messages waiting in
// a lane are kept alive with in-progress acks.
//
// A redelivered message may overtake later ones of its key (JetStream
// redelivers after the backoff); handlers stay idempotent and tolerate it,
// as they must with Consume.
func (b *Bus) ConsumeKeyed(ctx context.Context, spec ConsumerSpec, workers int, key KeyFunc, h Handler) error {
	if workers <= 1 {
		return b.Consume(ctx, spec, h)
	}
	spec = spec.WithDefaults()
	type item struct {
		msg  jetstream.Msg
		m    *Message
		stop func()
	}
	// JetStream never has more than MaxAckPending messages of the consumer
	// out at once, so a lane as deep as that never fills: the callback
	// never blocks, and one slow key never holds up the other lanes.
	lanes := make([]chan item, workers)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan item, spec.MaxAckPending+1)
		wg.Go(func() {
			for it := range lanes[i] {
				hctx, span := b.StartSpan(ctx, spec.Durable, it.m)
				herr := Guard(func() error { return h(hctx, it.m) })
				it.stop()
				b.Settle(hctx, spec, it.msg, it.m, herr)
				span.End()
			}
		})
	}
	seed := maphash.MakeSeed()
	var closed bool
	var mu sync.Mutex
	err := b.consumeUntilDone(ctx, spec, func(msg jetstream.Msg) {
		m, err := Received(msg)
		if err != nil {
			b.log.Error("message metadata", "consumer", spec.Durable, "err", err)
			_ = msg.Nak()
			return
		}
		k, kerr := key(m)
		if kerr != nil {
			hctx, span := b.StartSpan(ctx, spec.Durable, m)
			b.Settle(hctx, spec, msg, m, kerr)
			span.End()
			return
		}
		it := item{msg: msg, m: m, stop: KeepAlive(msg, spec.AckWait)}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			it.stop()
			_ = msg.Nak()
			return
		}
		select {
		case lanes[maphash.String(seed, k)%uint64(workers)] <- it:
		default:
			// More out than MaxAckPending (a redelivery racing its own
			// settle): hand it back rather than block every lane.
			it.stop()
			_ = msg.NakWithDelay(spec.Backoff(m.Delivered))
		}
	})
	mu.Lock()
	closed = true
	for _, l := range lanes {
		close(l)
	}
	mu.Unlock()
	wg.Wait()
	return err
}

// KeyByField orders events by one of their string fields (for example
// "session_id"), read through the registered type the event's Sb-Type
// header names; an event without the field, or with it empty, is keyed by
// its subject.
func KeyByField(field protoreflect.Name) KeyFunc {
	return func(m *Message) (string, error) {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(m.Header.Get(HeaderType)))
		if err != nil {
			return m.Subject, nil
		}
		msg := mt.New()
		if err := proto.Unmarshal(m.Data, msg.Interface()); err != nil {
			return "", Permanentf("decode %s: %v", m.Subject, err)
		}
		if f := msg.Descriptor().Fields().ByName(field); f != nil && f.Kind() == protoreflect.StringKind {
			if v := msg.Get(f).String(); v != "" {
				return m.Tenant() + "/" + v, nil
			}
		}
		return m.Subject, nil
	}
}
