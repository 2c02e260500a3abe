package s3server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"imgpipe/standins/s3server"
)

// s3Only is a stand-in without notifications and a bucket on it, with the real SDK client.
type s3Only struct {
	run    *s3server.Running
	s3     *s3.Client
	bucket string
}

func newS3Only(t *testing.T, versioning s3types.BucketVersioningStatus) *s3Only {
	t.Helper()
	ctx := testCtx(t)
	run, err := s3server.Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = run.Close(ctx)
	})
	e := &s3Only{run: run, s3: newS3(run.URL()), bucket: unique("ver")}
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &e.bucket}); err != nil {
		t.Fatal(err)
	}
	if versioning != "" {
		e.setVersioning(t, versioning)
	}
	return e
}

func (e *s3Only) setVersioning(t *testing.T, status s3types.BucketVersioningStatus) {
	t.Helper()
	setVersioning(t, e.s3, e.bucket, status)
}

// setVersioning sets bucket's versioning status.
func setVersioning(t *testing.T, c *s3.Client, bucket string, status s3types.BucketVersioningStatus) {
	t.Helper()
	if _, err := c.PutBucketVersioning(testCtx(t), &s3.PutBucketVersioningInput{Bucket: &bucket,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: status}}); err != nil {
		t.Fatal(err)
	}
}

func (e *s3Only) put(t *testing.T, key, body string) string {
	t.Helper()
	out, err := e.s3.PutObject(testCtx(t), &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return aws.ToString(out.VersionId)
}

// get reads key (at version when not empty) and returns its body and version ID.
func (e *s3Only) get(t *testing.T, key, version string) (string, string, error) {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: &e.bucket, Key: &key}
	if version != "" {
		in.VersionId = &version
	}
	out, err := e.s3.GetObject(testCtx(t), in)
	if err != nil {
		return "", "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), aws.ToString(out.VersionId), nil
}

func (e *s3Only) mustGet(t *testing.T, key, version string) (string, string) {
	t.Helper()
	body, v, err := e.get(t, key, version)
	if err != nil {
		t.Fatalf("get %s (version %q): %v", key, version, err)
	}
	return body, v
}

func (e *s3Only) deleteVersion(t *testing.T, key, version string) *s3.DeleteObjectOutput {
	t.Helper()
	in := &s3.DeleteObjectInput{Bucket: &e.bucket, Key: &key}
	if version != "" {
		in.VersionId = &version
	}
	out, err := e.s3.DeleteObject(testCtx(t), in)
	if err != nil {
		t.Fatalf("delete %s (version %q): %v", key, version, err)
	}
	return out
}

// versions lists key's versions newest first as "id" or "id(marker)", with "*" on the latest,
// through the SDK's paginator with one entry per page.
func (e *s3Only) versions(t *testing.T, key string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectVersionsPaginator(e.s3, &s3.ListObjectVersionsInput{Bucket: &e.bucket, Prefix: &key, MaxKeys: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(testCtx(t))
		if err != nil {
			t.Fatalf("list versions: %v", err)
		}
		if len(page.Versions)+len(page.DeleteMarkers) > 1 {
			t.Fatalf("page of MaxKeys 1 holds %d entries", len(page.Versions)+len(page.DeleteMarkers))
		}
		for _, v := range page.Versions {
			out = append(out, versionLabel(aws.ToString(v.VersionId), "", aws.ToBool(v.IsLatest)))
		}
		for _, m := range page.DeleteMarkers {
			out = append(out, versionLabel(aws.ToString(m.VersionId), "(marker)", aws.ToBool(m.IsLatest)))
		}
	}
	return out
}

func versionLabel(id, kind string, latest bool) string {
	if latest {
		return id + kind + "*"
	}
	return id + kind
}

// responseHeader returns a header of the HTTP answer behind an SDK error.
func responseHeader(err error, name string) string {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get(name)
	}
	return ""
}

// errorCode is the S3 error code of an SDK error ("" when there is none).
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// Deleting the current version by its ID makes the previous version current again: reads of
// the key return it (gofakes3's own backend lost the key and its handler crashed, which the SDK
// saw as a connection closed with EOF).
func TestDeleteCurrentVersionRestoresPrevious(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, s3types.BucketVersioningStatusEnabled)
	v1 := e.put(t, "upload/a.jpg", "one")
	v2 := e.put(t, "upload/a.jpg", "two")
	if v1 == "" || v2 == "" || v1 == v2 {
		t.Fatalf("version IDs %q and %q: want two distinct IDs", v1, v2)
	}
	if got := e.versions(t, "upload/a.jpg"); !slices.Equal(got, []string{v2 + "*", v1}) {
		t.Fatalf("versions %q", got)
	}

	out := e.deleteVersion(t, "upload/a.jpg", v2)
	if aws.ToString(out.VersionId) != v2 || aws.ToBool(out.DeleteMarker) {
		t.Errorf("delete answered version %q, delete marker %v", aws.ToString(out.VersionId), aws.ToBool(out.DeleteMarker))
	}
	body, v := e.mustGet(t, "upload/a.jpg", "")
	if body != "one" || v != v1 {
		t.Fatalf("after deleting the current version: got %q version %q, want %q version %q", body, v, "one", v1)
	}
	head, err := e.s3.HeadObject(testCtx(t), &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String("upload/a.jpg")})
	if err != nil || aws.ToString(head.VersionId) != v1 || aws.ToInt64(head.ContentLength) != 3 {
		t.Fatalf("head after deleting the current version: %v, %+v", err, head)
	}
	if got := e.versions(t, "upload/a.jpg"); !slices.Equal(got, []string{v1 + "*"}) {
		t.Errorf("versions %q", got)
	}
	if _, _, err := e.get(t, "upload/a.jpg", v2); errorCode(err) != "NoSuchVersion" {
		t.Errorf("get of the deleted version: %v, want NoSuchVersion", err)
	}

	e.deleteVersion(t, "upload/a.jpg", v1)
	var nsk *s3types.NoSuchKey
	if _, _, err := e.get(t, "upload/a.jpg", ""); !errors.As(err, &nsk) {
		t.Fatalf("get after deleting every version: %v, want NoSuchKey", err)
	}
	if got := e.versions(t, "upload/a.jpg"); len(got) != 0 {
		t.Errorf("versions left %q", got)
	}
	// A bucket whose keys are all gone can be deleted.
	if _, err := e.s3.DeleteBucket(testCtx(t), &s3.DeleteBucketInput{Bucket: &e.bucket}); err != nil {
		t.Errorf("delete the emptied bucket: %v", err)
	}
}

