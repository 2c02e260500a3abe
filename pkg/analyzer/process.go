package analyzer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"imgpipe/pkg/analysis"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/imagemeta"
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

// outcome of one S3 event record.
type recordOutcome int

const (
	published recordOutcome = iota
	skipped                 // nothing to do: object gone or superseded, or not an event we handle
)

// processMessage handles every record of one SQS message body. It returns nil when every
// record is published or deliberately skipped; otherwise the first error, classified.
func (a *Analyzer) processMessage(ctx context.Context, log *zap.Logger, body string) error {
	msg, err := s3event.Parse([]byte(body))
	if err != nil {
		return err
	}
	if msg.TestEvent {
		log.Info("s3 test event ignored")
		return nil
	}
	for i := range msg.Records {
		rec := &msg.Records[i]
		rlog := log.With(zap.String("bucket", rec.Bucket), zap.String("key", rec.Key), zap.String("event", rec.EventName))
		out, err := a.processRecord(ctx, rlog, rec)
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", rec.EventName, rec.Bucket, rec.Key, err)
		}
		if out == skipped {
			a.metrics.skipped.Add(1)
		}
	}
	return nil
}

func (a *Analyzer) processRecord(ctx context.Context, log *zap.Logger, rec *s3event.Record) (recordOutcome, error) {
	var out *analysis.Record
	switch rec.Kind {
	case s3event.Created:
		r, why, err := a.analyzeObject(ctx, rec)
		if err != nil {
			return 0, err
		}
		if r == nil {
			log.Info("record skipped", zap.String("why", why))
			return skipped, nil
		}
		out = r
	case s3event.Removed:
		out = &analysis.Record{
			SchemaVersion: analysis.SchemaVersion, Event: analysis.Removed,
			Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID,
			Sequencer: rec.Sequencer, EventTime: rec.EventTime,
		}
	default:
		log.Info("event type not handled; skipped")
		return skipped, nil
	}
	id, err := a.deps.Publisher.Publish(ctx, out)
	if err != nil {
		return 0, err
	}
	log.Info("published", zap.String("pubsub_message_id", id), zap.String("analysis_event", string(out.Event)))
	return published, nil
}

// analyzeObject reads the object's head to identify it, calls Vision, and builds the record.
// A nil record with a reason means the event is stale and there is nothing to analyse.
func (a *Analyzer) analyzeObject(ctx context.Context, rec *s3event.Record) (*analysis.Record, string, error) {
	head, err := a.deps.S3.HeadObject(ctx, a.objectInput(rec).head())
	if err != nil {
		if isNotFound(err) {
			// Deleted (or overwritten, for a versioned get) since the event: its ObjectRemoved
			// event follows and removes it from the index.
			return nil, "object no longer exists", nil
		}
		return nil, "", classifyS3(fmt.Errorf("head object: %w", err))
	}
	if rec.VersionID == "" && rec.ETag != "" && trimETag(aws.ToString(head.ETag)) != rec.ETag {
		// Overwritten since this event, in an unversioned bucket: the newer content has its
		// own event, and analysing it here would attach it to the older sequencer.
		return nil, "object overwritten since the event", nil
	}
	size := aws.ToInt64(head.ContentLength)
	switch {
	case size == 0:
		return nil, "", failure.Permanentf(imagemeta.ReasonNotAnImage, "object is empty")
	case size > a.opts.MaxImageBytes:
		return nil, "", failure.Permanentf(ReasonImageTooLarge, "object is %d bytes, the limit is %d", size, a.opts.MaxImageBytes)
	}
	meta, headBuf, err := a.inspect(ctx, rec, size)
	if err != nil {
		return nil, "", err
	}

	start := time.Now()
	var res *vision.Result
	if a.opts.Mode == ModeURL {
		url, perr := a.presign(ctx, rec)
		if perr != nil {
			return nil, "", perr
		}
		res, err = a.deps.Vision.AnalyzeURL(ctx, url)
	} else {
		res, err = a.deps.Vision.AnalyzeStream(ctx, func() (io.ReadCloser, int64, error) {
			if int64(len(headBuf)) == size {
				// The head read was the whole object: no second read from S3.
				return io.NopCloser(bytes.NewReader(headBuf)), size, nil
			}
			return a.open(ctx, rec)
		})
	}
	a.metrics.observeVision(time.Since(start), err)
	switch {
	case err == nil || failure.IsPermanent(err):
		a.breaker.Success() // Vision answered, even if it refused this image
	case ctx.Err() != nil || failure.ReasonOf(err) == "ClientRateLimit":
		// Our own cancellation or our own rate limit says nothing about Vision.
	default:
		a.breaker.Failure()
		err = &visionDown{err}
	}
	if err != nil {
		return nil, "", err
	}

	out := &analysis.Record{
		SchemaVersion: analysis.SchemaVersion, Event: analysis.Created,
		Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag,
		Sequencer: rec.Sequencer, EventTime: rec.EventTime,
		Size: size, ContentType: meta.MIME, Format: meta.Format.String(),
		Width: meta.Width, Height: meta.Height,
		Caption: res.Caption, CaptionConfidence: res.CaptionConfidence,
		ModelVersion: res.ModelVersion, APIVersion: res.APIVersion,
		AnalyzedAt: a.now().UTC(),
	}
	if res.Width > 0 && res.Height > 0 {
		out.Width, out.Height = res.Width, res.Height
	}
	for _, t := range res.Tags {
		out.Tags = append(out.Tags, analysis.Tag{Name: t.Name, Confidence: t.Confidence})
	}
	return out, "", nil
}

