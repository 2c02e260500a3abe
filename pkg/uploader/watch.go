package uploader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/retry"
)

// Folders and files of a watched directory.
const (
	DoneDir          = "done"   // uploaded files are moved here
	FailedDir        = "failed" // files that can never be uploaded are moved here, with a .reason file
	ReasonFileSuffix = ".reason"
	// DefaultStateFile is the name of the watcher's state file in the watched directory.
	DefaultStateFile = ".imgpipe-uploader-state.json"
)

// WatchOptions tunes a Watcher. A nil *WatchOptions, and every zero field, takes the default.
type WatchOptions struct {
	// Settle is how long a file must keep its size and modification time before it is
	// uploaded; default 2s.
	Settle time.Duration
	// Poll is the time between two scans of the directory; default 1s.
	Poll time.Duration
	// StateFile is where the watcher records what it is doing, so that a restart uploads
	// nothing twice; default DIR/DefaultStateFile.
	StateFile string
	// Batch bounds the files uploaded per scan; default 1000.
	Batch int
	// OnResult is called (from the watcher's goroutine) for every file whose result is
	// final, after it was moved.
	OnResult func(WatchResult)
	// Now replaces the clock, for tests.
	Now func() time.Time
}

// WatchResult is the final result of one file of a watched directory.
type WatchResult struct {
	FileResult
	// MovedTo is the file's new path, under done/ or failed/.
	MovedTo string `json:"movedTo"`
}

// Watcher uploads the files that appear in a directory ("drop folder"), once each.
//
// Files (in subfolders too; not done/, failed/, names starting with '.', or names ending in
// .tmp, .part, .partial, .crdownload or ~) are uploaded once their size and modification time
// have not changed for Settle. Uploaded files and files the bucket already held are moved to
// done/, files that can never be uploaded (not an image, a permanent S3 error) to failed/ with
// a .reason file beside them; files that failed for a transient reason stay and are tried again
// later with backoff. The subfolder layout is kept under done/ and failed/.
//
// Exactly once across restarts: before a batch is sent, the state file records each file with
// the key it gets; a restarted watcher sends a file again under the same key, and every upload
// first checks whether the key already holds the same content. Files recorded as sent but not
// yet moved are moved without sending them again. Run one watcher per directory.
//
// A file that changes while it is sent is refused by S3 (its SHA-256 checksum no longer
// matches) or, when it changed just after S3 accepted it, has that object deleted again; it is
// then sent once it settles, so it ends as one object. One gap remains: a watcher killed after
// S3 accepted such a file and before it deleted the object leaves that object behind, because
// the restarted watcher finds a different file and sends it as new.
type Watcher struct {
	u       *Uploader
	dir     string
	o       WatchOptions
	seen    map[string]seenFile // rel -> what the last scan saw
	retryAt map[string]retryState
	state   watchState
	// send uploads a scan's batch: u.run, the one way the watcher sends.
	send func(ctx context.Context, start time.Time, jobs []job, results []FileResult) (*Summary, error)
}

type seenFile struct {
	size  int64
	mtime time.Time
	since time.Time // when size and mtime were last seen to change
}

type retryState struct {
	at       time.Time
	failures int
}

// watchState is the state file's content.
type watchState struct {
	Version int                    `json:"version"`
	Files   map[string]*stateEntry `json:"files"`
}

type stateEntry struct {
	Key    string    `json:"key,omitempty"`
	Size   int64     `json:"size"`
	MTime  time.Time `json:"mtime"`
	Status string    `json:"status"` // stateSending, stateSent or stateFailed
	Reason string    `json:"reason,omitempty"`
	Class  string    `json:"class,omitempty"`
	Detail string    `json:"detail,omitempty"`
	SHA256 string    `json:"sha256,omitempty"`
	At     time.Time `json:"at"`
}

const (
	stateSending = "sending"
	stateSent    = "sent"
	stateFailed  = "failed"
)

// NewWatcher returns a Watcher uploading the files that appear in dir with u. It reads the
// state file a previous watcher left.
func NewWatcher(u *Uploader, dir string, opts *WatchOptions) (*Watcher, error) {
	o := WatchOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.StateFile == "" {
		o.StateFile = filepath.Join(dir, DefaultStateFile)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("watch %s: not a directory", dir)
	}
	w := &Watcher{u: u, send: u.run, dir: dir, o: o, seen: map[string]seenFile{}, retryAt: map[string]retryState{},
		state: watchState{Version: 1, Files: map[string]*stateEntry{}}}
	b, err := os.ReadFile(o.StateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read state %s: %w", o.StateFile, err)
	default:
		if err := json.Unmarshal(b, &w.state); err != nil {
			return nil, fmt.Errorf("read state %s: %w", o.StateFile, err)
		}
		if w.state.Files == nil {
			w.state.Files = map[string]*stateEntry{}
		}
	}
	return w, nil
}

