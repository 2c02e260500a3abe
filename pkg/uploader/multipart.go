package uploader

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"
)

// multipartState is one multipart upload in progress; a failed attempt keeps it so that the
// next attempt sends only the parts S3 has not acknowledged.
type multipartState struct {
	uploadID string
	partSize int64
	parts    []types.CompletedPart // ETag nil: not uploaded yet
}

// partSizeFor returns the part size for a file of size bytes: the configured size, doubled
// until the file fits in MaxParts parts.
func partSizeFor(size, partSize int64) int64 {
	for (size+partSize-1)/partSize > MaxParts {
		partSize *= 2
	}
	return partSize
}

// multipart uploads f as a multipart upload with concurrent parts and returns the number of
// parts and the version ID S3 gave the object. Each part carries its SHA-256 from d, and the
// complete request their composite checksum, so S3 refuses a part that changed after hashing
// and never assembles the object. On error the upload is left open in st for a later attempt
// (or abandon's abort); when S3 no longer knows the upload ID, st is reset so the next attempt
// starts over.
func (u *Uploader) multipart(ctx context.Context, f *os.File, size int64, key, contentType string, meta map[string]string, d fileDigest, st *multipartState, onSent func(int64)) (int, string, error) {
	if st.uploadID == "" {
		out, err := u.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:            &u.bucket,
			Key:               &key,
			ContentType:       &contentType,
			Metadata:          meta,
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			ChecksumType:      types.ChecksumTypeComposite,
		})
		if err != nil {
			return 0, "", classifyS3("create multipart upload "+key, err)
		}
		st.uploadID = aws.ToString(out.UploadId)
		st.partSize = partSizeFor(size, u.o.PartSize)
		st.parts = make([]types.CompletedPart, (size+st.partSize-1)/st.partSize)
	}
	if len(d.parts) != len(st.parts) {
		return 0, "", fmt.Errorf("multipart upload of %s: %d part digests for %d parts", key, len(d.parts), len(st.parts))
	}

	partCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for i := range st.parts {
		if st.parts[i].ETag != nil {
			continue
		}
		if err := u.acquire(partCtx); err != nil {
			break
		}
		off := int64(i) * st.partSize
		n := min(st.partSize, size-off)
		num := int32(i + 1)
		sum := aws.String(base64Sum(d.parts[i]))
		wg.Go(func() {
			defer u.release()
			out, err := u.client.UploadPart(partCtx, &s3.UploadPartInput{
				Bucket:         &u.bucket,
				Key:            &key,
				UploadId:       &st.uploadID,
				PartNumber:     &num,
				Body:           io.NewSectionReader(f, off, n),
				ContentLength:  &n,
				ChecksumSHA256: sum,
			})
			if err != nil {
				cancel(sentChanged(f, classifyS3(fmt.Sprintf("upload part %d of %s", num, key), err)))
				return
			}
			st.parts[i] = types.CompletedPart{PartNumber: &num, ETag: out.ETag, ChecksumSHA256: sum}
			onSent(n)
		})
	}
	wg.Wait()
	if err := context.Cause(partCtx); err != nil {
		u.resetIfGone(err, st)
		return 0, "", err
	}

	out, err := u.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &u.bucket,
		Key:             &key,
		UploadId:        &st.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: st.parts},
		ChecksumSHA256:  aws.String(compositeSHA256(d.parts)),
		ChecksumType:    types.ChecksumTypeComposite,
	})
	if err != nil {
		err = classifyS3("complete multipart upload "+key, err)
		u.resetIfGone(err, st)
		return 0, "", err
	}
	return len(st.parts), aws.ToString(out.VersionId), nil
}

// compositeSHA256 is S3's COMPOSITE checksum of a multipart object: the base64 SHA-256 of the
// parts' SHA-256 digests concatenated, then "-" and the number of parts.
func compositeSHA256(parts [][sha256.Size]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p[:])
	}
	return base64Sum([sha256.Size]byte(h.Sum(nil))) + "-" + strconv.Itoa(len(parts))
}

// resetIfGone forgets an upload S3 no longer knows, so that the next attempt starts a new one.
func (u *Uploader) resetIfGone(err error, st *multipartState) {
	var nu *types.NoSuchUpload
	if errors.As(err, &nu) {
		*st = multipartState{}
	}
}

// abortMultipart aborts an upload so that its parts stop costing storage. It runs on its own
// context: it is needed most when the caller's has ended.
func (u *Uploader) abortMultipart(key, uploadID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := u.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &key, UploadId: &uploadID})
	if err != nil {
		u.log.Warn("abort multipart upload", zap.String("key", key), zap.String("uploadId", uploadID), zap.Error(err))
	}
}
