package uploader

// CrashAfterSend makes the watcher's scans stop right after an upload batch, before recording
// or moving anything, like a watcher killed at that moment.
func CrashAfterSend(w *Watcher) { w.crashAfterSend = true }

// ErrCrashed is what a crashing scan returns.
var ErrCrashed = errCrashed
