package analyzer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/awserr"
	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/vision"
)

// Reasons the analyzer itself gives to permanent failures (Vision's own inner codes, such as
// InvalidImageFormat, pass through unchanged).
const (
	ReasonImageTooLarge = "ImageTooLarge"
)

// headBytes is how much of an object is read to identify it before Vision is called: enough
// for the dimensions of every supported format and for EXIF in almost every JPEG.
const headBytes = 128 << 10

// pending is a record ready to publish, with its logger.
type pending struct {
	rec *record.Analysis
	log *zap.Logger
}

// item is one record of a message once prepared: either a record ready to publish (a
// removal) or a created object identified from its first bytes, waiting for Vision.
type item struct {
	rec   *s3event.Record
	log   *zap.Logger
	ready *record.Analysis
	head  *objectHead
	meta  *imagemeta.Meta
}

// prepareMessage does the part of a message's work that needs no worker: it parses the
// event, reads the first bytes of every created object and identifies it. It returns what
// is left to do (nothing for a test event or stale records, which are skipped and counted),
// or the first error, classified: a non-image, an empty or too-large object fails here
// without holding a worker or spending a Vision call.
func (a *Analyzer) prepareMessage(ctx context.Context, log *zap.Logger, body string) ([]item, error) {
	msg, err := s3event.Parse([]byte(body))
	if err != nil {
		return nil, err
	}
	if msg.TestEvent {
		log.Info("s3 test event ignored")
		return nil, nil
	}
	var out []item
	for i := range msg.Records {
		rec := &msg.Records[i]
		it := item{rec: rec, log: log.With(zap.String("bucket", rec.Bucket), zap.String("key", rec.Key), zap.String("event", rec.EventName))}
		var why string
		switch rec.Kind {
		case s3event.Created:
			it.head, it.meta, why, err = a.prepareObject(ctx, rec)
			if err != nil {
				return nil, fmt.Errorf("%s %s/%s: %w", rec.EventName, rec.Bucket, rec.Key, err)
			}
		case s3event.Removed:
			why, err = a.prepareRemoval(ctx, &it)
			if err != nil {
				return nil, fmt.Errorf("%s %s/%s: %w", rec.EventName, rec.Bucket, rec.Key, err)
			}
		default:
			why = "event type not handled"
		}
		if why != "" {
			it.log.Info("record skipped", zap.String("why", why))
			a.metrics.skipped.Add(1)
			continue
		}
		out = append(out, it)
	}
	return out, nil
}

// prepareRemoval decides what a removal event means for the index, which must end up showing
// what the bucket holds for the key now: nothing, or its current version (docs/analyzer.md,
// "Removals on versioned buckets"). A removal in an unversioned bucket and a delete marker
// publish a removal, as they always did. Lifecycle's expiry of a noncurrent version changes
// nothing the key reads as: it is skipped. Any other permanent deletion of one version (a
// DELETE with a version ID) reads the key's current version: none left (or a delete marker)
// publishes a removal; otherwise that version is analysed and published with the removal's
// sequencer, so that it replaces whatever older event the index holds and loses to any newer
// one. A current version that can never be indexed (not an image, empty, too large) counts as
// nothing: a removal.
func (a *Analyzer) prepareRemoval(ctx context.Context, it *item) (why string, err error) {
	rec := it.rec
	removed := &record.Analysis{
		SchemaVersion: record.SchemaVersion, Event: record.Removed,
		Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID,
		Sequencer: rec.Sequencer, EventTime: rec.EventTime,
	}
	switch {
	case rec.ExpiresVersion():
		return "a noncurrent version expired: the current version is unchanged", nil
	case !rec.RemovesVersion():
		it.ready = removed
		return "", nil
	}
	cur := *rec
	cur.VersionID, cur.ETag, cur.Size = "", "", 0
	head, err := a.readHead(ctx, &cur)
	switch {
	case isNotFound(err) || isInvalidRange(err):
		// No version left, a delete marker, or an empty current version.
		it.ready = removed
		return "", nil
	case err != nil:
		return "", err
	}
	cur.VersionID, cur.ETag, cur.Size = head.version, head.etag, head.size
	meta, err := a.checkHead(head)
	if failure.IsPermanent(err) {
		it.log.Info("removal: the current version cannot be indexed", zap.String("removed_version", rec.VersionID),
			zap.String("current_version", cur.VersionID), zap.Error(err))
		it.ready = removed
		return "", nil
	}
	if err != nil {
		return "", err
	}
	it.log.Info("removal: analysing the current version", zap.String("removed_version", rec.VersionID),
		zap.String("current_version", cur.VersionID))
	it.rec, it.head, it.meta = &cur, head, meta
	return "", nil
}

