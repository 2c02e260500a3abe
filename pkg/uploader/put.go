package uploader

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/tracing"
)

// maxRetryDelay caps the backoff between two attempts of one file.
const maxRetryDelay = 30 * time.Second

// process runs one file to its final result.
// Each file is one trace's root span (uploader.upload): its context goes into the object's
// metadata (traceparent, tracestate), where the analyzer continues it.
func (r *putRun) process(ctx context.Context, j job) {
	ctx, span := tracing.Tracer(tracerName).Start(ctx, "uploader.upload", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("imgpipe.path", j.path)))
	res := &r.results[j.idx]
	*res = r.processFile(ctx, j, *res)
	r.finish(tracing.Logger(ctx, r.u.log), res)
	endUpload(span, res)
}

const tracerName = "imgpipe/pkg/uploader"

// endUpload ends a file's span with its result.
func endUpload(span trace.Span, res *FileResult) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String("imgpipe.key", res.Key), attribute.String("imgpipe.status", string(res.Status)),
			attribute.String("imgpipe.reason", res.Reason), attribute.Int("imgpipe.attempts", res.Attempts))
		if res.Status == StatusFailed {
			span.SetStatus(codes.Error, res.Reason)
		}
	}
	span.End()
}

func (r *putRun) processFile(ctx context.Context, j job, res FileResult) FileResult {
	u := r.u
	f, err := os.Open(j.path)
	if err != nil {
		return failedResult(res, classifyFileErr(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return failedResult(res, classifyFileErr(err))
	}
	if !st.Mode().IsRegular() {
		res.Status, res.Reason, res.Detail = StatusSkipped, ReasonNotRegular, st.Mode().Type().String()
		return res
	}
	res.Bytes = st.Size()

	head := make([]byte, imagemeta.SniffLen)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return failedResult(res, classifyFileErr(err))
	}
	head = head[:n]
	if format := imagemeta.Sniff(head); format != imagemeta.Unknown {
		res.ContentType = format.MIME()
	} else {
		res.ContentType = http.DetectContentType(head)
		if !u.o.IncludeNonImages {
			res.Status, res.Reason, res.Detail = StatusSkipped, ReasonNonImage, "sniffed as "+res.ContentType
			if n == 0 {
				res.Detail = "empty file"
			}
			return res
		}
	}

	var partSize int64
	if st.Size() > u.o.PartSize {
		partSize = partSizeFor(st.Size(), u.o.PartSize)
	}
	digest, err := digestFile(ctx, f, st.Size(), partSize)
	if err != nil {
		return failedResult(res, err)
	}
	sum := digest.hex()
	res.SHA256 = sum
	res.Key = j.key
	if res.Key == "" {
		res.Key = KeyFor(u.o.Keys, u.prefix, j.rel, sum)
	}
	if prev, taken := r.claimKey(res.Key, j.path, sum); taken {
		if prev.sha == sum {
			res.Status, res.Reason, res.Detail = StatusSkipped, ReasonDuplicate, "same content as "+prev.path
			return res
		}
		return failedResult(res, failure.Permanentf(ReasonKeyCollision, "key %s is also the key of %s", res.Key, prev.path))
	}
	meta := map[string]string{
		MetaOriginalName: EncodeName(path.Base(strings.ReplaceAll(j.rel, `\`, "/"))),
		MetaSHA256:       sum,
		MetaUploader:     "imgpipe-uploader/" + Version,
	}
	tracing.Inject(ctx, meta)

	a := &attemptState{file: f, stat: st, res: &res, meta: meta, digest: digest, dedupe: j.dedupe}
	pol := retry.Policy{MaxRetries: u.o.Retries, BaseDelay: u.o.RetryBaseDelay, MaxDelay: maxRetryDelay}
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		dup, err := r.attempt(ctx, a)
		if err == nil {
			if dup {
				res.Status, res.Reason, res.Detail = StatusSkipped, ReasonDuplicate, "already in the bucket with the same SHA-256"
			} else {
				res.Status = StatusUploaded
			}
			return res
		}
		if !retryable(err) || ctx.Err() != nil || attempt > pol.Retries() {
			r.abandon(a)
			return failedResult(res, err)
		}
		wait := pol.Delay(attempt, failure.RetryAfterOf(err), nil)
		tracing.Logger(ctx, u.log).Info("retrying file", zap.String("path", res.Path), zap.String("key", res.Key),
			zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.abandon(a)
			return failedResult(res, retry.Interrupted(ctx.Err(), err))
		}
	}
}

// attemptState is what one file's attempts share: a multipart upload survives a failed attempt
// so that the next one sends only the missing parts.
type attemptState struct {
	file *os.File
	stat os.FileInfo
	res  *FileResult
	meta map[string]string
	// digest is the content's SHA-256 (and its parts'), sent as the upload's checksum so that
	// S3 refuses bytes that changed after hashing.
	digest fileDigest
	// dedupe: check whether the key already holds the same content before sending.
	dedupe bool
	mp     *multipartState
	sent   atomic.Int64 // bytes of this file acknowledged by S3 so far
}

// abandon gives up a file: its multipart upload, if any, is aborted and its bytes leave the
// progress count.
func (r *putRun) abandon(a *attemptState) {
	r.bytesSent.Add(-a.sent.Swap(0))
	if a.mp != nil && a.mp.uploadID != "" {
		r.u.abortMultipart(a.res.Key, a.mp.uploadID)
		a.mp = nil
	}
}

// attempt makes one try at a file: the duplicate check, then the upload.
func (r *putRun) attempt(ctx context.Context, a *attemptState) (duplicate bool, err error) {
	u := r.u
	key := a.res.Key
	if err := unchanged(a.file, a.stat); err != nil {
		return false, err
	}
	if a.dedupe && a.mp == nil {
		same, err := u.sameObject(ctx, key, a.res.SHA256)
		if err != nil {
			return false, err
		}
		if same {
			return true, nil
		}
	}
	onSent := func(n int64) {
		a.sent.Add(n)
		r.bytesSent.Add(n)
	}
	size := a.stat.Size()
	var version string
	if size > u.o.PartSize {
		if a.mp == nil {
			a.mp = &multipartState{}
		}
		a.res.Parts, version, err = u.multipart(ctx, a.file, size, key, a.res.ContentType, a.meta, a.digest, a.mp, onSent)
		if err == nil {
			a.mp = nil
		}
	} else {
		version, err = u.putObject(ctx, a.file, size, key, a.res.ContentType, a.meta, a.digest, onSent)
	}
	if err != nil {
		return false, err
	}
	if err := unchanged(a.file, a.stat); err != nil {
		// The object holds what was hashed, but the file no longer does (it is still being
		// written): left in place it would be a second document once the file is sent again.
		return false, u.removeWritten(key, version, err)
	}
	return false, nil
}

// removeWritten deletes the object version an upload just wrote, because of why (a file that
// changed once sent); in a versioned bucket exactly that version, so the previous one is
// current again. It runs on its own context, like abortMultipart. It returns why, with the
// outcome of the delete.
func (u *Uploader) removeWritten(key, version string, why error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &s3.DeleteObjectInput{Bucket: &u.bucket, Key: &key}
	if version != "" {
		in.VersionId = &version
	}
	if _, err := u.client.DeleteObject(ctx, in); err != nil {
		u.log.Warn("delete the object of a file that changed", zap.String("key", key), zap.String("versionId", version), zap.Error(err))
		return fmt.Errorf("%w; the object it wrote (%s version %q) could not be deleted: %v", why, key, version, err)
	}
	return fmt.Errorf("%w; the object it wrote was deleted", why)
}

// unchanged checks that f still has the size and modification time it had when it was hashed.
func unchanged(f *os.File, was os.FileInfo) error {
	now, err := f.Stat()
	if err != nil {
		return classifyFileErr(err)
	}
	if now.Size() != was.Size() || !now.ModTime().Equal(was.ModTime()) {
		return failure.Permanentf(ReasonFileChanged, "%s changed while it was uploaded (size %d -> %d)", f.Name(), was.Size(), now.Size())
	}
	return nil
}

// acquire takes one of the Uploader's request slots.
func (u *Uploader) acquire(ctx context.Context) error {
	select {
	case u.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (u *Uploader) release() { <-u.slots }

// sameObject reports whether key already holds content with SHA-256 sum, by its metadata.
// When HeadObject is forbidden (an upload-only policy) it answers false: the check is skipped.
func (u *Uploader) sameObject(ctx context.Context, key, sum string) (bool, error) {
	if err := u.acquire(ctx); err != nil {
		return false, err
	}
	defer u.release()
	out, err := u.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.bucket, Key: &key})
	if err != nil {
		var nf *types.NotFound
		var nk *types.NoSuchKey
		var re *smithyhttp.ResponseError
		switch {
		case errors.As(err, &nf) || errors.As(err, &nk):
			return false, nil
		case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden:
			// A writer without s3:GetObject may not look: the check is best effort.
			u.log.Debug("duplicate check not allowed; uploading", zap.String("key", key), zap.Error(err))
			return false, nil
		}
		return false, classifyS3("head "+key, err)
	}
	return strings.EqualFold(out.Metadata[MetaSHA256], sum), nil
}

// putObject uploads a whole file in one request with its SHA-256 as the checksum, and
// returns the version ID S3 gave it (empty in an unversioned bucket).
func (u *Uploader) putObject(ctx context.Context, f *os.File, size int64, key, contentType string, meta map[string]string, d fileDigest, onSent func(int64)) (string, error) {
	if err := u.acquire(ctx); err != nil {
		return "", err
	}
	defer u.release()
	out, err := u.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &u.bucket,
		Key:            &key,
		Body:           io.NewSectionReader(f, 0, size),
		ContentLength:  aws.Int64(size),
		ContentType:    &contentType,
		Metadata:       meta,
		ChecksumSHA256: aws.String(base64Sum(d.sum)),
	})
	if err != nil {
		return "", sentChanged(f, classifyS3("put "+key, err))
	}
	onSent(size)
	return aws.ToString(out.VersionId), nil
}

// sentChanged turns S3's BadDigest for bytes read from f into ReasonFileChanged: S3 computed
// another SHA-256 than the one sent, so the bytes read for the upload are not the ones hashed.
// S3 stored nothing.
func sentChanged(f *os.File, err error) error {
	if failure.ReasonOf(err) != "BadDigest" {
		return err
	}
	return failure.New(failure.Permanent, ReasonFileChanged,
		fmt.Errorf("%s changed after it was hashed (S3 refused its SHA-256): %w", f.Name(), err))
}

// fileDigest is the SHA-256 of a file and, for a multipart upload, of each of its parts.
type fileDigest struct {
	sum   [sha256.Size]byte
	parts [][sha256.Size]byte
}

func (d fileDigest) hex() string { return hex.EncodeToString(d.sum[:]) }

func base64Sum(sum [sha256.Size]byte) string { return base64.StdEncoding.EncodeToString(sum[:]) }

// hashFile returns the hex SHA-256 of the first size bytes of f.
func hashFile(ctx context.Context, f *os.File, size int64) (string, error) {
	d, err := digestFile(ctx, f, size, 0)
	return d.hex(), err
}

// digestFile hashes the first size bytes of f in one pass, and with partSize > 0 also each
// partSize-byte part (the last one shorter). It reads with ReadAt so that f's offset does not
// matter, and stops early when ctx ends.
func digestFile(ctx context.Context, f *os.File, size, partSize int64) (fileDigest, error) {
	var d fileDigest
	whole := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); ; {
		n := size - off
		if partSize > 0 {
			n = min(partSize, n)
		}
		part := sha256.New()
		r := io.NewSectionReader(f, off, n)
		for {
			if err := ctx.Err(); err != nil {
				return fileDigest{}, err
			}
			m, err := r.Read(buf)
			whole.Write(buf[:m])
			part.Write(buf[:m])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fileDigest{}, classifyFileErr(err)
			}
		}
		if partSize > 0 && n > 0 {
			d.parts = append(d.parts, [sha256.Size]byte(part.Sum(nil)))
		}
		off += n
		if off >= size {
			break
		}
	}
	d.sum = [sha256.Size]byte(whole.Sum(nil))
	return d, nil
}

// EncodeName percent-encodes a file name for MetaOriginalName: every byte outside RFC 3986's
// unreserved set (A-Z a-z 0-9 - . _ ~) becomes %XX, so any name, including names that are not
// UTF-8, fits an HTTP header and decodes back exactly with DecodeName.
func EncodeName(name string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// DecodeName reverses EncodeName.
func DecodeName(s string) (string, error) { return url.PathUnescape(s) }
