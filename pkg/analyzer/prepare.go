package analyzer

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/objects"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/tracing"
)

// The prepare stage: what a message needs before it takes a worker.

// Reasons the analyzer itself gives to permanent failures (Vision's own inner codes, such as
// InvalidImageFormat, pass through unchanged).
const (
	ReasonImageTooLarge = "ImageTooLarge"
)

// emptyETag is the ETag of an empty object: the MD5 of nothing.
const emptyETag = "d41d8cd98f00b204e9800998ecf8427e"

// item is one record of a message once prepared: either a record ready to publish (a
// removal) or a created object identified from its first bytes, waiting for Vision.
type item struct {
	rec   *s3event.Record
	log   *zap.Logger
	ready *record.Analysis
	head  *objects.Head
	meta  *imagemeta.Meta
	// unfit, for a removal published because the key's current content can never be
	// indexed, is that content's ETag: the thumbnail goes while the key still holds it.
	unfit string
}

// unindexable is a permanent failure of a created object's content (not an image, empty,
// too large, or Vision's verdict on it) for the event rec: the key holds something the
// index cannot show, so the key's document and thumbnail are removed, at rec's sequencer,
// before the message is dead-lettered (process). etag is the content's ETag ("" if empty).
type unindexable struct {
	rec  *s3event.Record
	etag string
	err  error
}

func (u *unindexable) Error() string { return u.err.Error() }
func (u *unindexable) Unwrap() error { return u.err }

// removalOf is the removal record of rec's key, at rec's sequencer.
func removalOf(rec *s3event.Record) *record.Analysis {
	return &record.Analysis{
		SchemaVersion: record.SchemaVersion, Event: record.Removed,
		Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID,
		Sequencer: rec.Sequencer, EventTime: rec.EventTime,
	}
}

// needsVision reports whether any prepared item still needs Vision, and so a worker.
func needsVision(items []item) bool {
	for _, it := range items {
		if it.head != nil {
			return true
		}
	}
	return false
}

