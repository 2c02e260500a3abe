package analyzer

import (
	"context"
	"errors"
	"image"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects"
	"imgpipe/pkg/record"
	"imgpipe/pkg/thumbnail"
)

// The thumbnail step of the finishing stage: before a created record is published, its
// object is read again (pinned to the content Vision saw) and a thumbnail written under
// Options.ThumbnailPrefix, its key put in the record; before a removal is published, the
// key's thumbnail is removed once the object is gone. Decodes are bounded in number
// (Options.ThumbnailDecodes) and in pixels (Options.ThumbnailMaxPixels), which bounds the
// memory they take; the worker is free meanwhile.

// DefaultThumbnailDecodes is Options.ThumbnailDecodes' default.
const DefaultThumbnailDecodes = 1

// maxKeyBytes is S3's longest key.
const maxKeyBytes = 1024

// ThumbnailKey is the key of the thumbnail of bucket/key under prefix: the prefix, the key
// and ".jpg"; for a key too long for that, the prefix, "long/" and the key's document ID.
func ThumbnailKey(prefix, bucket, key string) string {
	if k := prefix + key + ".jpg"; len(k) <= maxKeyBytes {
		return k
	}
	return prefix + "long/" + record.DocumentID(bucket, key) + ".jpg"
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
// an object that changed since Vision read it (its own event follows). A failure of S3 is
// returned, classified, and the message retried.
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
		return err
	}
	key := ThumbnailKey(t.prefix, r.Bucket, r.Key)
	err = a.writeObject(ctx, func(ctx context.Context) error { return t.w.Write(ctx, r.Bucket, key, data, "image/jpeg") })
	if failure.IsPermanent(err) {
		// The store will never take it: the analysis is still worth publishing.
		p.log.Warn("no thumbnail", zap.String("why", "the store refused it"), zap.String("thumbnail_key", key), zap.Error(err))
		a.metrics.thumbnails.WithLabelValues("refused").Inc()
		return nil
	}
	if err != nil {
		return err
	}
	r.ThumbnailKey = key
	a.metrics.thumbnails.WithLabelValues("written").Inc()
	return nil
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

// removeThumbnail removes the thumbnail of a removed object once the key reads as missing, or
// still holds the content the removal judged never indexable (p.unfit): if an object is
// back (created again since), its own event owns the thumbnail.
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
	key := ThumbnailKey(a.thumbs.prefix, p.rec.Bucket, p.rec.Key)
	err = a.writeObject(ctx, func(ctx context.Context) error { return a.thumbs.w.Remove(ctx, p.rec.Bucket, key) })
	if failure.IsPermanent(err) {
		p.log.Warn("thumbnail not removed", zap.String("why", "the store refused it"), zap.String("thumbnail_key", key), zap.Error(err))
		a.metrics.thumbnails.WithLabelValues("refused").Inc()
		return nil
	}
	if err != nil {
		return err
	}
	a.metrics.thumbnails.WithLabelValues("removed").Inc()
	return nil
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
