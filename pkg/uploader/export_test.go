package uploader

import (
	"context"
	"errors"
	"time"
)

// CrashAfterSend wraps what w sends through so that each scan stops right after its upload
// batch was sent, before recording or moving anything, like a watcher killed at that moment.
func CrashAfterSend(w *Watcher) {
	send := w.send
	w.send = func(ctx context.Context, start time.Time, jobs []job, results []FileResult) (*Summary, error) {
		if _, err := send(ctx, start, jobs, results); err != nil {
			return nil, err
		}
		return nil, ErrCrashed
	}
}

// ErrCrashed is what a crashing scan returns.
var ErrCrashed = errors.New("watcher crashed (test)")

// SetHooks makes u call beforeSend with a file's path just before its upload starts (it was
// hashed and found unchanged), and afterSend once the upload was accepted, before the final
// check that the file did not change.
func SetHooks(u *Uploader, beforeSend, afterSend func(path string)) {
	u.beforeSend, u.afterSend = beforeSend, afterSend
}
