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
