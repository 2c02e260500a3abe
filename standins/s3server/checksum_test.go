package s3server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func sha256b64(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func crc32b64(b []byte) string {
	v := crc32.ChecksumIEEE(b)
	return base64.StdEncoding.EncodeToString([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (e *s3Only) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := e.s3.HeadObject(testCtx(t), &s3.HeadObjectInput{Bucket: &e.bucket, Key: &key})
	switch {
	case err == nil:
		return true
	case httpStatus(err) == http.StatusNotFound:
		return false
	}
	t.Fatalf("head %s: %v", key, err)
	return false
}

// A PutObject whose x-amz-checksum-* does not match its body is refused with S3's BadDigest
// and stores nothing; a matching one is stored and answered with the checksum.
func TestPutObjectChecksums(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, "")
	ctx := testCtx(t)
	body := []byte("the bytes that were hashed")
	other := []byte("the bytes that were sent!!")

	out, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("good"), Body: bytes.NewReader(body),
		ChecksumSHA256: aws.String(sha256b64(body))})
	if err != nil {
		t.Fatalf("put with the right SHA-256: %v", err)
	}
	if aws.ToString(out.ChecksumSHA256) != sha256b64(body) {
		t.Errorf("answer's checksum %q, want %q", aws.ToString(out.ChecksumSHA256), sha256b64(body))
	}

	_, err = e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("torn"), Body: bytes.NewReader(other),
		ChecksumSHA256: aws.String(sha256b64(body))})
	if errorCode(err) != "BadDigest" || httpStatus(err) != http.StatusBadRequest ||
		!strings.Contains(err.Error(), "The sha256 you specified did not match the calculated checksum") {
		t.Fatalf("put with a SHA-256 of other bytes: %v, want 400 BadDigest", err)
	}
	if e.exists(t, "torn") {
		t.Error("the refused object was stored")
	}
	_, err = e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("torn"), Body: bytes.NewReader(other),
		ChecksumCRC32: aws.String(crc32b64(body))})
	if errorCode(err) != "BadDigest" {
		t.Errorf("put with a CRC32 of other bytes: %v, want BadDigest", err)
	}
	// Overwriting with a refused body leaves the stored object as it was.
	_, err = e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("good"), Body: bytes.NewReader(other),
		ChecksumSHA256: aws.String(sha256b64(body))})
	if errorCode(err) != "BadDigest" {
		t.Fatalf("overwrite with a bad digest: %v", err)
	}
	if got, _ := e.mustGet(t, "good", ""); got != string(body) {
		t.Errorf("object after a refused overwrite: %q", got)
	}
	_, err = e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("bad64"), Body: bytes.NewReader(body),
		ChecksumSHA256: aws.String("not base64!")})
	if errorCode(err) != "InvalidRequest" {
		t.Errorf("put with a malformed checksum: %v, want InvalidRequest", err)
	}
}

// The checksums the SDK computes itself, for every algorithm it offers that the stand-in
// verifies, are accepted: the stand-in computes them the same way.
func TestSDKComputedChecksumsAccepted(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, "")
	for _, algo := range []s3types.ChecksumAlgorithm{s3types.ChecksumAlgorithmCrc32, s3types.ChecksumAlgorithmCrc32c,
		s3types.ChecksumAlgorithmCrc64nvme, s3types.ChecksumAlgorithmSha1, s3types.ChecksumAlgorithmSha256} {
		out, err := e.s3.PutObject(testCtx(t), &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("k-" + string(algo)),
			Body: strings.NewReader("123456789 and more"), ChecksumAlgorithm: algo})
		if err != nil {
			t.Errorf("%s computed by the SDK: %v", algo, err)
			continue
		}
		// The stand-in answers with the checksum it verified: proof that one was sent.
		echoed := map[s3types.ChecksumAlgorithm]*string{s3types.ChecksumAlgorithmCrc32: out.ChecksumCRC32,
			s3types.ChecksumAlgorithmCrc32c: out.ChecksumCRC32C, s3types.ChecksumAlgorithmCrc64nvme: out.ChecksumCRC64NVME,
			s3types.ChecksumAlgorithmSha1: out.ChecksumSHA1, s3types.ChecksumAlgorithmSha256: out.ChecksumSHA256}[algo]
		if aws.ToString(echoed) == "" {
			t.Errorf("%s: the SDK sent no checksum header, nothing was verified", algo)
		}
	}
}