// inspect reads the first bytes of the object and identifies the image; it returns what it
// read too. A non-image fails here, permanently, without spending a Vision call.
func (a *Analyzer) inspect(ctx context.Context, rec *s3event.Record, size int64) (*imagemeta.Meta, []byte, error) {
	in := a.objectInput(rec).get()
	in.Range = aws.String(fmt.Sprintf("bytes=0-%d", min(size, headBytes)-1))
	obj, err := a.deps.S3.GetObject(ctx, in)
	if err != nil {
		return nil, nil, classifyS3(fmt.Errorf("read object head: %w", err))
	}
	defer obj.Body.Close()
	buf, err := io.ReadAll(io.LimitReader(obj.Body, headBytes))
	if err != nil {
		return nil, nil, failure.New(failure.Transient, "S3ReadFailed", fmt.Errorf("read object head: %w", err))
	}
	// When buf is the whole object, let Inspect read one byte past it: a header cut short
	// then ends in EOF, which Inspect itself reports as CorruptImage.
	limit := int64(len(buf))
	if limit >= size {
		limit++
	}
	meta, err := imagemeta.Inspect(bytes.NewReader(buf), limit)
	if failure.ReasonOf(err) == imagemeta.ReasonHeaderBeyondLimit {
		// A header longer than what was read (a huge EXIF block): the image may be fine.
		// Go on with the format alone and let Vision judge the pixels.
		return &imagemeta.Meta{Format: imagemeta.Sniff(buf), MIME: imagemeta.Sniff(buf).MIME()}, buf, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return meta, buf, nil
}

// open streams the object for one Vision attempt.
func (a *Analyzer) open(ctx context.Context, rec *s3event.Record) (io.ReadCloser, int64, error) {
	obj, err := a.deps.S3.GetObject(ctx, a.objectInput(rec).get())
	if err != nil {
		return nil, 0, classifyS3(fmt.Errorf("get object: %w", err))
	}
	return obj.Body, aws.ToInt64(obj.ContentLength), nil
}

func (a *Analyzer) presign(ctx context.Context, rec *s3event.Record) (string, error) {
	req, err := a.presigner.PresignGetObject(ctx, a.objectInput(rec).get(), s3.WithPresignExpires(a.opts.PresignTTL))
	if err != nil {
		return "", failure.New(failure.Transient, "PresignFailed", fmt.Errorf("presign: %w", err))
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

func (o objectRef) head() *s3.HeadObjectInput {
	in := &s3.HeadObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.key)}
	if o.version != "" {
		in.VersionId = aws.String(o.version)
	}
	return in
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

func isNotFound(err error) bool {
	var nk *s3types.NoSuchKey
	var nf *s3types.NotFound
	if errors.As(err, &nk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchVersion")
}

// classifyS3 sorts S3 errors: a missing bucket or access denied is configuration (transient:
// retried until the operator fixes it, then the redrive policy decides); throttling is
// throttled; the rest transient.
func classifyS3(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "SlowDown", "RequestLimitExceeded", "Throttling", "ThrottlingException":
			return failure.ThrottledAfter("S3Throttled", 0, err)
		case "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return failure.New(failure.Transient, "S3Config", err)
		}
	}
	return failure.New(failure.Transient, "S3Unavailable", err)
}
