package app

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Storage errors the tables and claims return; the app turns them into
// *Error with context.
var (
	ErrNotFound        = errors.New("not found")
	ErrDuplicate       = errors.New("duplicate key")
	ErrVersionMismatch = errors.New("version mismatch")
)

// Code classifies a domain error; the gRPC adapter maps each to one status
// code.
type Code int

const (
	// CodeInvalid: the request itself is malformed (InvalidArgument).
	CodeInvalid Code = iota + 1
	// CodeNotFound: the addressed record does not exist (NotFound).
	CodeNotFound
	// CodeAlreadyExists: an id, SID, number, email or entry assignment is
	// taken (AlreadyExists).
	CodeAlreadyExists
	// CodeFailedPrecondition: the request is well-formed but the current
	// state forbids it: a referenced record is missing, a tenant modality is
	// off, a workflow has an activity unsupported for IM (FailedPrecondition).
	CodeFailedPrecondition
	// CodeStale: the caller's version is not the stored one (Aborted).
	CodeStale
	// CodeUnauthenticated: wrong sign-in credentials (Unauthenticated).
	CodeUnauthenticated
	// CodeThrottled: too many failed sign-ins; RetryAfter says when to
	// try again (ResourceExhausted with RetryInfo).
	CodeThrottled
)

// Violation names the field at fault, relative to the resource
// ("account_sid", "distribution.rona_timeout", "messaging_entry_ids[1]").
type Violation struct {
	Field       string
	Description string
}

// Error is a domain error with the fields at fault.
type Error struct {
	Code       Code
	Message    string
	Violations []Violation
	// RetryAfter is set with CodeThrottled.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if len(e.Violations) == 0 {
		return e.Message
	}
	parts := make([]string, 0, len(e.Violations))
	for _, v := range e.Violations {
		parts = append(parts, v.Field+": "+v.Description)
	}
	if e.Message == "" {
		return strings.Join(parts, "; ")
	}
	return e.Message + ": " + strings.Join(parts, "; ")
}

// violations collects field problems while validating.
type violations []Violation

func (vs *violations) add(field, format string, args ...any) {
	*vs = append(*vs, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// err returns nil when nothing was added.
func (vs violations) err(code Code, msg string) error {
	if len(vs) == 0 {
		return nil
	}
	return &Error{Code: code, Message: msg, Violations: vs}
}

func invalid(field, format string, args ...any) error {
	return &Error{Code: CodeInvalid, Message: "invalid request", Violations: []Violation{{field, fmt.Sprintf(format, args...)}}}
}

func precondition(field, format string, args ...any) error {
	return &Error{Code: CodeFailedPrecondition, Message: "failed precondition", Violations: []Violation{{field, fmt.Sprintf(format, args...)}}}
}

func alreadyExists(field, format string, args ...any) error {
	return &Error{Code: CodeAlreadyExists, Message: "already exists", Violations: []Violation{{field, fmt.Sprintf(format, args...)}}}
}

func notFound(kind, tenant, id string) error {
	if tenant == "" {
		return &Error{Code: CodeNotFound, Message: fmt.Sprintf("%s %q not found", kind, id)}
	}
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf("%s %q not found in tenant %q", kind, id, tenant)}
}

func stale(kind, id string, got, want int64) error {
	return &Error{Code: CodeStale, Message: fmt.Sprintf("%s %q is at version %d, not %d: read it again and retry", kind, id, want, got),
		Violations: []Violation{{"version", fmt.Sprintf("stale version %d, stored version is %d", got, want)}}}
}

// CodeOf returns the code of a domain error, or 0 for any other error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
