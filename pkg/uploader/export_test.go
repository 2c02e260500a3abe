package uploader

// CrashAfterSend makes the watcher's scans stop right after an upload batch, before recording
// or moving anything, like a watcher killed at that moment.
func CrashAfterSend(w *Watcher) { w.crashAfterSend = true }

// ErrCrashed is what a crashing scan returns.
var ErrCrashed = errCrashed

// SetHooks makes u call beforeSend with a file's path just before its upload starts (it was
// hashed and found unchanged), and afterSend once the upload was accepted, before the final
// check that the file did not change.
func SetHooks(u *Uploader, beforeSend, afterSend func(path string)) {
	u.beforeSend, u.afterSend = beforeSend, afterSend
}