// A delete marker hides the object as S3 does (404 with x-amz-delete-marker on the key, 405 on
// the marker's own version), and deleting the marker brings the object back.
func TestDeleteMarkers(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, s3types.BucketVersioningStatusEnabled)
	v1 := e.put(t, "k", "one")
	del := e.deleteVersion(t, "k", "")
	marker := aws.ToString(del.VersionId)
	if !aws.ToBool(del.DeleteMarker) || marker == "" || marker == v1 {
		t.Fatalf("plain delete on a versioned bucket: marker %v version %q", aws.ToBool(del.DeleteMarker), marker)
	}

	_, _, err := e.get(t, "k", "")
	var nsk *s3types.NoSuchKey
	if !errors.As(err, &nsk) || responseHeader(err, "x-amz-delete-marker") != "true" || responseHeader(err, "x-amz-version-id") != marker {
		t.Errorf("get of a deleted key: %v (delete marker header %q, version %q), want NoSuchKey with marker %q",
			err, responseHeader(err, "x-amz-delete-marker"), responseHeader(err, "x-amz-version-id"), marker)
	}
	_, err = e.s3.HeadObject(testCtx(t), &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String("k")})
	if httpStatus(err) != http.StatusNotFound || responseHeader(err, "x-amz-delete-marker") != "true" {
		t.Errorf("head of a deleted key: %v (status %d)", err, httpStatus(err))
	}
	_, _, err = e.get(t, "k", marker)
	if httpStatus(err) != http.StatusMethodNotAllowed || responseHeader(err, "x-amz-delete-marker") != "true" {
		t.Errorf("get of the marker's version: %v (status %d), want 405 with x-amz-delete-marker", err, httpStatus(err))
	}
	_, err = e.s3.HeadObject(testCtx(t), &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String("k"), VersionId: &marker})
	if httpStatus(err) != http.StatusMethodNotAllowed {
		t.Errorf("head of the marker's version: %v (status %d), want 405", err, httpStatus(err))
	}
	if body, _ := e.mustGet(t, "k", v1); body != "one" {
		t.Errorf("get of the hidden version: %q", body)
	}
	list, err := e.s3.ListObjectsV2(testCtx(t), &s3.ListObjectsV2Input{Bucket: &e.bucket})
	if err != nil || len(list.Contents) != 0 {
		t.Errorf("list of a bucket whose only key is deleted: %v, %d objects", err, len(list.Contents))
	}
	if got := e.versions(t, "k"); !slices.Equal(got, []string{marker + "(marker)*", v1}) {
		t.Errorf("versions %q", got)
	}

	out := e.deleteVersion(t, "k", marker)
	if !aws.ToBool(out.DeleteMarker) || aws.ToString(out.VersionId) != marker {
		t.Errorf("delete of the marker answered marker %v version %q", aws.ToBool(out.DeleteMarker), aws.ToString(out.VersionId))
	}
	if body, v := e.mustGet(t, "k", ""); body != "one" || v != v1 {
		t.Errorf("after deleting the marker: %q version %q", body, v)
	}
}

