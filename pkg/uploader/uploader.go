// Package uploader puts image files into the pipeline's S3 drop prefix, and tells what the
// pipeline made of them.
//
// Put uploads files and directory trees concurrently: the content type is sniffed from the
// bytes (imgpipe/pkg/imagemeta), files that are not images are skipped unless asked for, large
// files go up in concurrent multipart parts, every object carries its original name and SHA-256
// as metadata, and content already uploaded under the same key is recognised and skipped.
// The SHA-256 computed when the file is hashed is also the upload's S3 checksum (ChecksumSHA256
// on PutObject; each part's SHA-256 and their COMPOSITE checksum on a multipart upload), so S3
// refuses bytes that changed after hashing (BadDigest, nothing stored) and no object ever holds
// other content than its key and metadata name. A file that changes after S3 accepted it has
// the object (in a versioned bucket, the version) the upload wrote deleted again. Both are
// ReasonFileChanged.
// Failures are classified with imgpipe/pkg/failure and retried per file; a failed file never
// stops the others, and the Summary lists every file with what happened to it.
//
// Lookup answers "what became of this upload": the Firestore document the indexer wrote, the
// reason it was dead-lettered, or that it is still pending.
package uploader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
)

// Version is written into every object's metadata (MetaUploader). Builds may set it with
// -ldflags "-X imgpipe/pkg/uploader.Version=...".
var Version = "dev"

// Object metadata keys (sent as x-amz-meta-<key>; the SDK returns them in lower case).
const (
	// MetaOriginalName is the file's base name, percent-encoded (see EncodeName) so that any
	// name survives HTTP headers.
	MetaOriginalName = "original-name"
	// MetaSHA256 is the lower-case hex SHA-256 of the object's content.
	MetaSHA256 = "sha256"
	// MetaUploader is "imgpipe-uploader/" + Version.
	MetaUploader = "uploader"
)

// Defaults and limits of Options.
const (
	DefaultPrefix      = "upload/"
	DefaultConcurrency = 8
	DefaultPartSize    = 8 << 20
	// MinPartSize and MaxPartSize are S3's limits on a multipart part (the last may be smaller).
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	// MaxParts is S3's limit on the parts of one upload; larger files get larger parts.
	MaxParts              = 10000
	DefaultRetries        = 3
	DefaultRetryBaseDelay = time.Second
	DefaultDrainTimeout   = 30 * time.Second
	DefaultProgressEvery  = 200 * time.Millisecond
)

// Options tunes an Uploader. A nil *Options, and every zero field, takes the default.
type Options struct {
	// Keys is the key scheme; default KeysHash.
	Keys KeyScheme
	// Concurrency bounds the files in work and the S3 requests in flight (parts of multipart
	// uploads included); default DefaultConcurrency.
	Concurrency int
	// PartSize is the multipart part size, MinPartSize to MaxPartSize; files larger than it
	// are uploaded in parts. Default DefaultPartSize.
	PartSize int64
	// Include and Exclude are glob patterns (see Glob) selecting the files found in
	// directories. Files named on the command line are always taken.
	Include, Exclude []string
	// IncludeNonImages uploads files imagemeta does not recognise as images, with a content
	// type from net/http's sniffer, instead of skipping them.
	IncludeNonImages bool
	// Force uploads even when the object already holds the same content.
	Force bool
	// Retries is how many times a failed file is tried again (on top of the SDK's own retries
	// of each call); default DefaultRetries, negative for none. Permanent failures are never
	// retried.
	Retries int
	// RetryBaseDelay is the backoff before the first retry (doubling, full jitter); default
	// DefaultRetryBaseDelay.
	RetryBaseDelay time.Duration
	// DrainTimeout is how long files already in work may finish once Put's context ends;
	// after it their requests are cancelled (multipart uploads aborted). Default
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Progress, when set, is called from one goroutine every ProgressEvery while Put runs,
	// and once more at the end with Final set.
	Progress func(Progress)
	// ProgressEvery is the interval of Progress calls; default DefaultProgressEvery.
	ProgressEvery time.Duration
	// Logger receives one line per file; default none.
	Logger *zap.Logger
}

// Uploader uploads files to one bucket and prefix. It is safe for concurrent use.
type Uploader struct {
	client *s3.Client
	bucket string
	prefix string
	o      Options
	filter *Filter
	slots  chan struct{} // S3 requests in flight
	log    *zap.Logger
}