// Run scans the directory every Poll until ctx ends, then returns nil. Only an error of the
// state file or of moving files stops it earlier.
func (w *Watcher) Run(ctx context.Context) error {
	for {
		if _, err := w.Scan(ctx); err != nil {
			return err
		}
		t := time.NewTimer(w.o.Poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// Scan makes one pass: it finishes what a previous watcher left, uploads the files that have
// settled, and moves them. It returns how many files got a final result.
func (w *Watcher) Scan(ctx context.Context) (int, error) {
	finished, err := w.finishRecorded()
	if err != nil {
		return finished, err
	}
	if ctx.Err() != nil {
		return finished, nil
	}
	ready, err := w.settled()
	if err != nil {
		return finished, err
	}
	if len(ready) == 0 {
		return finished, nil
	}

	// Record what is about to be sent, with its key, before sending it.
	now := w.o.Now()
	var jobs []job
	var results []FileResult
	for _, rel := range ready {
		sf := w.seen[rel]
		e := w.state.Files[rel]
		if e == nil || e.Status != stateSending || e.Size != sf.size || !e.MTime.Equal(sf.mtime) {
			e = &stateEntry{Size: sf.size, MTime: sf.mtime, Status: stateSending, At: now}
			if w.u.o.Keys == KeysUUID {
				e.Key = KeyFor(KeysUUID, w.u.prefix, rel, "")
			}
			w.state.Files[rel] = e
		}
		results = append(results, FileResult{Path: w.abs(rel), Bytes: sf.size})
		jobs = append(jobs, job{idx: len(results) - 1, path: w.abs(rel), rel: rel, key: e.Key, dedupe: true})
	}
	if err := w.save(); err != nil {
		return finished, err
	}

	sum, err := w.send(ctx, now, jobs, results)
	if err != nil {
		return finished, err
	}
	pol := retry.Policy{BaseDelay: 5 * time.Second, MaxDelay: 5 * time.Minute}
	for i, r := range sum.Files {
		rel := ready[i]
		e := w.state.Files[rel]
		e.At, e.Key, e.SHA256 = w.o.Now(), r.Key, r.SHA256
		switch {
		case r.Status == StatusUploaded || (r.Status == StatusSkipped && r.Reason == ReasonDuplicate):
			e.Status = stateSent
		case r.Status == StatusSkipped && r.Reason == ReasonInterrupted:
			// Stays "sending": the next scan (or watcher) sends it under the same key.
		case r.Reason == ReasonFileChanged || r.Reason == ReasonFileNotFound:
			// Still being written, or gone: forget it; a changed file settles again.
			delete(w.state.Files, rel)
			delete(w.seen, rel)
		case r.Status == StatusSkipped:
			e.Status, e.Reason, e.Class, e.Detail = stateFailed, r.Reason, failure.Permanent.String(), r.Detail
		case r.Class == failure.Permanent.String():
			e.Status, e.Reason, e.Class, e.Detail = stateFailed, r.Reason, r.Class, r.Detail
		default:
			rs := w.retryAt[rel]
			rs.failures++
			rs.at = w.o.Now().Add(pol.Delay(rs.failures, 0, nil))
			w.retryAt[rel] = rs
			w.u.log.Warn("watch: upload failed, will retry", zap.String("path", r.Path), zap.String("reason", r.Reason),
				zap.Time("retryAt", rs.at), zap.String("error", r.Detail))
		}
	}
	if err := w.save(); err != nil {
		return finished, err
	}
	n, err := w.finishRecorded()
	return finished + n, err
}

// finishRecorded moves every file the state records as sent or failed, and forgets it.
func (w *Watcher) finishRecorded() (int, error) {
	rels := make([]string, 0, len(w.state.Files))
	for rel, e := range w.state.Files {
		if e.Status == stateSent || e.Status == stateFailed {
			rels = append(rels, rel)
		}
	}
	if len(rels) == 0 {
		return 0, nil
	}
	sort.Strings(rels)
	var results []WatchResult
	for _, rel := range rels {
		e := w.state.Files[rel]
		st, err := os.Stat(w.abs(rel))
		if err != nil || st.Size() != e.Size || !st.ModTime().Equal(e.MTime) {
			// Moved already (the state was not saved after the move), or replaced by another
			// file: nothing left to do for this entry.
			delete(w.state.Files, rel)
			continue
		}
		r := FileResult{Path: w.abs(rel), Key: e.Key, Bytes: e.Size, SHA256: e.SHA256}
		var to string
		if e.Status == stateSent {
			r.Status = StatusUploaded
			to, err = w.move(rel, DoneDir)
		} else {
			r.Status, r.Reason, r.Class, r.Detail = StatusFailed, e.Reason, e.Class, e.Detail
			to, err = w.move(rel, FailedDir)
			if err == nil {
				err = writeReason(to+ReasonFileSuffix, rel, e)
			}
		}
		if err != nil {
			_ = w.save()
			return len(results), err
		}
		delete(w.state.Files, rel)
		delete(w.seen, rel)
		delete(w.retryAt, rel)
		results = append(results, WatchResult{FileResult: r, MovedTo: to})
	}
	if err := w.save(); err != nil {
		return 0, err
	}
	for _, r := range results {
		w.u.log.Info("watch: file done", zap.String("path", r.Path), zap.String("key", r.Key),
			zap.String("status", string(r.Status)), zap.String("movedTo", r.MovedTo))
		if w.o.OnResult != nil {
			w.o.OnResult(r)
		}
	}
	return len(results), nil
}

// settled scans the directory and returns the files (relative paths, sorted) whose size and
// modification time have not changed for Settle and that are not waiting for a retry.
func (w *Watcher) settled() ([]string, error) {
	now := w.o.Now()
	present := map[string]bool{}
	var ready []string
	err := filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == w.dir {
				return err
			}
			return nil // a file or folder that vanished or cannot be read: next scan
		}
		rel, _ := filepath.Rel(w.dir, p)
		rel = filepath.ToSlash(rel)
		if p == w.dir {
			return nil
		}
		if d.IsDir() {
			if rel == DoneDir || rel == FailedDir || strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if ignoredName(d.Name()) || !d.Type().IsRegular() {
			return nil
		}
		if ok, _ := w.u.filter.Allow(rel); !ok {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		present[rel] = true
		prev, ok := w.seen[rel]
		if !ok || prev.size != info.Size() || !prev.mtime.Equal(info.ModTime()) {
			w.seen[rel] = seenFile{size: info.Size(), mtime: info.ModTime(), since: now}
			return nil
		}
		if now.Sub(prev.since) < w.o.Settle || now.Before(w.retryAt[rel].at) {
			return nil
		}
		ready = append(ready, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", w.dir, err)
	}
	for rel := range w.seen {
		if !present[rel] {
			delete(w.seen, rel)
			delete(w.retryAt, rel)
		}
	}
	pruned := false
	for rel, e := range w.state.Files {
		if e.Status == stateSending && !present[rel] {
			if _, err := os.Lstat(w.abs(rel)); errors.Is(err, fs.ErrNotExist) {
				delete(w.state.Files, rel) // removed by someone else before it was sent
				pruned = true
			}
		}
	}
	if pruned {
		if err := w.save(); err != nil {
			return nil, err
		}
	}
	sort.Strings(ready)
	if len(ready) > w.o.Batch {
		ready = ready[:w.o.Batch]
	}
	return ready, nil
}

// ignoredName reports names of files that are still being written or are not meant for upload.
func ignoredName(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".tmp", ".part", ".partial", ".crdownload", ReasonFileSuffix:
		return true
	}
	return false
}

func (w *Watcher) abs(rel string) string { return filepath.Join(w.dir, filepath.FromSlash(rel)) }

// move renames the file at rel into folder (done/ or failed/), keeping its subfolders, under a
// free name ("a~1.jpg" when "a.jpg" is taken), and returns its new path.
func (w *Watcher) move(rel, folder string) (string, error) {
	dst := filepath.Join(w.dir, folder, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("move %s: %w", rel, err)
	}
	ext := filepath.Ext(dst)
	stem := strings.TrimSuffix(dst, ext)
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s~%d%s", stem, i, ext)
	}
	if err := os.Rename(w.abs(rel), dst); err != nil {
		return "", fmt.Errorf("move %s: %w", rel, err)
	}
	return dst, nil
}

func writeReason(p, rel string, e *stateEntry) error {
	text := fmt.Sprintf("file: %s\nreason: %s\nclass: %s\ndetail: %s\nkey: %s\ntime: %s\n",
		rel, e.Reason, e.Class, e.Detail, e.Key, e.At.UTC().Format(time.RFC3339))
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write reason: %w", err)
	}
	return nil
}

// save writes the state file atomically (a temporary file renamed over it, synced).
func (w *Watcher) save() error {
	b, err := json.MarshalIndent(w.state, "", " ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp := w.o.StateFile + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, w.o.StateFile)
	}
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
