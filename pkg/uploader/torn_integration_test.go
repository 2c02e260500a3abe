package uploader_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/uploader"
)

// rewriteInPlace changes bytes of the file at p without changing its size or modification
// time, as a writer that preserves times (or one within the file system's time granularity)
// would: only the content tells.
func rewriteInPlace(t testing.TB, p string, at int64) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := at; i < at+16 && i < int64(len(b)); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func onlyResult(t testing.TB, s *uploader.Summary) uploader.FileResult {
	t.Helper()
	if len(s.Files) != 1 {
		t.Fatalf("%d results, want 1", len(s.Files))
	}
	return s.Files[0]
}

// listVersions lists every version and delete marker under prefix as "key@version".
func listVersions(t testing.TB, ctx context.Context, c *s3.Client, bucket string) []string {
	t.Helper()
	out, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range out.Versions {
		got = append(got, aws.ToString(v.Key)+"@"+aws.ToString(v.VersionId))
	}
	for _, m := range out.DeleteMarkers {
		got = append(got, aws.ToString(m.Key)+"@"+aws.ToString(m.VersionId)+"(marker)")
	}
	return got
}

// aroundSends returns c with an API option that calls before just before an upload starts (a
// PutObject or CreateMultipartUpload call is made) and after once one was accepted (a PutObject
// or CompleteMultipartUpload call succeeded), so that a test can change the file at those
// moments. Either may be nil.
func aroundSends(c *s3.Client, before, after func()) *s3.Client {
	return s3.New(c.Options(), func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("testAroundSends",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					starts, ends := false, false
					switch in.Parameters.(type) {
					case *s3.PutObjectInput:
						starts, ends = true, true
					case *s3.CreateMultipartUploadInput:
						starts = true
					case *s3.CompleteMultipartUploadInput:
						ends = true
					}
					if starts && before != nil {
						before()
					}
					out, md, err := next.HandleInitialize(ctx, in)
					if ends && err == nil && after != nil {
						after()
					}
					return out, md, err
				}), middleware.After)
		})
	})
}

// A file whose content changes between hashing and sending, with its size and time kept, is
// refused by S3 (the upload carries the SHA-256 computed first): nothing is stored under a key
// that names content the object does not have. Single PUT and multipart.
func TestTornFileNeverStored(t *testing.T) {
	st := stacktest.Get(t)
	for _, tt := range []struct {
		name string
		size int
		at   int64 // where the change lands
	}{
		{"put", 0, 200},
		{"multipart", 6 << 20, 5<<20 + 1000}, // in the second of two 5 MiB parts
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := stacktest.Bootstrap(t, st, devstack.Resources{})
			ctx := testCtx(t)
			s3c := st.NewS3Client()
			dir := t.TempDir()
			body := mustImage(t, 901, 120, 90, "png")
			if tt.size > 0 {
				body = append(body, bytes.Repeat([]byte{7}, tt.size-len(body))...)
			}
			writeTree(t, dir, map[string][]byte{"a.png": body})
			p := filepath.Join(dir, "a.png")
			sends := aroundSends(s3c, func() { rewriteInPlace(t, p, tt.at) }, nil)
			up, err := uploader.New(sends, b.Bucket, b.Prefix, &uploader.Options{PartSize: 5 << 20, Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := up.Put(ctx, []string{dir})
			if err != nil {
				t.Fatal(err)
			}
			r := onlyResult(t, sum)
			if r.Status != uploader.StatusFailed || r.Reason != uploader.ReasonFileChanged {
				t.Errorf("result %s %s (%s), want failed %s", r.Status, r.Reason, r.Detail, uploader.ReasonFileChanged)
			}
			if keys := listKeys(t, ctx, s3c, b.Bucket); len(keys) != 0 {
				t.Errorf("bucket holds %q: the torn object was stored", keys)
			}
			mps, err := s3c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &b.Bucket})
			if err != nil {
				t.Fatal(err)
			}
			if len(mps.Uploads) != 0 {
				t.Errorf("%d multipart uploads left open", len(mps.Uploads))
			}
		})
	}
}

