package analyzer

import (
	"context"
	"errors"
	"fmt"
	"image"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/thumbnail"
)

// The thumbnail step of the finishing stage: before a created record is published, its
// object is read again (pinned to the content Vision saw) and a thumbnail written under
// Options.ThumbnailPrefix, its key put in the record; before a removal is published, the
// key's thumbnails are removed once the object is gone. Decodes are bounded in number
// (Options.ThumbnailDecodes) and in pixels (Options.ThumbnailMaxPixels), which bounds the
// memory they take; the worker is free meanwhile.
//
// Each event's content has a thumbnail of its own (ThumbnailKey: the key's folder and the
// event's position and version or ETag), so that a late event of an older version cannot
// replace a newer version's thumbnail: each record points at the thumbnail of the content it
// describes. The older thumbnails in the key's folder are removed once a newer one's record
// is published (not before: the index still points at one of them until then), and when the
// key is removed.

// DefaultThumbnailDecodes is Options.ThumbnailDecodes' default.
const DefaultThumbnailDecodes = 1

// maxKeyBytes is S3's longest key.
const maxKeyBytes = 1024

// maxNameBytes is what a key's thumbnail folder leaves for a thumbnail's name within
// maxKeyBytes; maxIDBytes bounds the version or ETag in the name.
const (
	maxNameBytes = 224
	maxIDBytes   = 128
)

// ThumbnailDir is the folder of bucket/key's thumbnails under prefix: the prefix, the key and
// "/"; for a key too long for that, the prefix, "long/", the key's document ID and "/".
func ThumbnailDir(prefix, bucket, key string) string {
	if d := prefix + key + "/"; len(d)+maxNameBytes <= maxKeyBytes {
		return d
	}
	return prefix + "long/" + record.DocumentID(bucket, key) + "/"
}

// ThumbnailKey is the key of the thumbnail of the content rec describes, under prefix: its
// folder (ThumbnailDir), then rec's sequencer, its event time in Unix milliseconds and its
// version (the ETag in an unversioned bucket), joined by "-", and ".jpg".
func ThumbnailKey(prefix string, rec *record.Analysis) string {
	return ThumbnailDir(prefix, rec.Bucket, rec.Key) + thumbnailName(rec)
}

func thumbnailName(rec *record.Analysis) string {
	id := rec.VersionID
	if id == "" {
		id = rec.ETag
	}
	id = strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, id)
	if len(id) > maxIDBytes {
		id = id[:maxIDBytes]
	}
	return rec.Sequencer + "-" + strconv.FormatInt(max(0, rec.EventTime.UnixMilli()), 10) + "-" + id + ".jpg"
}

// thumbnailPosition is the event position a thumbnail's name (under its folder) holds; false
// for a name no thumbnail has (a deeper folder's, or not ours).
func thumbnailPosition(name string) (s3event.Position, bool) {
	name, ok := strings.CutSuffix(name, ".jpg")
	parts := strings.SplitN(name, "-", 3)
	if !ok || len(parts) != 3 || strings.Contains(name, "/") {
		return s3event.Position{}, false
	}
	if parts[0] != "" {
		if _, err := s3event.CompareSequencer(parts[0], parts[0]); err != nil {
			return s3event.Position{}, false
		}
	}
	ms, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || ms < 0 {
		return s3event.Position{}, false
	}
	return s3event.Position{Sequencer: parts[0], EventTime: time.UnixMilli(ms)}, true
}

// storedThumbnail is one thumbnail in a key's folder, with the event position its name holds.
type storedThumbnail struct {
	key string
	pos s3event.Position
}

// listThumbnails lists the thumbnails in the folder dir (its own objects only: a deeper
// folder's, another key's, are not read; what is there but not ours is left out), under the
// S3 timeout.
func (a *Analyzer) listThumbnails(ctx context.Context, bucket, dir string) ([]storedThumbnail, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, a.opts.S3Timeout, errS3Stalled)
	defer cancel()
	keys, err := a.thumbs.w.List(ctx, bucket, dir)
	err = stalled(ctx, a.opts.S3Timeout, s3Fault(err))
	a.s3.note(err)
	if err != nil {
		return nil, fmt.Errorf("list thumbnails %s: %w", dir, err)
	}
	var ts []storedThumbnail
	for _, k := range keys {
		if pos, ok := thumbnailPosition(strings.TrimPrefix(k, dir)); ok {
			ts = append(ts, storedThumbnail{k, pos})
		}
	}
	return ts, nil
}

// olderThan returns the keys of the thumbnails in ts older than pos.
func olderThan(ts []storedThumbnail, pos s3event.Position) []string {
	var old []string
	for _, t := range ts {
		if c, err := s3event.ComparePosition(t.pos, pos); err == nil && c < 0 {
			old = append(old, t.key)
		}
	}
	return old
}

