package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/pgwarm/pgwarm/wal/walfile"
)

// Kind classifies a failure. Kinds survive the ssh hop (they travel in the
// serve protocol), so the same failure has the same exit code whether the
// archive is a local directory or a remote host.
type Kind uint8

const (
	KindOther       Kind = iota // any other failure
	KindNotFound                // the file is not in the archive
	KindConflict                // different content already archived under that name
	KindCorrupt                 // checksum or format failure
	KindForeign                 // WAL from another cluster (system identifier)
	KindMarker                  // --require-marker file missing (archive not mounted?)
	KindDenied                  // permission denied / operation not allowed for this key
	KindNoSpace                 // archive filesystem full
	KindUnreachable             // transport (ssh) failure
	KindBadInput                // invalid name, URL, flags or source file
	KindGaps                    // verify: segments missing inside a timeline
)

// Error is the one error type the archive layer returns for classified
// failures. Msg is a complete operator-facing sentence fragment.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // optional cause, for errors.Is
}

func (e *Error) Error() string {
	if e.Err != nil && e.Msg == "" {
		return e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a classified error.
func Errorf(k Kind, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: k, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// KindOf returns the Kind of err, classifying raw OS errors from the edge.
func KindOf(err error) Kind {
	if err == nil {
		return KindOther
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	switch {
	case errors.Is(err, walfile.ErrCorrupt):
		return KindCorrupt
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return KindNoSpace
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return KindDenied
	case errors.Is(err, fs.ErrNotExist):
		return KindNotFound
	}
	return KindOther
}

// classify wraps a raw filesystem error with a Kind and an explanation
// aimed at whoever is paged.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	switch KindOf(err) {
	case KindNoSpace:
		return &Error{Kind: KindNoSpace, Msg: fmt.Sprintf("archive is full while %s: %v (free space on the archive filesystem; PostgreSQL keeps the WAL and retries)", what, err), Err: err}
	case KindDenied:
		return &Error{Kind: KindDenied, Msg: fmt.Sprintf("permission denied while %s: %v (the archive directory must be writable by the PostgreSQL OS user)", what, err), Err: err}
	}
	return fmt.Errorf("%s: %w", what, err)
}