// A file that changes after its upload was accepted but before the uploader's last check is
// reported changed, and the object it wrote is deleted (in a versioned bucket, exactly the
// version it wrote): watch mode sends the file again once it settles, and the first object
// must not stay behind as a second document.
func TestChangedAfterUploadRemoved(t *testing.T) {
	st := stacktest.Get(t)
	for _, versioned := range []bool{false, true} {
		b := stacktest.Bootstrap(t, st, devstack.Resources{})
		ctx := testCtx(t)
		s3c := st.NewS3Client()
		if versioned {
			if _, err := s3c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &b.Bucket,
				VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
				t.Fatal(err)
			}
		}
		dir := t.TempDir()
		writeTree(t, dir, map[string][]byte{"b.png": mustImage(t, 902, 100, 80, "png")})
		sends := aroundSends(s3c, nil, func() {
			f, err := os.OpenFile(filepath.Join(dir, "b.png"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.Write([]byte("more"))
			f.Close()
		})
		up, err := uploader.New(sends, b.Bucket, b.Prefix, &uploader.Options{Keys: uploader.KeysPath, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := up.Put(ctx, []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		r := onlyResult(t, sum)
		if r.Status != uploader.StatusFailed || r.Reason != uploader.ReasonFileChanged {
			t.Errorf("versioned %v: result %s %s (%s), want failed %s", versioned, r.Status, r.Reason, r.Detail, uploader.ReasonFileChanged)
		}
		if got := listVersions(t, ctx, s3c, b.Bucket); len(got) != 0 {
			t.Errorf("versioned %v: bucket holds %q after the changed file's upload; want nothing", versioned, got)
		}
	}
}

// Watch mode: a file that changes while it is sent ends as one object holding its final
// content, whether the change shows in its size and time or only in its bytes (before: the torn
// object stayed under the first hash's key, and the file was sent again under a second key; or
// the torn object was the only one, under a key naming content it did not have).
func TestWatchChangingFileOneObject(t *testing.T) {
	st := stacktest.Get(t)
	for _, tt := range []struct {
		name   string
		change func(p string)
	}{
		{"rewritten", func(p string) {
			if err := os.WriteFile(p, mustImage(t, 904, 130, 95, "png"), 0o644); err != nil {
				t.Error(err)
			}
		}},
		{"in place, same size and time", func(p string) { rewriteInPlace(t, p, 100) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := stacktest.Bootstrap(t, st, devstack.Resources{})
			ctx := testCtx(t)
			s3c := st.NewS3Client()
			dir := t.TempDir()
			first := mustImage(t, 903, 90, 70, "png")
			writeTree(t, dir, map[string][]byte{"drop.png": first})
			var changed atomic.Bool
			sends := aroundSends(s3c, func() {
				if changed.CompareAndSwap(false, true) {
					tt.change(filepath.Join(dir, "drop.png")) // still being written while it is sent
				}
			}, nil)
			up, err := uploader.New(sends, b.Bucket, b.Prefix, &uploader.Options{Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			w, err := uploader.NewWatcher(up, dir, &uploader.WatchOptions{Settle: 2 * time.Second, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			for range 8 {
				if _, err := w.Scan(ctx); err != nil {
					t.Fatal(err)
				}
				clock.Add(3 * time.Second)
			}
			final, err := os.ReadFile(filepath.Join(dir, "done", "drop.png"))
			if err != nil {
				t.Fatalf("the file was not moved to done/: %v (folder: %v)", err, filesUnder(t, dir))
			}
			if !changed.Load() || sha(final) == sha(first) {
				t.Fatal("the file did not change while it was sent")
			}
			want := uploader.KeyFor(uploader.KeysHash, b.Prefix, "drop.png", sha(final))
			if got := listKeys(t, ctx, s3c, b.Bucket); !slices.Equal(got, []string{want}) {
				t.Fatalf("bucket holds %q, want only %q", got, want)
			}
			obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.Bucket, Key: &want})
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Body.Close()
			var got bytes.Buffer
			if _, err := got.ReadFrom(obj.Body); err != nil || sha(got.Bytes()) != sha(final) {
				t.Errorf("object content %d bytes (sha %s), want the final file (%s): %v", got.Len(), sha(got.Bytes()), sha(final), err)
			}
		})
	}
}
