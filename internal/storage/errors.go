package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/smithy-go"
	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"
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

	// scheme and bucket pick the hint: which credentials to check, which
	// bucket to create. Empty for errors made outside a Bucket.
	scheme string
	bucket string
	// noBucket marks a NotFound that is about the bucket, not the object.
	noBucket bool
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
	if e.noBucket {
		b.WriteString("bucket not found")
	} else {
		b.WriteString(e.Kind.String())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(providerMessage(e.Err))
	}
	if h := e.hint(); h != "" {
		b.WriteString("; ")
		b.WriteString(h)
	}
	return b.String()
}

func (e *Error) hint() string {
	switch e.Kind {
	case KindNotFound:
		if e.noBucket {
			if e.bucket != "" {
				return fmt.Sprintf("bucket %q does not exist: create it first (%s)", e.bucket, createHint(e.scheme, e.bucket))
			}
			return "the bucket does not exist: create it first"
		}
	case KindPermission:
		subject := "this bucket"
		if e.bucket != "" {
			subject = fmt.Sprintf("bucket %q", e.bucket)
		}
		switch e.scheme {
		case "s3":
			return "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may access " + subject
		case "gs":
			return "check GOOGLE_APPLICATION_CREDENTIALS and that the account may access " + subject
		case "azblob":
			return "check AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY (or AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN) and that they may access " + strings.Replace(subject, "bucket", "container", 1)
		case "file":
			return "check that tracectl may read and write the directory"
		}
		return "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY) and that they may access this bucket"
	case KindUnavailable:
		return "is the storage endpoint reachable? the operation can be retried"
	case KindUnsupported:
		if e.Op == "create" {
			return "this storage provider cannot create objects conditionally"
		}
	}
	return ""
}

func createHint(scheme, bucket string) string {
	switch scheme {
	case "s3":
		return "aws s3 mb s3://" + bucket
	case "gs":
		return "gcloud storage buckets create gs://" + bucket
	case "azblob":
		return "az storage container create --name " + bucket
	}
	return "with your provider's console or CLI"
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

// wrap makes err an *Error for an operation outside a Bucket.
func wrap(op, key string, err error) error {
	return wrapFor(op, key, "", "", err)
}

func wrapFor(op, key, scheme, bucket string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	k := classify(err)
	return &Error{Op: op, Key: key, Kind: k, Err: err, scheme: scheme, bucket: bucket,
		noBucket: k == KindNotFound && isBucketMissing(err)}
}

// statusCoder is implemented by the AWS SDK's response errors.
type statusCoder interface{ HTTPStatusCode() int }

func classify(err error) Kind {
	if errors.Is(err, context.Canceled) {
		return KindOther
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindUnavailable
	}
	// Network failures first: some drivers report an unknown host as
	// NotFound, which would read as "the object was deleted".
	if isNetworkError(err) {
		return KindUnavailable
	}
	// S3 reports 403 as code Unknown through gocloud: look at the HTTP status.
	// (The AWS response error hides the smithy one from errors.As, so match
	// the method, not the type.)
	var sc statusCoder
	if errors.As(err, &sc) {
		if k, ok := kindOfStatus(sc.HTTPStatusCode()); ok {
			return k
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AllAccessDisabled":
			return KindPermission
		case "NoSuchBucket", "NoSuchKey", "NotFound":
			return KindNotFound
		case "PreconditionFailed", "ConditionalRequestConflict":
			return KindExists
		case "NotImplemented":
			return KindUnsupported
		case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout":
			return KindUnavailable
		}
	}
	// gcsblob reports 403 as NotFound ("or it may not exist"): look first.
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if k, ok := kindOfStatus(ge.Code); ok {
			return k
		}
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "BlobAlreadyExists", "ConditionNotMet":
			return KindExists
		case "AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch", "InsufficientAccountPermissions":
			return KindPermission
		}
		if k, ok := kindOfStatus(re.StatusCode); ok {
			return k
		}
	}
	if errors.Is(err, storage.ErrBucketNotExist) || errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, fs.ErrNotExist) {
		return KindNotFound
	}
	if errors.Is(err, fs.ErrPermission) {
		return KindPermission
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
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"), strings.Contains(msg, "i/o timeout"),
		strings.Contains(msg, "broken pipe"), strings.Contains(msg, "connection reset"), strings.Contains(msg, "use of closed network connection"):
		return KindUnavailable
	case strings.Contains(msg, "AuthorizationFailure"), strings.Contains(msg, "AuthenticationFailed"):
		return KindPermission
	}
	return KindOther
}

// kindOfStatus maps the HTTP statuses whose meaning is the same at every
// provider. ok is false for the rest.
func kindOfStatus(code int) (Kind, bool) {
	switch code {
	case http.StatusForbidden, http.StatusUnauthorized:
		return KindPermission, true
	case http.StatusNotFound:
		return KindNotFound, true
	case http.StatusPreconditionFailed:
		return KindExists, true
	case http.StatusNotImplemented:
		return KindUnsupported, true
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusInternalServerError:
		return KindUnavailable, true
	}
	return KindOther, false
}

func isNetworkError(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isBucketMissing tells a missing bucket from a missing object.
func isBucketMissing(err error) bool {
	if errors.Is(err, storage.ErrBucketNotExist) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return true
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.ErrorCode == "ContainerNotFound" {
		return true
	}
	return false
}

// gocloudPrefix is what gocloud puts before a driver's error; its code is
// often wrong (gcsblob calls a 403 NotFound) and the key is said already.
var gocloudPrefix = regexp.MustCompile(`^blob (\(key "[^"]*"\) )?\(code=\w+\): `)

// providerMessage says in one line what the provider answered: the SDKs'
// own messages are long (request IDs, whole response bodies) or, for
// Azure, hold only the request line on the first line.
func providerMessage(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error() // e.g. dial tcp 127.0.0.1:9000: connect: connection refused
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer before the deadline (context deadline exceeded)"
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return fmt.Sprintf("azure answered %d %s", re.StatusCode, re.ErrorCode)
		}
		return fmt.Sprintf("azure answered %d %s", re.StatusCode, http.StatusText(re.StatusCode))
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg := "s3"
		var oe *smithy.OperationError
		if errors.As(err, &oe) {
			msg += " " + oe.OperationName
		}
		var sc statusCoder
		if errors.As(err, &sc) {
			msg += fmt.Sprintf(" answered %d", sc.HTTPStatusCode())
		}
		msg += " " + ae.ErrorCode()
		if m := ae.ErrorMessage(); m != "" && m != ae.ErrorCode() {
			msg += ": " + m
		}
		return msg
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if ge.Message != "" {
			return fmt.Sprintf("gcs answered %d: %s", ge.Code, ge.Message)
		}
		return fmt.Sprintf("gcs answered %d %s", ge.Code, http.StatusText(ge.Code))
	}
	return gocloudPrefix.ReplaceAllString(firstLine(err.Error()), "")
}

// firstLine keeps provider messages to one line: SDK errors can be long
// multi-line dumps that bury the point.
func firstLine(msg string) string {
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		return strings.TrimSpace(msg[:i])
	}
	return msg
}