// removeThumbnails removes keys, stopping at the first failure.
func (a *Analyzer) removeThumbnails(ctx context.Context, bucket string, keys []string) error {
	for _, k := range keys {
		if err := a.writeObject(ctx, func(ctx context.Context) error { return a.thumbs.w.Remove(ctx, bucket, k) }); err != nil {
			return fmt.Errorf("remove thumbnail %s: %w", k, err)
		}
		a.metrics.thumbnails.WithLabelValues("removed").Inc()
	}
	return nil
}

// thumbnails is the analyzer's thumbnail maker; nil when Options.ThumbnailPrefix is empty.
type thumbnails struct {
	w         objects.Writer
	prefix    string
	slots     chan struct{} // one per decode allowed at once
	maxPixels int64
}

func newThumbnails(w objects.Writer, o *Options) *thumbnails {
	if o.ThumbnailPrefix == "" {
		return nil
	}
	return &thumbnails{w: w, prefix: o.ThumbnailPrefix, slots: make(chan struct{}, o.ThumbnailDecodes), maxPixels: o.ThumbnailMaxPixels}
}

// isThumbnail reports whether key lies under the thumbnail prefix: an event about it (a
// notification that covers the prefix, against the setup's rules) is not analysed, so that
// thumbnails never make thumbnails.
func (t *thumbnails) isThumbnail(key string) bool {
	return t != nil && strings.HasPrefix(key, t.prefix)
}

// thumbnail does the thumbnail step for one outgoing record. An image no thumbnail can be
// made of (too many pixels, a format Go cannot decode) is published without one, and so is
// an object that changed since Vision read it (its own event follows). So is a record whose
// thumbnail S3 failed to read or write (counted as failed): the thumbnail is not worth
// another Vision call. A removal's S3 failure is returned, classified, and the message
// retried (it costs no Vision call).
func (a *Analyzer) thumbnail(ctx context.Context, p *outgoing) error {
	t := a.thumbs
	if t == nil {
		return nil
	}
	r := p.rec
	if r.Event == record.Removed {
		return a.removeThumbnail(ctx, p)
	}
	if p.head == nil {
		return nil
	}
	if r.Width <= 0 || r.Height <= 0 {
		p.log.Info("no thumbnail", zap.String("why", "dimensions unknown"))
		a.metrics.thumbnails.WithLabelValues("undecodable").Inc()
		return nil
	}
	if !thumbnail.Fits(r.Width, r.Height, t.maxPixels) {
		p.log.Info("no thumbnail", zap.String("why", "too many pixels"), zap.Int("width", r.Width), zap.Int("height", r.Height))
		a.metrics.thumbnails.WithLabelValues("too_large").Inc()
		return nil
	}
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	data, err := a.makeThumbnail(ctx, p)
	<-t.slots
	switch {
	case errors.Is(err, errObjectGone):
		p.log.Info("no thumbnail", zap.String("why", "object changed or deleted since it was analysed"))
		a.metrics.thumbnails.WithLabelValues("gone").Inc()
		return nil
	case errors.Is(err, thumbnail.ErrUndecodable):
		p.log.Info("no thumbnail", zap.String("why", "image cannot be decoded"), zap.Error(err))
		a.metrics.thumbnails.WithLabelValues("undecodable").Inc()
		return nil
	case err != nil:
		return a.thumbnailFailed(ctx, p, "reading the object again failed", "", err)
	}
	key := ThumbnailKey(t.prefix, r)
	err = a.writeObject(ctx, func(ctx context.Context) error { return t.w.Write(ctx, r.Bucket, key, data, "image/jpeg") })
	if failure.IsPermanent(err) {
		// The store will never take it: the analysis is still worth publishing.
		p.log.Warn("no thumbnail", zap.String("why", "the store refused it"), zap.String("thumbnail_key", key), zap.Error(err))
		a.metrics.thumbnails.WithLabelValues("refused").Inc()
		return nil
	}
	if err != nil {
		return a.thumbnailFailed(ctx, p, "writing it failed", key, err)
	}
	r.ThumbnailKey = key
	a.metrics.thumbnails.WithLabelValues("written").Inc()
	a.superseded(ctx, p, key)
	return nil
}

// thumbnailFailed publishes p without a thumbnail after a failure of S3 (counted as failed),
// unless ctx has ended (the analyzer stops: the message comes back whole).
func (a *Analyzer) thumbnailFailed(ctx context.Context, p *outgoing, why, key string, err error) error {
	if ctx.Err() != nil {
		return err
	}
	p.log.Warn("no thumbnail", zap.String("why", why), zap.String("thumbnail_key", key), zap.Error(err))
	a.metrics.thumbnails.WithLabelValues("failed").Inc()
	return nil
}