// HEAD with a version ID describes that version (gofakes3 answered with the current one).
func TestHeadObjectVersion(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, s3types.BucketVersioningStatusEnabled)
	v1 := e.put(t, "k", "first version")
	e.put(t, "k", "2nd")
	head, err := e.s3.HeadObject(testCtx(t), &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String("k"), VersionId: &v1})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.VersionId) != v1 || aws.ToInt64(head.ContentLength) != int64(len("first version")) ||
		strings.Trim(aws.ToString(head.ETag), `"`) != md5hex("first version") {
		t.Errorf("head of version %s: version %q, length %d, etag %s", v1, aws.ToString(head.VersionId),
			aws.ToInt64(head.ContentLength), aws.ToString(head.ETag))
	}
	_, err = e.s3.HeadObject(testCtx(t), &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String("k"), VersionId: aws.String("nosuchversion")})
	if httpStatus(err) != http.StatusNotFound {
		t.Errorf("head of a missing version: %v", err)
	}
}

// A write does not inherit the metadata of the version it replaces (gofakes3 merged it).
func TestPutReplacesMetadata(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, "")
	ctx := testCtx(t)
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("k"), Body: strings.NewReader("a"),
		Metadata: map[string]string{"sha256": "aaa"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("k"), Body: strings.NewReader("b")}); err != nil {
		t.Fatal(err)
	}
	head, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := head.Metadata["sha256"]; ok {
		t.Errorf("second write kept the first one's metadata sha256=%q", v)
	}
}

// Suspended versioning writes and deletes the null version and keeps the others; the null
// version is addressed as "null".
func TestSuspendedVersioning(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, s3types.BucketVersioningStatusEnabled)
	v1 := e.put(t, "k", "kept")
	e.setVersioning(t, s3types.BucketVersioningStatusSuspended)
	if v := e.put(t, "k", "null one"); v != "null" {
		t.Errorf("put on a suspended bucket answered version %q, want null", v)
	}
	e.put(t, "k", "null two")
	if got := e.versions(t, "k"); !slices.Equal(got, []string{"null*", v1}) {
		t.Fatalf("versions %q: a suspended write replaces the null version", got)
	}
	if body, v := e.mustGet(t, "k", "null"); body != "null two" || v != "null" {
		t.Errorf("get of version null: %q version %q", body, v)
	}

	del := e.deleteVersion(t, "k", "")
	if !aws.ToBool(del.DeleteMarker) || aws.ToString(del.VersionId) != "null" {
		t.Errorf("plain delete on a suspended bucket: marker %v version %q, want a null delete marker",
			aws.ToBool(del.DeleteMarker), aws.ToString(del.VersionId))
	}
	if got := e.versions(t, "k"); !slices.Equal(got, []string{"null(marker)*", v1}) {
		t.Fatalf("versions %q: the null delete marker replaces the null version", got)
	}
	// DELETE ?versionId=null removes the null version (here the marker); gofakes3 took it for a
	// plain DELETE.
	e.deleteVersion(t, "k", "null")
	if body, v := e.mustGet(t, "k", ""); body != "kept" || v != v1 {
		t.Errorf("after deleting the null marker: %q version %q", body, v)
	}
}