// needsWorker reports whether any prepared item still needs Vision.
func needsWorker(items []item) bool {
	for _, it := range items {
		if it.head != nil {
			return true
		}
	}
	return false
}

// analyzeItems is a worker's part: Vision for every prepared object, in order. It returns
// the records to publish (an object that changed while it was read is skipped and counted)
// or the first error, classified.
func (a *Analyzer) analyzeItems(ctx context.Context, items []item) ([]pending, error) {
	out := make([]pending, 0, len(items))
	for _, it := range items {
		r := it.ready
		if r == nil {
			var why string
			var err error
			r, why, err = a.analyzeObject(ctx, it.rec, it.head, it.meta)
			if err != nil {
				return nil, fmt.Errorf("%s %s/%s: %w", it.rec.EventName, it.rec.Bucket, it.rec.Key, err)
			}
			if r == nil {
				it.log.Info("record skipped", zap.String("why", why))
				a.metrics.skipped.Add(1)
				continue
			}
		}
		out = append(out, pending{r, it.log})
	}
	return out, nil
}

// publishRecords publishes what analyzeItems produced, in order, and returns the first
// error, classified.
func (a *Analyzer) publishRecords(ctx context.Context, recs []pending) error {
	for _, p := range recs {
		id, err := a.deps.Publisher.Publish(ctx, p.rec)
		if err != nil {
			err = fmt.Errorf("%s %s/%s: %w", p.rec.Event, p.rec.Bucket, p.rec.Key, err)
			if !failure.IsPermanent(err) && ctx.Err() == nil {
				err = &dependencyFault{dep: "pubsub", err: err}
			}
			return err
		}
		p.log.Info("published", zap.String("pubsub_message_id", id), zap.String("analysis_event", string(p.rec.Event)))
	}
	return nil
}

// prepareObject reads the object's first bytes and identifies the image. A nil head with a
// reason means the event is stale and there is nothing to analyse.
func (a *Analyzer) prepareObject(ctx context.Context, rec *s3event.Record) (*objectHead, *imagemeta.Meta, string, error) {
	head, err := a.readHead(ctx, rec)
	switch {
	case isNotFound(err):
		// Deleted (or overwritten, for a versioned get) since the event: its ObjectRemoved
		// event follows and removes it from the index.
		return nil, nil, "object no longer exists", nil
	case isInvalidRange(err):
		// The range bytes=0-N is unsatisfiable only when the object is empty.
		if etagPinned(rec) && rec.ETag != "" && rec.ETag != emptyETag {
			return nil, nil, "object overwritten since the event", nil
		}
		return nil, nil, "", failure.Permanentf(imagemeta.ReasonNotAnImage, "object is empty")
	case err != nil:
		return nil, nil, "", err
	}
	if etagPinned(rec) && rec.ETag != "" && head.etag != rec.ETag {
		// Overwritten since this event, in an unversioned bucket (or the null version of a
		// suspended one): the newer content has its own event, and analysing it here would
		// attach it to the older sequencer.
		return nil, nil, "object overwritten since the event", nil
	}
	meta, err := a.checkHead(head)
	if err != nil {
		return nil, nil, "", err
	}
	return head, meta, "", nil
}

