package bus

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Transient marks err as the failure of a dependency that comes back (a
// service, the database or the broker unreachable or timing out): the
// message is retried past MaxDeliver, for up to TransientFor, rather than
// dead-lettered.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// IsTransient reports whether err is an outage rather than something
// wrong with the message: marked by Transient, a gRPC Unavailable,
// DeadlineExceeded, ResourceExhausted or Aborted, a deadline, a network
// error (connection refused, reset, timed out), or the broker not
// answering. Permanent wins.
func IsTransient(err error) bool {
	if err == nil || IsPermanent(err) {
		return false
	}
	var t transientError
	if errors.As(err, &t) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
			return true
		}
	}
	return false
}

// DefaultTransientFor is how long a message failing only transiently is
// retried before it is dead-lettered after all.
const DefaultTransientFor = 24 * time.Hour
