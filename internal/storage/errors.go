package storage

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/gcerrors"
)

// Kind classifies storage errors into what a caller can act on.
type Kind int

const (
	KindOther Kind = iota
	KindNotFound
	KindPermission
	KindUnavailable
	KindInvalid
	KindExists
	KindUnsupported
)

func (k Kind) String() string {
	switch k {
	case KindNotFound:
		return "object not found"
	case KindPermission:
		return "permission denied"
	case KindUnavailable:
		return "storage unavailable"
	case KindInvalid:
		return "invalid request"
	case KindExists:
		return "object already exists"
	case KindUnsupported:
		return "not supported by this storage provider"
	}
	return "storage error"
}

// Sentinel errors for errors.Is. An *Error matches the sentinel of its Kind.
var (
	ErrNotFound    = &Error{Kind: KindNotFound}
	ErrPermission  = &Error{Kind: KindPermission}
	ErrUnavailable = &Error{Kind: KindUnavailable}
	ErrInvalid     = &Error{Kind: KindInvalid}
	ErrExists      = &Error{Kind: KindExists}
	ErrUnsupported = &Error{Kind: KindUnsupported}
)

// Error is what every Bucket method returns on failure.
type Error struct {
	Op   string // open, read, write, create, delete, copy, stat, list
	Key  string // the object key (or the bucket URL for open)
	Kind Kind
	Err  error // the provider's error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		if e.Key != "" {
			b.WriteString(" ")
			b.WriteString(e.Key)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.String())
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(firstLine(e.Err.Error()))
	}
	if h := e.hint(); h != "" {
		b.WriteString("; ")
		b.WriteString(h)
	}
	return b.String()
}

func (e *Error) hint() string {
	switch e.Kind {
	case KindPermission:
		return "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY) and that they may access this bucket"
	case KindUnavailable:
		return "is the storage endpoint reachable? the operation can be retried"
	}
	return ""
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches sentinel errors by Kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Key == "" && t.Err == nil && t.Kind == e.Kind
}

// KindOf returns the Kind of err, KindOther when it is no storage error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindOther
}

func wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	return &Error{Op: op, Key: key, Kind: classify(err), Err: err}
}

func classify(err error) Kind {
	if errors.Is(err, context.Canceled) {
		return KindOther
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindUnavailable
	}
	// S3 reports 403 as code Unknown through gocloud: look at the HTTP status.
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusForbidden, http.StatusUnauthorized:
			return KindPermission
		case http.StatusNotFound:
			return KindNotFound
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken":
			return KindPermission
		case "NoSuchBucket", "NoSuchKey", "NotFound":
			return KindNotFound
		case "PreconditionFailed", "ConditionalRequestConflict":
			return KindExists
		}
	}
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return KindNotFound
	case gcerrors.PermissionDenied:
		return KindPermission
	case gcerrors.DeadlineExceeded, gcerrors.ResourceExhausted, gcerrors.Internal:
		return KindUnavailable
	case gcerrors.InvalidArgument:
		return KindInvalid
	case gcerrors.AlreadyExists, gcerrors.FailedPrecondition:
		return KindExists
	case gcerrors.Unimplemented:
		return KindUnsupported
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"), strings.Contains(msg, "i/o timeout"):
		return KindUnavailable
	case strings.Contains(msg, "403"), strings.Contains(msg, "AuthorizationFailure"), strings.Contains(msg, "AuthenticationFailed"):
		return KindPermission
	}
	return KindOther
}

// firstLine keeps provider messages to one line: SDK errors can be long
// multi-line dumps that bury the point.
func firstLine(msg string) string {
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		return strings.TrimSpace(msg[:i])
	}
	return msg
}