// etagPinned reports whether rec's object is named by its ETag rather than by a version ID
// that always names the same content: in an unversioned bucket, and for the null version,
// which a later write replaces.
func etagPinned(rec *s3event.Record) bool {
	return rec.VersionID == "" || rec.VersionID == s3event.NullVersionID
}

// checkHead checks an object's size against the limits and identifies the image from its
// first bytes, failing permanently for what can never be analysed.
func (a *Analyzer) checkHead(head *objectHead) (*imagemeta.Meta, error) {
	switch {
	case head.size == 0:
		return nil, failure.Permanentf(imagemeta.ReasonNotAnImage, "object is empty")
	case head.size > a.opts.MaxImageBytes:
		return nil, failure.Permanentf(ReasonImageTooLarge, "object is %d bytes, the limit is %d", head.size, a.opts.MaxImageBytes)
	}
	return identify(head)
}

// analyzeObject calls Vision on a prepared object and builds its record. A nil record with a
// reason means the object changed or disappeared while it was read. A failure of S3, or of
// Vision itself, comes back as a dependencyFault.
func (a *Analyzer) analyzeObject(ctx context.Context, rec *s3event.Record, head *objectHead, meta *imagemeta.Meta) (*record.Analysis, string, error) {
	start := time.Now()
	var res *vision.Result
	var err error
	// The first S3 failure of any attempt's read of the rest: the Vision client only sees
	// its request fail, and must not be blamed for it.
	var readFailed atomic.Pointer[error]
	if a.opts.Mode == ModeURL {
		url, perr := a.presign(ctx, rec)
		if perr != nil {
			return nil, "", perr
		}
		res, err = a.deps.Vision.AnalyzeURL(ctx, url)
		if err == nil && rec.VersionID == "" {
			// The URL cannot pin the content (an If-Match would have to be sent by Vision,
			// see presign): check that what Vision fetched is still the event's content.
			err = a.verifyUnchanged(ctx, rec, head)
		}
	} else {
		res, err = a.deps.Vision.AnalyzeStream(ctx, func() (io.ReadCloser, int64, error) {
			if p := readFailed.Load(); p != nil {
				return nil, 0, *p // S3 already failed this call: do not wait on it again
			}
			return a.open(ctx, rec, head, &readFailed)
		})
	}
	a.metrics.observeVision(time.Since(start), err)
	var dep *dependencyFault
	switch {
	case err == nil:
	case errors.Is(err, errObjectGone):
		return nil, "object changed or deleted while it was read", nil
	case readFailed.Load() != nil:
		return nil, "", *readFailed.Load()
	case errors.As(err, &dep):
		// S3 failed (the second read, or the check after a URL analysis), not Vision.
	case failure.IsPermanent(err), ctx.Err() != nil, failure.ReasonOf(err) == "ClientRateLimit":
		// A verdict on the image; or our own cancellation or rate limit, which say nothing
		// about Vision.
	default:
		err = &dependencyFault{dep: "vision", err: err}
	}
	if err != nil {
		return nil, "", err
	}

	out := &record.Analysis{
		SchemaVersion: record.SchemaVersion, Event: record.Created,
		Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag,
		Sequencer: rec.Sequencer, EventTime: rec.EventTime,
		Size: head.size, ContentType: meta.MIME, Format: meta.Format.String(),
		Width: meta.Width, Height: meta.Height,
		Caption: res.Caption, CaptionConfidence: res.CaptionConfidence,
		ModelVersion: res.ModelVersion, APIVersion: res.APIVersion,
		AnalyzedAt: a.now().UTC(),
	}
	if res.Width > 0 && res.Height > 0 {
		out.Width, out.Height = res.Width, res.Height
	}
	for _, t := range res.Tags {
		out.Tags = append(out.Tags, record.Tag{Name: t.Name, Confidence: t.Confidence})
	}
	return out, "", nil
}

// emptyETag is the ETag of an empty object: the MD5 of nothing.
const emptyETag = "d41d8cd98f00b204e9800998ecf8427e"