// prepare does the part of a message's work that needs no worker: it parses the event,
// reads the first bytes of every created object and identifies it. It returns what is left
// to do (nothing for a test event or stale records, which are skipped and counted), or the
// first error, classified: a non-image, an empty or too-large object fails here without
// holding a worker or spending a Vision call.
// tr is the message's trace: the first object read may give it its parent.
func (a *Analyzer) prepare(ctx context.Context, tr *msgTrace, log *zap.Logger, body []byte) ([]item, error) {
	msg, err := s3event.Parse(body)
	if err != nil {
		return nil, err
	}
	if msg.TestEvent {
		tracing.Logger(tr.begin(nil), log).Info("s3 test event ignored")
		return nil, nil
	}
	var out []item
	for i := range msg.Records {
		rec := &msg.Records[i]
		base := log.WithLazy(zap.String("bucket", rec.Bucket), zap.String("key", rec.Key), zap.String("event", rec.EventName))
		it := item{rec: rec, log: base}
		var why string
		switch {
		case a.thumbs.isThumbnail(rec.Key):
			why = "a thumbnail (the notification should not cover the thumbnail prefix)"
		case rec.Kind == s3event.Created:
			it.head, it.meta, why, err = a.prepareObject(ctx, tr, rec)
		case rec.Kind == s3event.Removed:
			it.log = tracing.Logger(tr.begin(nil), base) // before: the removal's reads log with it
			why, err = a.prepareRemoval(ctx, tr, &it)
		default:
			why = "event type not handled"
		}
		if it.log == base {
			it.log = tracing.Logger(tr.begin(nil), base) // after the first read, which may give the trace its parent
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s/%s: %w", rec.EventName, rec.Bucket, rec.Key, err)
		}
		if why != "" {
			it.log.Info("record skipped", zap.String("why", why))
			a.metrics.skipped.Inc()
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
func (a *Analyzer) prepareRemoval(ctx context.Context, tr *msgTrace, it *item) (why string, err error) {
	rec := it.rec
	removed := removalOf(rec)
	switch {
	case rec.ExpiresVersion():
		return "a noncurrent version expired: the current version is unchanged", nil
	case !rec.RemovesVersion():
		it.ready = removed
		return "", nil
	}
	cur := *rec
	cur.VersionID, cur.ETag, cur.Size = "", "", 0
	head, err := a.readHeadTraced(ctx, tr, &cur, false)
	switch {
	case errors.Is(err, objects.ErrNotFound), errors.Is(err, objects.ErrEmpty):
		// No version left, a delete marker, or an empty current version.
		it.ready = removed
		return "", nil
	case err != nil:
		return "", err
	}
	cur.VersionID, cur.ETag, cur.Size = head.Version, head.ETag, head.Size
	meta, err := a.checkHead(head)
	if failure.IsPermanent(err) {
		it.log.Info("removal: the current version cannot be indexed", zap.String("removed_version", rec.VersionID),
			zap.String("current_version", cur.VersionID), zap.Error(err))
		it.ready, it.unfit = removed, head.ETag
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

// prepareObject reads the object's first bytes and identifies the image. A nil head with a
// reason means the event is stale and there is nothing to analyse.
func (a *Analyzer) prepareObject(ctx context.Context, tr *msgTrace, rec *s3event.Record) (*objects.Head, *imagemeta.Meta, string, error) {
	head, err := a.readHeadTraced(ctx, tr, rec, true)
	switch {
	case errors.Is(err, objects.ErrNotFound):
		// Deleted (or overwritten, for a versioned get) since the event: its ObjectRemoved
		// event follows and removes it from the index.
		return nil, nil, "object no longer exists", nil
	case errors.Is(err, objects.ErrEmpty):
		if etagPinned(rec) && rec.ETag != "" && rec.ETag != emptyETag {
			return nil, nil, "object overwritten since the event", nil
		}
		return nil, nil, "", &unindexable{rec: rec, err: failure.Permanentf(imagemeta.ReasonNotAnImage, "object is empty")}
	case err != nil:
		return nil, nil, "", err
	}
	if etagPinned(rec) && rec.ETag != "" && head.ETag != rec.ETag {
		// Overwritten since this event, in an unversioned bucket (or the null version of a
		// suspended one): the newer content has its own event, and analysing it here would
		// attach it to the older sequencer.
		return nil, nil, "object overwritten since the event", nil
	}
	meta, err := a.checkHead(head)
	if failure.IsPermanent(err) {
		return nil, nil, "", &unindexable{rec: rec, etag: head.ETag, err: err}
	}
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
func (a *Analyzer) checkHead(head *objects.Head) (*imagemeta.Meta, error) {
	switch {
	case head.Size == 0:
		return nil, failure.Permanentf(imagemeta.ReasonNotAnImage, "object is empty")
	case head.Size > a.opts.MaxImageBytes:
		return nil, failure.Permanentf(ReasonImageTooLarge, "object is %d bytes, the limit is %d", head.Size, a.opts.MaxImageBytes)
	}
	return identify(head)
}

// identify recognises the image from the bytes readHead got. A non-image fails here,
// permanently, without spending a Vision call.
func identify(h *objects.Head) (*imagemeta.Meta, error) {
	// When the bytes are the whole object, let Inspect read one byte past them: a header cut
	// short then ends in EOF, which Inspect itself reports as CorruptImage.
	limit := int64(len(h.Bytes))
	if limit >= h.Size {
		limit++
	}
	meta, err := imagemeta.Inspect(bytes.NewReader(h.Bytes), limit)
	if failure.ReasonOf(err) == imagemeta.ReasonHeaderBeyondLimit {
		// A header longer than what was read (a huge EXIF block): the image may be fine.
		// Go on with the format alone and let Vision judge the pixels.
		f := imagemeta.Sniff(h.Bytes)
		return &imagemeta.Meta{Format: f, MIME: f.MIME()}, nil
	}
	return meta, err
}