// Raw requests for what the SDK never sends: two checksum headers, an algorithm the stand-in
// cannot compute, and a trailing checksum.
func TestChecksumRequestsRefused(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, "")
	for _, tt := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"two checksums", map[string]string{"x-amz-checksum-crc32": crc32b64([]byte("x")), "x-amz-checksum-sha256": sha256b64([]byte("x"))}, http.StatusBadRequest},
		{"xxhash", map[string]string{"x-amz-checksum-xxhash64": "AAAAAAAAAAA="}, http.StatusNotImplemented},
		{"trailer", map[string]string{"x-amz-trailer": "x-amz-checksum-crc32"}, http.StatusNotImplemented},
	} {
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPut, e.run.URL()+"/"+e.bucket+"/raw", strings.NewReader("x"))
		for k, v := range tt.headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
	}
	if e.exists(t, "raw") {
		t.Error("a refused request stored the object")
	}
}

// mpUpload is a multipart upload of parts with SHA-256 part checksums (COMPOSITE).
type mpUpload struct {
	e     *s3Only
	key   string
	id    string
	parts []s3types.CompletedPart
	sums  [][]byte
}

func (e *s3Only) createSHA256Upload(t *testing.T, key string) *mpUpload {
	t.Helper()
	out, err := e.s3.CreateMultipartUpload(testCtx(t), &s3.CreateMultipartUploadInput{Bucket: &e.bucket, Key: &key,
		ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256, ChecksumType: s3types.ChecksumTypeComposite})
	if err != nil {
		t.Fatal(err)
	}
	return &mpUpload{e: e, key: key, id: aws.ToString(out.UploadId)}
}

// upload sends part n with body and the SHA-256 of claimed.
func (m *mpUpload) upload(t *testing.T, n int32, body, claimed []byte) error {
	t.Helper()
	out, err := m.e.s3.UploadPart(testCtx(t), &s3.UploadPartInput{Bucket: &m.e.bucket, Key: &m.key, UploadId: &m.id,
		PartNumber: aws.Int32(n), Body: bytes.NewReader(body), ChecksumSHA256: aws.String(sha256b64(claimed))})
	if err != nil {
		return err
	}
	if aws.ToString(out.ChecksumSHA256) != sha256b64(body) {
		t.Errorf("part %d answered checksum %q", n, aws.ToString(out.ChecksumSHA256))
	}
	m.parts = append(m.parts, s3types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256})
	sum := sha256.Sum256(body)
	m.sums = append(m.sums, sum[:])
	return nil
}

// composite is the checksum of the parts' checksums, as S3 computes it for COMPOSITE.
func (m *mpUpload) composite() string {
	h := sha256.New()
	for _, s := range m.sums {
		h.Write(s)
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(m.sums))
}

func (m *mpUpload) complete(t *testing.T, parts []s3types.CompletedPart, final string) error {
	t.Helper()
	in := &s3.CompleteMultipartUploadInput{Bucket: &m.e.bucket, Key: &m.key, UploadId: &m.id,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}, ChecksumType: s3types.ChecksumTypeComposite}
	if final != "" {
		in.ChecksumSHA256 = &final
	}
	_, err := m.e.s3.CompleteMultipartUpload(testCtx(t), in)
	return err
}