// objectHead is what the first read of an object tells: its whole size, its ETag, its version
// ID (when the bucket is versioned) and its first bytes (all of it when size <= headBytes).
type objectHead struct {
	size    int64
	etag    string
	version string
	buf     []byte
}

// readHead reads the first headBytes of the object with one ranged GET, which also carries
// the object's size (Content-Range) and ETag: no HEAD request is needed. The GET and its body
// are bounded by S3Timeout.
func (a *Analyzer) readHead(ctx context.Context, rec *s3event.Record) (*objectHead, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, a.opts.S3Timeout, errS3Stalled)
	defer cancel()
	h, err := a.readHeadWithin(ctx, rec)
	err = stalled(ctx, a.opts.S3Timeout, err)
	a.s3.note(err)
	return h, err
}

func (a *Analyzer) readHeadWithin(ctx context.Context, rec *s3event.Record) (*objectHead, error) {
	in := a.objectInput(rec).get()
	in.Range = aws.String(fmt.Sprintf("bytes=0-%d", headBytes-1))
	obj, err := a.deps.S3.GetObject(ctx, in)
	if err != nil {
		if isNotFound(err) || isInvalidRange(err) {
			return nil, err
		}
		return nil, s3Fault(fmt.Errorf("read object head: %w", err))
	}
	defer obj.Body.Close()
	size, ok := rangeTotal(aws.ToString(obj.ContentRange))
	if !ok {
		// A 200 with the whole object (a server that ignores Range): its length is the size.
		size = aws.ToInt64(obj.ContentLength)
	}
	buf, err := io.ReadAll(io.LimitReader(obj.Body, headBytes))
	if err != nil {
		return nil, s3Fault(fmt.Errorf("read object head: %w", err))
	}
	return &objectHead{size: size, etag: trimETag(aws.ToString(obj.ETag)), version: aws.ToString(obj.VersionId), buf: buf}, nil
}

// rangeTotal is the complete length in a Content-Range header ("bytes 0-99/1234").
func rangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil && n >= 0
}

// identify recognises the image from the bytes readHead got. A non-image fails here,
// permanently, without spending a Vision call.
func identify(h *objectHead) (*imagemeta.Meta, error) {
	// When buf is the whole object, let Inspect read one byte past it: a header cut short
	// then ends in EOF, which Inspect itself reports as CorruptImage.
	limit := int64(len(h.buf))
	if limit >= h.size {
		limit++
	}
	meta, err := imagemeta.Inspect(bytes.NewReader(h.buf), limit)
	if failure.ReasonOf(err) == imagemeta.ReasonHeaderBeyondLimit {
		// A header longer than what was read (a huge EXIF block): the image may be fine.
		// Go on with the format alone and let Vision judge the pixels.
		f := imagemeta.Sniff(h.buf)
		return &imagemeta.Meta{Format: f, MIME: f.MIME()}, nil
	}
	return meta, err
}

// errObjectGone says the object changed or disappeared between the head read and the rest.
var errObjectGone = errors.New("object changed or deleted since it was first read")

// open gives one Vision attempt the whole object: the bytes already read, then the rest
// streamed from S3 with a ranged GET pinned to the same content (getPinned). The wait for the
// GET's headers and every read of its body are bounded by S3Timeout (watchdog, guardedBody);
// its first failure is kept in failed.
func (a *Analyzer) open(ctx context.Context, rec *s3event.Record, h *objectHead, failed *atomic.Pointer[error]) (io.ReadCloser, int64, error) {
	if int64(len(h.buf)) >= h.size {
		return io.NopCloser(bytes.NewReader(h.buf)), h.size, nil
	}
	dog := newWatchdog(ctx, a.opts.S3Timeout)
	body, err := a.getPinned(dog.ctx, rec, h, fmt.Sprintf("bytes=%d-", len(h.buf)))
	dog.end()
	if err != nil {
		dog.stop()
		if !errors.Is(err, errObjectGone) {
			failed.CompareAndSwap(nil, &err)
		}
		return nil, 0, err
	}
	rest := &guardedBody{body: body, dog: dog, failed: failed, health: &a.s3}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(h.buf), rest), rest}, h.size, nil
}