// superseded decides, before p's record is published, whether it is stale: a newer event's
// thumbnail lies in the key's folder beside the one just written at key. A stale record's
// own thumbnail is removed and the record goes without one. Otherwise the thumbnails older
// than key are kept in p.older, removed only once the record is published (until then the
// index's document still points at one of them). A listing that fails leaves them to the
// key's removal, logged.
func (a *Analyzer) superseded(ctx context.Context, p *outgoing, key string) {
	r := p.rec
	dir := ThumbnailDir(a.thumbs.prefix, r.Bucket, r.Key)
	ts, err := a.listThumbnails(ctx, r.Bucket, dir)
	if err != nil {
		p.log.Warn("older thumbnails not removed", zap.String("why", "S3 failed; the key's removal removes them"), zap.Error(err))
		return
	}
	own, _ := thumbnailPosition(strings.TrimPrefix(key, dir))
	for _, t := range ts {
		if c, cerr := s3event.ComparePosition(t.pos, own); cerr == nil && c > 0 {
			r.ThumbnailKey = ""
			a.metrics.thumbnails.WithLabelValues("superseded").Inc()
			p.log.Info("no thumbnail", zap.String("why", "a newer event's thumbnail is there: this record is stale"), zap.String("thumbnail_key", key))
			if err := a.removeThumbnails(ctx, r.Bucket, []string{key}); err != nil {
				p.log.Warn("stale thumbnail not removed", zap.String("why", "S3 failed; the key's removal removes it"), zap.Error(err))
			}
			return
		}
	}
	p.older = olderThan(ts, own)
}

// removeSuperseded removes, once p's record is published, the thumbnails it supersedes
// (p.older). A failure leaves them to the key's removal, logged.
func (a *Analyzer) removeSuperseded(ctx context.Context, p *outgoing) {
	if err := a.removeThumbnails(ctx, p.rec.Bucket, p.older); err != nil {
		p.log.Warn("older thumbnails not removed", zap.String("why", "S3 failed; the key's removal removes them"), zap.Error(err))
	}
}

// makeThumbnail streams the object again, pinned to its content, into the thumbnail maker,
// cut to the first smart crop when Vision gave one and turned upright by the EXIF orientation.
func (a *Analyzer) makeThumbnail(ctx context.Context, p *outgoing) ([]byte, error) {
	var failed atomic.Pointer[error]
	rc, _, err := a.open(ctx, p.ev, p.head, &failed)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	o := &thumbnail.Options{}
	if x := p.rec.EXIF; x != nil {
		o.Orientation = x.Orientation
	}
	if cs := p.rec.SmartCrops; len(cs) > 0 {
		b := cs[0].Box
		o.Crop = image.Rect(b.X, b.Y, b.X+b.W, b.Y+b.H)
	}
	data, _, err := thumbnail.Make(rc, o)
	if f := failed.Load(); f != nil {
		return nil, *f // S3 failed the read: not a verdict on the image
	}
	return data, err
}

// removeThumbnail removes the thumbnails of a removed object older than the removal once the
// key reads as missing, or still holds the content the removal judged never indexable
// (p.unfit): if an object is back (created again since), its own event owns the thumbnails.
func (a *Analyzer) removeThumbnail(ctx context.Context, p *outgoing) error {
	cur := *p.ev
	cur.VersionID, cur.ETag = "", ""
	head, err := a.readHead(ctx, &cur)
	switch {
	case err == nil && (p.unfit == "" || head.ETag != p.unfit):
		p.log.Info("thumbnail kept", zap.String("why", "the key holds an object again"))
		return nil
	case err != nil && !errors.Is(err, objects.ErrNotFound) && !errors.Is(err, objects.ErrEmpty):
		return err
	}
	r := p.rec
	ts, err := a.listThumbnails(ctx, r.Bucket, ThumbnailDir(a.thumbs.prefix, r.Bucket, r.Key))
	if err == nil {
		err = a.removeThumbnails(ctx, r.Bucket, olderThan(ts, s3event.Position{Sequencer: r.Sequencer, EventTime: r.EventTime}))
	}
	if failure.IsPermanent(err) {
		p.log.Warn("thumbnail not removed", zap.String("why", "the store refused it"), zap.Error(err))
		a.metrics.thumbnails.WithLabelValues("refused").Inc()
		return nil
	}
	return err
}

// writeObject runs one write to the object store under the S3 timeout, its failure an S3
// dependency fault unless it is permanent.
func (a *Analyzer) writeObject(ctx context.Context, write func(context.Context) error) error {
	ctx, cancel := context.WithTimeoutCause(ctx, a.opts.S3Timeout, errS3Stalled)
	defer cancel()
	err := stalled(ctx, a.opts.S3Timeout, s3Fault(write(ctx)))
	a.s3.note(err)
	return err
}
