package uploader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/retry"
)

// maxRetryDelay caps the backoff between two attempts of one file.
const maxRetryDelay = 30 * time.Second

// process runs one file to its final result.
func (r *putRun) process(ctx context.Context, j job) {
	res := &r.results[j.idx]
	*res = r.processFile(ctx, j, *res)
	r.finish(res)
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

	sum, err := hashFile(ctx, f, st.Size())
	if err != nil {
		return failedResult(res, err)
	}
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

	a := &attemptState{file: f, stat: st, res: &res, meta: meta, dedupe: j.dedupe}
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
		u.log.Info("retrying file", zap.String("path", res.Path), zap.String("key", res.Key),
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
	if size > u.o.PartSize {
		if a.mp == nil {
			a.mp = &multipartState{}
		}
		a.res.Parts, err = u.multipart(ctx, a.file, size, key, a.res.ContentType, a.meta, a.mp, onSent)
		if err != nil {
			return false, err
		}
		a.mp = nil
	} else if err := u.putObject(ctx, a.file, size, key, a.res.ContentType, a.meta, onSent); err != nil {
		return false, err
	}
	return false, unchanged(a.file, a.stat)
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

// putObject uploads a whole file in one request.
func (u *Uploader) putObject(ctx context.Context, f *os.File, size int64, key, contentType string, meta map[string]string, onSent func(int64)) error {
	if err := u.acquire(ctx); err != nil {
		return err
	}
	defer u.release()
	_, err := u.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &u.bucket,
		Key:           &key,
		Body:          io.NewSectionReader(f, 0, size),
		ContentLength: aws.Int64(size),
		ContentType:   &contentType,
		Metadata:      meta,
	})
	if err != nil {
		return classifyS3("put "+key, err)
	}
	onSent(size)
	return nil
}

// hashFile returns the hex SHA-256 of the first size bytes of f, reading with ReadAt so that
// f's offset does not matter. It stops early when ctx ends.
func hashFile(ctx context.Context, f *os.File, size int64) (string, error) {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	r := io.NewSectionReader(f, 0, size)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := r.Read(buf)
		h.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", classifyFileErr(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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