// In a bucket that was never versioned, objects have no reported version, and the null
// version is the object itself.
func TestUnversionedNullVersion(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, "")
	if v := e.put(t, "k", "x"); v != "" {
		t.Errorf("put on an unversioned bucket answered version %q", v)
	}
	if out := e.deleteVersion(t, "k", ""); aws.ToBool(out.DeleteMarker) {
		t.Error("plain delete on an unversioned bucket made a delete marker")
	}
	var nsk *s3types.NoSuchKey
	if _, _, err := e.get(t, "k", ""); !errors.As(err, &nsk) {
		t.Errorf("get after delete: %v", err)
	}
	e.put(t, "k", "y")
	e.deleteVersion(t, "k", "null")
	if _, _, err := e.get(t, "k", ""); !errors.As(err, &nsk) {
		t.Errorf("get after deleting the null version: %v", err)
	}
}

// Events of a suspended bucket name the null version "null" (an unversioned bucket's name no
// version at all).
func TestSuspendedBucketEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	ctx := testCtx(t)
	setVersioning(t, e.s3, e.bucket, s3types.BucketVersioningStatusEnabled)
	setVersioning(t, e.s3, e.bucket, s3types.BucketVersioningStatusSuspended)
	e.configureAll(t)
	e.put(t, "s/key", "x")
	if r := one(t, records(t, e.drain(t))); r.EventName != "ObjectCreated:Put" || r.VersionID != "null" {
		t.Errorf("put on a suspended bucket: %s versionId %q, want null", r.EventName, r.VersionID)
	}
	if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("s/key")}); err != nil {
		t.Fatal(err)
	}
	if r := one(t, records(t, e.drain(t))); r.EventName != "ObjectRemoved:DeleteMarkerCreated" || r.VersionID != "null" {
		t.Errorf("delete on a suspended bucket: %s versionId %q, want a null delete marker", r.EventName, r.VersionID)
	}
	if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("s/key"), VersionId: aws.String("null")}); err != nil {
		t.Fatal(err)
	}
	if r := one(t, records(t, e.drain(t))); r.EventName != "ObjectRemoved:Delete" || r.VersionID != "null" {
		t.Errorf("delete of the null version: %s versionId %q", r.EventName, r.VersionID)
	}
}

// Listings are in key order across pages whatever the order of the writes, leave out keys
// whose current version is a delete marker, and group by delimiter.
func TestListingOrderAndPages(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, s3types.BucketVersioningStatusEnabled)
	ctx := testCtx(t)
	var want []string
	for _, i := range []int{17, 3, 22, 9, 0, 14, 5, 11, 20, 1, 8, 19, 6, 13, 2} {
		key := fmt.Sprintf("p/k%02d", i)
		e.put(t, key, "x")
		if i%4 == 0 {
			e.deleteVersion(t, key, "") // hidden behind a delete marker
			continue
		}
		want = append(want, key)
	}
	e.put(t, "q/a/1", "x")
	e.put(t, "q/b/2", "x")
	slices.Sort(want)
	var got []string
	p := s3.NewListObjectsV2Paginator(e.s3, &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: aws.String("p/"), MaxKeys: aws.Int32(4)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			got = append(got, aws.ToString(o.Key))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
	out, err := e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: aws.String("q/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, cp := range out.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(cp.Prefix))
	}
	if !slices.Equal(prefixes, []string{"q/a/", "q/b/"}) || len(out.Contents) != 0 {
		t.Errorf("common prefixes %q, %d objects", prefixes, len(out.Contents))
	}
}