// Multipart uploads with SHA-256 part checksums: a torn part is refused (BadDigest); the
// complete request must list every part's checksum (InvalidRequest when missing, InvalidPart
// when it differs); a wrong composite final checksum is BadDigest; none of these creates the
// object, and the right ones do.
func TestMultipartChecksums(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, "")
	ctx := testCtx(t)
	part1 := bytes.Repeat([]byte("a"), 5<<20)
	part2 := []byte("the last part")

	m := e.createSHA256Upload(t, "mp")
	if err := m.upload(t, 1, part1, part1); err != nil {
		t.Fatal(err)
	}
	if err := m.upload(t, 2, part2, []byte("what was hashed")); errorCode(err) != "BadDigest" {
		t.Fatalf("torn part: %v, want BadDigest", err)
	}
	if err := m.upload(t, 2, part2, part2); err != nil {
		t.Fatal(err)
	}

	missing := append([]s3types.CompletedPart{}, m.parts...)
	missing[1].ChecksumSHA256 = nil
	if err := m.complete(t, missing, ""); errorCode(err) != "InvalidRequest" || !strings.Contains(err.Error(), "missing for part 2") {
		t.Errorf("complete without part 2's checksum: %v", err)
	}
	wrong := append([]s3types.CompletedPart{}, m.parts...)
	wrong[0].ChecksumSHA256 = aws.String(sha256b64([]byte("another part")))
	if err := m.complete(t, wrong, ""); errorCode(err) != "InvalidPart" {
		t.Errorf("complete with another checksum for part 1: %v, want InvalidPart", err)
	}
	if err := m.complete(t, m.parts, sha256b64(part1)+"-2"); errorCode(err) != "BadDigest" {
		t.Errorf("complete with a wrong composite checksum: %v, want BadDigest", err)
	}
	if err := m.complete(t, m.parts, "nonsense-2"); errorCode(err) != "InvalidRequest" {
		t.Errorf("complete with a malformed composite checksum: %v, want InvalidRequest", err)
	}
	if e.exists(t, "mp") {
		t.Fatal("a refused complete created the object")
	}
	if err := m.complete(t, m.parts, m.composite()); err != nil {
		t.Fatalf("complete with the right checksums: %v", err)
	}
	if got, _ := e.mustGet(t, "mp", ""); got != string(part1)+string(part2) {
		t.Errorf("assembled object is %d bytes", len(got))
	}

	_, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &e.bucket, Key: aws.String("x"),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256, ChecksumType: s3types.ChecksumTypeFullObject})
	if errorCode(err) != "InvalidRequest" {
		t.Errorf("SHA-256 with FULL_OBJECT: %v, want InvalidRequest", err)
	}
}

// Aborting an upload forgets its checksums; an upload without an algorithm is not checked.
// Listing the uploads of a bucket that never had one answers an empty list, as S3 does.
func TestMultipartWithoutChecksum(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, "")
	ctx := context.Background()
	if list, err := e.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &e.bucket}); err != nil || len(list.Uploads) != 0 {
		t.Errorf("list the uploads of a bucket that never had one: %v", err)
	}
	out, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &e.bucket, Key: aws.String("plain")})
	if err != nil {
		t.Fatal(err)
	}
	part, err := e.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: &e.bucket, Key: aws.String("plain"), UploadId: out.UploadId,
		PartNumber: aws.Int32(1), Body: strings.NewReader("only part")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &e.bucket, Key: aws.String("plain"),
		UploadId: out.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}}); err != nil {
		t.Fatalf("complete an upload created without a checksum algorithm: %v", err)
	}

	m := e.createSHA256Upload(t, "aborted")
	if err := m.upload(t, 1, []byte("p"), []byte("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &e.bucket, Key: aws.String("aborted"), UploadId: &m.id}); err != nil {
		t.Fatal(err)
	}
	if err := m.complete(t, m.parts, m.composite()); errorCode(err) != "NoSuchUpload" {
		t.Errorf("complete after abort: %v, want NoSuchUpload", err)
	}
}
