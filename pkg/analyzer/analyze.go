package analyzer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/objects"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/vision"
)

// The analyze stage (a worker's part: the Vision call) and the publish stage after it.

// outgoing is a record ready to publish, with its logger, the event it answers and, for a
// created object, what its first read found (for the thumbnail).
type outgoing struct {
	rec   *record.Analysis
	log   *zap.Logger
	ev    *s3event.Record
	head  *objects.Head
	unfit string   // a removal's: the ETag of the key's content that can never be indexed (item.unfit)
	older []string // the thumbnails the record supersedes, removed once it is published
}

// analyze is a worker's part: Vision for every prepared object, in order. It returns the
// records to publish (an object that changed while it was read is skipped and counted) or the
// first error, classified. Items with nothing for Vision (removals) pass through.
func (a *Analyzer) analyze(ctx context.Context, items []item) ([]outgoing, error) {
	out := make([]outgoing, 0, len(items))
	for _, it := range items {
		r := it.ready
		if r == nil {
			var why string
			var err error
			r, why, err = a.analyzeObject(ctx, it.rec, it.head, it.meta)
			if failure.IsPermanent(err) && visionAnswered(err) {
				err = &unindexable{rec: it.rec, etag: it.head.ETag, err: err} // Vision's verdict on the image
			}
			if err != nil {
				return nil, fmt.Errorf("%s %s/%s: %w", it.rec.EventName, it.rec.Bucket, it.rec.Key, err)
			}
			if r == nil {
				it.log.Info("record skipped", zap.String("why", why))
				a.metrics.skipped.Inc()
				continue
			}
		}
		out = append(out, outgoing{rec: r, log: it.log, ev: it.rec, head: it.head, unfit: it.unfit})
	}
	return out, nil
}

// analyzeObject calls Vision on a prepared object and builds its record. A nil record with a
// reason means the object changed or disappeared while it was read. A failure of S3, or of
// Vision itself, comes back as a dependencyFault.
func (a *Analyzer) analyzeObject(ctx context.Context, rec *s3event.Record, head *objects.Head, meta *imagemeta.Meta) (*record.Analysis, string, error) {
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
			// The URL cannot pin the content (see objects.Store.PresignGet): check that what
			// Vision fetched is still the event's content.
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
		err = &dependencyFault{dep: depVision, err: err}
	}
	if err != nil {
		return nil, "", err
	}

	out := &record.Analysis{
		SchemaVersion: record.SchemaVersion, Event: record.Created,
		Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag,
		Sequencer: rec.Sequencer, EventTime: rec.EventTime,
		Size: head.Size, ContentType: meta.MIME, Format: meta.Format.String(),
		Width: meta.Width, Height: meta.Height,
		Caption: res.Caption, CaptionConfidence: res.CaptionConfidence,
		ModelVersion: res.ModelVersion, APIVersion: res.APIVersion,
		AnalyzedAt: a.now().UTC(),
	}
	if res.Width > 0 && res.Height > 0 {
		out.Width, out.Height = res.Width, res.Height
	}
	if len(res.Tags) > 0 {
		out.Tags = make([]record.Tag, len(res.Tags))
		for i, t := range res.Tags {
			out.Tags[i] = record.Tag{Name: t.Name, Confidence: t.Confidence}
		}
	}
	out.EXIF = exifOf(meta.EXIF)
	withFeatures(out, res)
	return out, "", nil
}

// exifOf is the record's EXIF of what Inspect read; nil for none.
func exifOf(x *imagemeta.EXIF) *record.EXIF {
	if x == nil {
		return nil
	}
	out := &record.EXIF{Make: x.Make, Model: x.Model, Orientation: x.Orientation}
	if t, err := time.Parse(imagemeta.EXIFTimeLayout, x.DateTimeOriginal); err == nil {
		out.TakenAt = t.Format("2006-01-02T15:04:05")
	}
	if x.HasGPS {
		out.GPS = &record.GPS{Latitude: x.Latitude, Longitude: x.Longitude}
	}
	return out
}

// withFeatures copies the optional Vision features of res into r.
func withFeatures(r *record.Analysis, res *vision.Result) {
	for _, f := range res.Features {
		r.Features = append(r.Features, string(f))
	}
	box := func(b vision.Box) record.Box { return record.Box{X: b.X, Y: b.Y, W: b.W, H: b.H} }
	for _, o := range res.Objects {
		r.Objects = append(r.Objects, record.Object{Name: o.Text, Confidence: o.Confidence, Box: box(o.Box)})
	}
	for _, l := range res.Text {
		b := box(l.Box)
		r.Text = append(r.Text, record.TextLine{Text: l.Text, Box: &b})
	}
	for _, p := range res.People {
		r.People = append(r.People, record.Person{Confidence: p.Confidence, Box: box(p.Box)})
	}
	for _, c := range res.DenseCaptions {
		r.DenseCaptions = append(r.DenseCaptions, record.DenseCaption{Text: c.Text, Confidence: c.Confidence, Box: box(c.Box)})
	}
	for _, c := range res.SmartCrops {
		r.SmartCrops = append(r.SmartCrops, record.SmartCrop{AspectRatio: c.AspectRatio, Box: box(c.Box)})
	}
}

// publish publishes what analyze produced, in order, each after its thumbnail step and then
// followed by the removal of the thumbnails it supersedes, and returns the first error,
// classified: one that is not the record's own fault is a Pub/Sub (or, for the thumbnail, S3)
// dependency fault.
func (a *Analyzer) publish(ctx context.Context, recs []outgoing) error {
	for _, p := range recs {
		if err := a.thumbnail(ctx, &p); err != nil {
			return fmt.Errorf("thumbnail of %s/%s: %w", p.rec.Bucket, p.rec.Key, err)
		}
		id, err := a.deps.Publisher.Publish(ctx, p.rec)
		if err != nil {
			err = fmt.Errorf("%s %s/%s: %w", p.rec.Event, p.rec.Bucket, p.rec.Key, err)
			if !failure.IsPermanent(err) && ctx.Err() == nil {
				err = &dependencyFault{dep: depPubSub, err: err}
			}
			return err
		}
		p.log.Info("published", zap.String("pubsub_message_id", id), zap.String("analysis_event", string(p.rec.Event)))
		a.removeSuperseded(ctx, &p)
	}
	return nil
}
