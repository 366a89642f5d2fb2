package kvcas

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// A revision conflict is recognised whichever code the server gives it:
// 10071 from a bucket of one replica, 10164 from a replicated one (what an
// R3 bucket answered in a chaos run: "wrong last sequence: nats: key
// revision mismatch").
func TestConflictCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"R1 update", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence, Description: "wrong last sequence: 3"}, true},
		{"R3 update", fmt.Errorf("nats: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant, Description: "wrong last sequence"}), true},
		{"key exists", jetstream.ErrKeyExists, true},
		{"revision mismatch", jetstream.ErrKeyRevisionMismatch, true},
		{"other API error", &jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}, false},
		{"timeout", errors.New("context deadline exceeded"), false},
		{"none", nil, false},
	} {
		if got := IsConflict(tc.err); got != tc.want {
			t.Errorf("%s: IsConflict(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
