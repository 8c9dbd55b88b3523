// Package storage holds the seams every backend implements (content-addressed blobs,
// named leases) and the one vocabulary of errors: the kinds every layer wraps with %w
// and the web maps to HTTP statuses in one place.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"
)

// The kinds of error. Backends map their drivers' errors to them, so callers never see
// a driver's own; domain packages wrap them with what was being done.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrTooLarge    = errors.New("too large")
	ErrForbidden   = errors.New("forbidden")
	ErrInvalid     = errors.New("invalid")
	ErrUnavailable = errors.New("unavailable")
	ErrFull        = errors.New("out of storage space") // a full disk, quota or S3 backend
)

// IsFull reports whether err says the storage is full: ErrFull from a backend, or the
// operating system's answer to a write that found no room (ENOSPC, EDQUOT, or EFBIG
// under a file size limit).
func IsFull(err error) bool {
	return errors.Is(err, ErrFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG)
}

// Blob errors, each of a kind above.
var (
	ErrDigestMismatch = fmt.Errorf("content does not match its sha256: %w", ErrInvalid)
	ErrInvalidKey     = fmt.Errorf("invalid blob key: want 64 lowercase hex digits: %w", ErrInvalid)
)

// Forbidden marks err as of kind ErrForbidden, keeping its message and its identity
// (errors.Is finds both).
func Forbidden(err error) error { return kindError{err: err, kind: ErrForbidden} }

type kindError struct{ err, kind error }

func (e kindError) Error() string   { return e.err.Error() }
func (e kindError) Unwrap() []error { return []error{e.err, e.kind} }

// InvalidError says which field of a request is wrong and why. It is of kind
// ErrInvalid.
type InvalidError struct {
	Field   string
	Message string
}

// Invalid returns an InvalidError for field.
func Invalid(field, message string) *InvalidError {
	return &InvalidError{Field: field, Message: message}
}

func (e *InvalidError) Error() string        { return fmt.Sprintf("%s: %s", e.Field, e.Message) }
func (e *InvalidError) InvalidField() string { return e.Field }
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Milliseconds wraps a clock so that its times have millisecond precision: what every
// backend keeps (BSON dates are milliseconds), so that a time reads back as it was
// written on any backend, and an archive moves between backends unchanged.
func Milliseconds(clock func() time.Time) func() time.Time {
	return func() time.Time { return clock().Truncate(time.Millisecond) }
}

// BlobInfo describes one stored blob.
type BlobInfo struct {
	Key     string // lowercase hex SHA-256 of the content
	Size    int64
	ModTime time.Time
}

// Blobs is a content-addressed blob store: a blob's key is the SHA-256 of its bytes.
type Blobs interface {
	// Put streams r into the store. It reads at most limit bytes: more fails with
	// ErrTooLarge. If want is not empty the content must hash to it, or Put fails with
	// ErrDigestMismatch. Either way a failed Put leaves nothing under any final key; a
	// crash during Put leaves at most a temporary object that Sweep removes. Putting
	// content that is already stored succeeds and stores nothing new.
	Put(ctx context.Context, r io.Reader, limit int64, want string) (BlobInfo, error)
	// Get returns length bytes of the blob starting at offset; length < 0 means to the end.
	// It fails with ErrNotFound for a missing blob and ErrInvalidKey for a malformed key.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat describes a blob, or fails with ErrNotFound.
	Stat(ctx context.Context, key string) (BlobInfo, error)
	// Delete removes a blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every blob whose key starts with prefix, in no set order, and
	// stops at fn's first error, which it returns.
	List(ctx context.Context, prefix string, fn func(BlobInfo) error) error
	// Sweep removes temporary upload objects older than olderThan (left by crashed
	// uploads) and reports how many it removed.
	Sweep(ctx context.Context, olderThan time.Duration) (int, error)
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
}

// ValidKey reports whether key is a well-formed content address.
func ValidKey(key string) bool { return len(key) == 64 && isLowerHex(key) }

// ValidPrefix reports whether prefix could begin a content address.
func ValidPrefix(prefix string) bool { return len(prefix) <= 64 && isLowerHex(prefix) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Quotas count what people use in a window (designs a day, bytes a day) and refuse
// what would go over its limit, atomically, whichever hub replica asks.
type Quotas interface {
	// Use adds amount to the counter key for the window that holds now (windows are
	// window long, counted from the Unix epoch) if the counter stays at or under
	// limit. It reports whether it did, and what the counter holds.
	Use(ctx context.Context, key string, amount, limit int64, now time.Time, window time.Duration) (ok bool, used int64, err error)
}

// QuotaError refuses what would take a person over a quota, until the window ends.
type QuotaError struct {
	What  string
	Limit int64
	Wait  time.Duration
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("the quota of %d %s is used up; more in %s", e.Limit, e.What, e.Wait.Round(time.Minute))
}
func (e *QuotaError) RetryAfter() time.Duration { return e.Wait }

// UseQuota counts amount against the counter key of q, refusing with a *QuotaError
// (what names the thing counted) what would take it over limit. A nil q counts nothing.
func UseQuota(ctx context.Context, q Quotas, key string, amount, limit int64, now time.Time, window time.Duration, what string) error {
	if q == nil {
		return nil
	}
	ok, _, err := q.Use(ctx, key, amount, limit, now, window)
	if err != nil {
		return err
	}
	if !ok {
		return &QuotaError{What: what, Limit: limit, Wait: now.Truncate(window).Add(window).Sub(now)}
	}
	return nil
}

// Leases are named, expiring locks in the document store: a maintenance task runs only
// on the hub replica that holds its lease.
type Leases interface {
	// AcquireLease takes or renews the lease name for holder until now+ttl. It returns
	// false, nil when another holder has a lease that has not expired at now.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder has it; otherwise it does nothing.
	ReleaseLease(ctx context.Context, name, holder string) error
}