// verifyUnchanged checks, after Vision fetched a presigned URL of an unversioned object, that
// the object still has the content the event and the head read saw; errObjectGone when not.
func (a *Analyzer) verifyUnchanged(ctx context.Context, rec *s3event.Record, h *objectHead) error {
	ctx, cancel := context.WithTimeoutCause(ctx, a.opts.S3Timeout, errS3Stalled)
	defer cancel()
	body, err := a.getPinned(ctx, rec, h, "bytes=0-0")
	if err == nil {
		body.Close()
	}
	return err
}

// getPinned GETs a range of the object pinned to the content first read: If-Match on its
// ETag, and the answer's ETag checked again for servers that ignore If-Match. An object
// changed or deleted since is errObjectGone; other failures are classified (s3Fault).
func (a *Analyzer) getPinned(ctx context.Context, rec *s3event.Record, h *objectHead, byteRange string) (io.ReadCloser, error) {
	in := a.objectInput(rec).get()
	in.Range = aws.String(byteRange)
	if h.etag != "" {
		in.IfMatch = aws.String(`"` + h.etag + `"`)
	}
	obj, err := a.deps.S3.GetObject(ctx, in)
	if err != nil {
		if isNotFound(err) || isPreconditionFailed(err) {
			a.s3.note(nil)
			return nil, errObjectGone
		}
		err = stalled(ctx, a.opts.S3Timeout, s3Fault(fmt.Errorf("get object: %w", err)))
		a.s3.note(err)
		return nil, err
	}
	a.s3.note(nil)
	if h.etag != "" && trimETag(aws.ToString(obj.ETag)) != h.etag {
		obj.Body.Close()
		return nil, errObjectGone
	}
	return obj.Body, nil
}

// presign returns a presigned GET of the event's object (of its version, when the event
// names one). It cannot carry the If-Match that pins stream mode's reads: SigV4 signs If-Match
// as a header, which Vision, fetching the bare URL, would not send, so S3 would refuse every
// fetch. The request it returns signs the host header alone; verifyUnchanged checks the
// content after Vision fetched it instead.
func (a *Analyzer) presign(ctx context.Context, rec *s3event.Record) (string, error) {
	req, err := a.presigner.PresignGetObject(ctx, a.objectInput(rec).get(), s3.WithPresignExpires(a.opts.PresignTTL))
	if err != nil {
		return "", s3Fault(fmt.Errorf("presign: %w", err))
	}
	for h := range req.SignedHeader {
		if !strings.EqualFold(h, "Host") {
			return "", &dependencyFault{dep: "s3", err: failure.SetupFault(failure.Transient, "PresignNeedsHeader",
				fmt.Errorf("presigned GET signs header %s, which Vision does not send", h))}
		}
	}
	return req.URL, nil
}

// objectRef names the exact object an event is about: its version when the bucket is
// versioned, otherwise the content with the event's ETag.
type objectRef struct {
	bucket, key, version, etag string
}

func (a *Analyzer) objectInput(rec *s3event.Record) objectRef {
	return objectRef{rec.Bucket, rec.Key, rec.VersionID, rec.ETag}
}

func (o objectRef) get() *s3.GetObjectInput {
	in := &s3.GetObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.key)}
	if o.version != "" {
		in.VersionId = aws.String(o.version)
	}
	return in
}

func trimETag(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func isInvalidRange(err error) bool { return awserr.Code(err) == "InvalidRange" }

func isPreconditionFailed(err error) bool { return awserr.Code(err) == "PreconditionFailed" }

func isNotFound(err error) bool {
	switch awserr.Code(err) {
	case "NoSuchKey", "NotFound", "NoSuchVersion":
		return true
	}
	return false
}