// New returns an Uploader writing to bucket under prefix ("" for the bucket's root; the
// pipeline's drop prefix is DefaultPrefix).
func New(client *s3.Client, bucket, prefix string, opts *Options) (*Uploader, error) {
	if client == nil {
		return nil, errors.New("uploader: nil S3 client")
	}
	if bucket == "" {
		return nil, errors.New("uploader: empty bucket name")
	}
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Keys == "" {
		o.Keys = KeysHash
	}
	if _, err := ParseKeyScheme(string(o.Keys)); err != nil {
		return nil, err
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize || o.PartSize > MaxPartSize {
		return nil, fmt.Errorf("part size %d out of range: S3 takes %d (5 MiB) to %d (5 GiB)", o.PartSize, MinPartSize, int64(MaxPartSize))
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.RetryBaseDelay <= 0 {
		o.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = DefaultProgressEvery
	}
	filter, err := NewFilter(o.Include, o.Exclude)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Uploader{
		client: client, bucket: bucket, prefix: prefix, o: o, filter: filter,
		slots: make(chan struct{}, o.Concurrency), log: log,
	}, nil
}

// Bucket returns the bucket the Uploader writes to.
func (u *Uploader) Bucket() string { return u.bucket }

// Prefix returns the key prefix the Uploader writes under.
func (u *Uploader) Prefix() string { return u.prefix }

// Put uploads the files and directory trees at paths and returns what happened to each file.
// Per-file problems (a missing path, a failed upload) are in the Summary, never an error; Put
// returns an error only for an empty paths list.
//
// When ctx ends, Put stops starting files (they are reported skipped, ReasonInterrupted),
// lets the files in work finish for up to Options.DrainTimeout, and returns the Summary with
// Interrupted set.
func (u *Uploader) Put(ctx context.Context, paths []string) (*Summary, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths to upload")
	}
	start := time.Now()
	jobs, results := collect(paths, u.filter)
	dedupe := u.o.Keys != KeysUUID && !u.o.Force
	for i := range jobs {
		jobs[i].dedupe = dedupe
	}
	return u.run(ctx, start, jobs, results)
}

// run uploads jobs (each with its entry in results) and returns the summary.
func (u *Uploader) run(ctx context.Context, start time.Time, jobs []job, results []FileResult) (*Summary, error) {
	run := &putRun{u: u, results: results, claims: map[string]claim{}, start: start}
	for _, j := range jobs {
		run.bytesTotal += results[j.idx].Bytes
	}
	run.filesTotal = len(jobs)

	// Files in work get a context that outlives ctx by the drain timeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var owned sync.WaitGroup
	done := make(chan struct{})
	owned.Go(func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(u.o.DrainTimeout)
			defer t.Stop()
			select {
			case <-t.C:
				cancelWork()
			case <-done:
			}
		case <-done:
		}
	})
	if u.o.Progress != nil {
		owned.Go(func() {
			t := time.NewTicker(u.o.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					u.o.Progress(run.progress(false))
				case <-done:
					return
				}
			}
		})
	}

	queue := make(chan job)
	var workers sync.WaitGroup
	for range min(u.o.Concurrency, max(len(jobs), 1)) {
		workers.Go(func() {
			for j := range queue {
				run.process(workCtx, j)
			}
		})
	}
	interrupted := false
	for _, j := range jobs {
		if !interrupted {
			select {
			case queue <- j:
				continue
			case <-ctx.Done():
				interrupted = true
			}
		}
		r := &run.results[j.idx]
		r.Status, r.Reason = StatusSkipped, ReasonInterrupted
		run.finish(u.log, r)
	}
	close(queue)
	workers.Wait()
	close(done)
	owned.Wait()

	s := newSummary(run.results, time.Since(start))
	s.Interrupted = interrupted || ctx.Err() != nil
	if u.o.Progress != nil {
		u.o.Progress(run.progress(true))
	}
	return s, nil
}

// putRun is the state of one Put.
type putRun struct {
	u       *Uploader
	results []FileResult // each written by the one worker that owns its index
	start   time.Time

	mu     sync.Mutex
	claims map[string]claim // key -> first file of this run that took it

	filesTotal                int
	bytesTotal                int64
	filesDone                 atomic.Int64
	uploaded, skipped, failed atomic.Int64
	bytesSent, bytesOtherwise atomic.Int64
}

type claim struct {
	path, sha string
}

// claimKey records that path with content sha uses key in this run. It returns the path that
// took the key first when there is one.
func (r *putRun) claimKey(key, path, sha string) (prev claim, taken bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.claims[key]; ok {
		return c, true
	}
	r.claims[key] = claim{path, sha}
	return claim{}, false
}

// finish counts a file whose result is final.
func (r *putRun) finish(log *zap.Logger, res *FileResult) {
	switch res.Status {
	case StatusUploaded:
		r.uploaded.Add(1)
	case StatusSkipped:
		r.skipped.Add(1)
		r.bytesOtherwise.Add(res.Bytes)
	default:
		r.failed.Add(1)
		r.bytesOtherwise.Add(res.Bytes)
	}
	r.filesDone.Add(1)
	fields := []zap.Field{zap.String("path", res.Path), zap.String("key", res.Key), zap.String("status", string(res.Status))}
	if res.Reason != "" {
		fields = append(fields, zap.String("reason", res.Reason))
	}
	if res.Status == StatusFailed {
		log.Warn("file not uploaded", append(fields, zap.String("error", res.Detail), zap.Int("attempts", res.Attempts))...)
	} else {
		log.Info("file done", append(fields, zap.Int64("bytes", res.Bytes))...)
	}
}

func (r *putRun) progress(final bool) Progress {
	sent := r.bytesSent.Load()
	return Progress{
		FilesDone: int(r.filesDone.Load()), FilesTotal: r.filesTotal,
		Uploaded: int(r.uploaded.Load()), Skipped: int(r.skipped.Load()), Failed: int(r.failed.Load()),
		BytesSent: sent, BytesDone: sent + r.bytesOtherwise.Load(), BytesTotal: r.bytesTotal,
		Elapsed: time.Since(r.start), Final: final,
	}
}

// failedResult marks r failed with err's reason and class.
func failedResult(r FileResult, err error) FileResult {
	r.Status = StatusFailed
	r.Reason = failure.ReasonOf(err)
	r.Class = failure.ClassOf(err).String()
	r.Detail = err.Error()
	return r
}
