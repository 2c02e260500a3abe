package uploader_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/internal/devstack"
	"imgpipe/internal/s3standin"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/uploader"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, devstack.S3|devstack.SQS|devstack.Firestore)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustImage(t testing.TB, seed int64, w, h int, format string) []byte {
	t.Helper()
	b, err := samples.Image(seed, w, h, format)
	if err != nil {
		t.Fatalf("sample image: %v", err)
	}
	return b
}

// writeTree writes files (relative '/'-separated paths) under dir.
func writeTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func byPath(s *uploader.Summary) map[string]uploader.FileResult {
	m := map[string]uploader.FileResult{}
	for _, f := range s.Files {
		m[filepath.ToSlash(f.Path)] = f
	}
	return m
}

// drainCreatedKeys receives every message on queueURL until the queue stays empty, deletes
// them, and returns the keys of the ObjectCreated records (test events are ignored).
func drainCreatedKeys(t testing.TB, ctx context.Context, st *devstack.Stack, client *sqs.Client, queueURL, bucket string) []string {
	t.Helper()
	if err := st.S3Server.Flush(ctx); err != nil {
		t.Fatalf("flush notifications: %v", err)
	}
	var keys []string
	// Messages are received with a short visibility timeout and without SDK retries, so that
	// a receive answer lost on the way (the closed-connection pitfall) is seen, and its
	// messages, back after 3 s, are received again before the drain ends.
	var lostAt time.Time
	for empty := 0; empty < 2 || time.Since(lostAt) < 4*time.Second; {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 3},
			func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
		if err != nil && strings.Contains(err.Error(), "use of closed network connection") {
			t.Logf("a receive answer was lost (%v); its messages come back in 3 s", err)
			lostAt = time.Now()
			continue
		}
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		for _, m := range out.Messages {
			msg, err := s3event.Parse([]byte(aws.ToString(m.Body)))
			if err != nil {
				t.Fatalf("event body does not parse: %v", err)
			}
			for _, r := range msg.Records {
				if r.Bucket != bucket {
					t.Errorf("event for bucket %q, want %q", r.Bucket, bucket)
				}
				if r.Kind == s3event.Created {
					keys = append(keys, r.Key)
				}
			}
			if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &queueURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

func TestPutTreeLandsWithKeysTypesAndMetadata(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := testCtx(t)
	s3c, sqsc := st.NewS3Client(), st.NewSQSClient()
	drainCreatedKeys(t, ctx, st, sqsc, b.QueueURL, b.Bucket) // the s3:TestEvent

	jpg := mustImage(t, 1, 120, 80, "jpeg")
	files := map[string][]byte{
		"a.jpg":                 jpg,
		"b.png":                 mustImage(t, 2, 64, 64, "png"),
		"sub/c.gif":             mustImage(t, 3, 70, 60, "gif"),
		"sub/deep/d.bmp":        mustImage(t, 4, 80, 60, "bmp"),
		"with space é (1).tiff": mustImage(t, 5, 90, 60, "tiff"),
		"日本語 写真+&=.png":         mustImage(t, 6, 60, 90, "png"),
		"copy of a.jpg":         jpg,                   // same content, other name: its own key
		"dup/a.jpg":             jpg,                   // same content and name: a duplicate
		"notes.txt":             []byte("just text\n"), // not an image
		"empty.dat":             {},
		"raw/excluded.jpg":      mustImage(t, 7, 60, 60, "jpeg"),
		"UPPER.JPG":             mustImage(t, 8, 60, 60, "jpeg"),
		"misnamed-png-as.jpg":   mustImage(t, 9, 60, 60, "png"), // type comes from the bytes
	}
	dir := t.TempDir()
	writeTree(t, dir, files)

	var progress []uploader.Progress
	up, err := uploader.New(s3c, b.Bucket, b.Prefix, &uploader.Options{
		Concurrency: 3, Exclude: []string{"**/raw/**"},
		Progress: func(p uploader.Progress) { progress = append(progress, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := up.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	res := byPath(sum)
	p := func(rel string) uploader.FileResult {
		r, ok := res[filepath.ToSlash(filepath.Join(dir, rel))]
		if !ok {
			t.Fatalf("no result for %s; have %v", rel, res)
		}
		return r
	}

	// a.jpg and dup/a.jpg have one key: whichever is hashed first is uploaded, the other is a
	// duplicate.
	first, second := p("a.jpg"), p("dup/a.jpg")
	if first.Status != uploader.StatusUploaded {
		first, second = second, first
	}
	if first.Status != uploader.StatusUploaded || second.Status != uploader.StatusSkipped || second.Reason != uploader.ReasonDuplicate {
		t.Errorf("a.jpg and dup/a.jpg: %s and %s/%s, want one uploaded and one duplicate", first.Status, second.Status, second.Reason)
	}
	wantUploaded := map[string]string{ // rel -> content type
		filepath.ToSlash(strings.TrimPrefix(first.Path, dir+string(filepath.Separator))): "image/jpeg", "b.png": "image/png", "sub/c.gif": "image/gif", "sub/deep/d.bmp": "image/bmp",
		"with space é (1).tiff": "image/tiff", "日本語 写真+&=.png": "image/png", "copy of a.jpg": "image/jpeg",
		"UPPER.JPG": "image/jpeg", "misnamed-png-as.jpg": "image/png",
	}
	var wantKeys []string
	for rel, ctype := range wantUploaded {
		r := p(rel)
		content := files[rel]
		wantKey := uploader.KeyFor(uploader.KeysHash, b.Prefix, filepath.Base(rel), sha(content))
		if r.Status != uploader.StatusUploaded || r.Key != wantKey || r.SHA256 != sha(content) || r.Bytes != int64(len(content)) {
			t.Errorf("%s: got %+v, want uploaded as %s", rel, r, wantKey)
			continue
		}
		wantKeys = append(wantKeys, wantKey)
		head, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.Bucket, Key: &r.Key})
		if err != nil {
			t.Errorf("%s: head %s: %v", rel, r.Key, err)
			continue
		}
		if got := aws.ToString(head.ContentType); got != ctype {
			t.Errorf("%s: content type %q, want %q", rel, got, ctype)
		}
		if aws.ToInt64(head.ContentLength) != int64(len(content)) {
			t.Errorf("%s: length %d, want %d", rel, aws.ToInt64(head.ContentLength), len(content))
		}
		name, err := uploader.DecodeName(head.Metadata[uploader.MetaOriginalName])
		if err != nil || name != filepath.Base(rel) {
			t.Errorf("%s: original-name metadata %q decodes to %q, %v", rel, head.Metadata[uploader.MetaOriginalName], name, err)
		}
		if head.Metadata[uploader.MetaSHA256] != sha(content) {
			t.Errorf("%s: sha256 metadata %q, want %q", rel, head.Metadata[uploader.MetaSHA256], sha(content))
		}
		if head.Metadata[uploader.MetaUploader] != "imgpipe-uploader/"+uploader.Version {
			t.Errorf("%s: uploader metadata %q", rel, head.Metadata[uploader.MetaUploader])
		}
	}
	for rel, reason := range map[string]string{
		"notes.txt": uploader.ReasonNonImage, "empty.dat": uploader.ReasonNonImage,
		"raw/excluded.jpg": uploader.ReasonExcluded,
	} {
		if r := p(rel); r.Status != uploader.StatusSkipped || r.Reason != reason {
			t.Errorf("%s: got %s/%s, want skipped/%s", rel, r.Status, r.Reason, reason)
		}
	}
	if sum.Uploaded != len(wantUploaded) || sum.Skipped != 4 || sum.Failed != 0 || sum.ExitCode() != 0 {
		t.Errorf("summary %d/%d/%d exit %d, want %d/4/0 exit 0", sum.Uploaded, sum.Skipped, sum.Failed, sum.ExitCode(), len(wantUploaded))
	}
	if len(progress) == 0 || !progress[len(progress)-1].Final || progress[len(progress)-1].FilesDone != progress[len(progress)-1].FilesTotal {
		t.Errorf("last progress report %+v is not a final, complete one", progress[len(progress)-1])
	}

	// The notifications carry exactly the uploaded keys, once each.
	sort.Strings(wantKeys)
	if got := drainCreatedKeys(t, ctx, st, sqsc, b.QueueURL, b.Bucket); !slices.Equal(got, wantKeys) {
		t.Errorf("event keys:\n%q\nwant:\n%q", got, wantKeys)
	}

	// A second run finds everything already there: duplicates, no new events.
	again, err := up.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if again.Uploaded != 0 || again.SkippedBy()[uploader.ReasonDuplicate] != len(wantUploaded)+1 || again.ExitCode() != 0 {
		t.Errorf("second run: uploaded %d, skipped %v", again.Uploaded, again.SkippedBy())
	}
	if got := drainCreatedKeys(t, ctx, st, sqsc, b.QueueURL, b.Bucket); len(got) != 0 {
		t.Errorf("second run sent events for %q", got)
	}

	// --force uploads again.
	forced, err := uploader.New(s3c, b.Bucket, b.Prefix, &uploader.Options{Force: true, Include: []string{"*.png"}})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := forced.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if fs.Uploaded != 2 || fs.SkippedBy()[uploader.ReasonExcluded] != len(files)-2 {
		t.Errorf("forced run of *.png uploaded %d, want 2: %+v", fs.Uploaded, fs.Files)
	}
}

func TestPutKeySchemesAndNonImages(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := testCtx(t)
	s3c := st.NewS3Client()
	dir := t.TempDir()
	files := map[string][]byte{
		"2024/june/a b.jpg": mustImage(t, 11, 60, 60, "jpeg"),
		`odd\name.png`:      mustImage(t, 12, 60, 60, "png"), // a backslash in a Linux file name
		"readme.md":         []byte("# hello\n"),
	}
	writeTree(t, dir, files)

	up, err := uploader.New(s3c, b.Bucket, "in/", &uploader.Options{Keys: uploader.KeysPath, IncludeNonImages: true})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := up.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // key -> content type
		"in/2024/june/a b.jpg": "image/jpeg",
		"in/odd/name.png":      "image/png",
		"in/readme.md":         "text/plain; charset=utf-8",
	}
	if sum.Uploaded != 3 {
		t.Fatalf("uploaded %d, want 3: %+v", sum.Uploaded, sum.Files)
	}
	for key, ctype := range want {
		head, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.Bucket, Key: aws.String(key)})
		if err != nil {
			t.Errorf("head %q: %v", key, err)
			continue
		}
		if aws.ToString(head.ContentType) != ctype {
			t.Errorf("%s: content type %q, want %q", key, aws.ToString(head.ContentType), ctype)
		}
	}

	// uuid keys: a new key per upload, with the base name kept.
	uu, err := uploader.New(s3c, b.Bucket, "u/", &uploader.Options{Keys: uploader.KeysUUID})
	if err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(dir, "2024", "june", "a b.jpg")
	s1, _ := uu.Put(ctx, []string{one})
	s2, _ := uu.Put(ctx, []string{one})
	k1, k2 := s1.Files[0].Key, s2.Files[0].Key
	if s1.Uploaded != 1 || s2.Uploaded != 1 || k1 == k2 || !strings.HasPrefix(k1, "u/") || !strings.HasSuffix(k1, "/a b.jpg") {
		t.Errorf("uuid keys %q and %q", k1, k2)
	}
}

func TestPutMultipartArrivesIntact(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := testCtx(t)
	s3c, sqsc := st.NewS3Client(), st.NewSQSClient()
	drainCreatedKeys(t, ctx, st, sqsc, b.QueueURL, b.Bucket)

	// A real JPEG header followed by random bytes: sniffed as JPEG, 21 MiB + 123 bytes.
	big := mustImage(t, 21, 64, 64, "jpeg")
	tail := make([]byte, 21<<20+123-len(big))
	_, _ = rand.Read(tail)
	big = append(big, tail...)
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"big photo.jpg": big})

	up, err := uploader.New(s3c, b.Bucket, b.Prefix, &uploader.Options{PartSize: 5 << 20, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := up.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	r := sum.Files[0]
	if r.Status != uploader.StatusUploaded || r.Parts != 5 {
		t.Fatalf("result %+v, want uploaded in 5 parts", r)
	}
	obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.Bucket, Key: &r.Key})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sha(got) != sha(big) || len(got) != len(big) {
		t.Fatalf("object is %d bytes sha %s, want %d bytes sha %s", len(got), sha(got), len(big), sha(big))
	}
	if aws.ToString(obj.ContentType) != "image/jpeg" || obj.Metadata[uploader.MetaSHA256] != sha(big) {
		t.Errorf("content type %q, sha256 metadata %q", aws.ToString(obj.ContentType), obj.Metadata[uploader.MetaSHA256])
	}
	if keys := drainCreatedKeys(t, ctx, st, sqsc, b.QueueURL, b.Bucket); !slices.Equal(keys, []string{r.Key}) {
		t.Errorf("events for %q, want one for %q", keys, r.Key)
	}
}

// faultyS3 serves an S3 stand-in (no notifications) behind a switch that makes it misbehave.
type faultyS3 struct {
	url string // the front's: clients go through it
	// failPuts > 0: every PutObject/UploadPart after the first failPuts ones has its connection
	// closed before the stand-in sees it, as a server that stopped would.
	failPuts atomic.Int64
	puts     atomic.Int64
	// failParts answers every UploadPart with 400 InvalidArgument.
	failParts atomic.Bool
	// delay holds every object write this long.
	delay atomic.Int64
	// forbidHead answers every HEAD with 403, as S3 does for a caller without s3:GetObject.
	forbidHead atomic.Bool
}

func newFaultyS3(t testing.TB) *faultyS3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a first build may be slow
	defer cancel()
	inner, err := devstack.StartS3(ctx, &devstack.S3Options{LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inner.Close)
	front, err := s3standin.StartFront("127.0.0.1:0", inner.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = front.Close(context.Background()) })
	f := &faultyS3{url: front.URL()}
	front.SetFault(func(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool) {
		if r.Method == http.MethodHead && f.forbidHead.Load() {
			w.WriteHeader(http.StatusForbidden)
			return w, true
		}
		isWrite := r.Method == http.MethodPut && strings.Count(strings.TrimPrefix(r.URL.Path, "/"), "/") >= 1
		if isWrite {
			if d := f.delay.Load(); d > 0 {
				time.Sleep(time.Duration(d))
			}
			if f.failParts.Load() && r.URL.Query().Has("partNumber") {
				_, _ = io.Copy(io.Discard, r.Body) // answer after the body, as S3 does
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument</Code><Message>injected</Message></Error>`)
				return w, true
			}
			if n := f.failPuts.Load(); n > 0 && f.puts.Add(1) > n {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return w, true
			}
		}
		return w, false
	})
	return f
}

func clientFor(st *devstack.Stack, url string) *s3.Client {
	return s3.NewFromConfig(st.AWSConfig(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(url)
		o.UsePathStyle = true
		o.RetryMaxAttempts = 1
	})
}

func listKeys(t testing.TB, ctx context.Context, c *s3.Client, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

func manyImages(t testing.TB, dir string, n int) {
	t.Helper()
	files := map[string][]byte{}
	for i := range n {
		files[fmt.Sprintf("imgs/img-%03d.png", i)] = mustImage(t, int64(100+i), 52, 52, "png")
	}
	writeTree(t, dir, files)
}

func TestPutOutageReportsEachFileAndLosesNothing(t *testing.T) {
	st := stacktest.Get(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	manyImages(t, dir, 12)
	const bucket = "outage"

	// 1. Nothing listens: every file fails with a classified, transient reason; exit code 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close()
	down, err := uploader.New(clientFor(st, closedURL), bucket, "upload/", &uploader.Options{Retries: 1, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := down.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 12 || sum.ExitCode() != uploader.ExitFailed {
		t.Fatalf("closed port: failed %d, exit %d; want 12, 1", sum.Failed, sum.ExitCode())
	}
	for _, f := range sum.Files {
		if f.Reason != uploader.ReasonConnectionRefused || f.Class != "transient" || f.Attempts != 2 || f.Key == "" {
			t.Errorf("closed port: %s: reason %q class %q attempts %d key %q", f.Path, f.Reason, f.Class, f.Attempts, f.Key)
		}
	}

	// 2. The server stops in the middle of the run.
	fs := newFaultyS3(t)
	healthy := clientFor(st, fs.url)
	if _, err := healthy.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	fs.failPuts.Store(5)
	mid, err := uploader.New(healthy, bucket, "upload/", &uploader.Options{Concurrency: 2, Retries: 1, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sum, err = mid.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var reported []string
	for _, f := range sum.Files {
		switch f.Status {
		case uploader.StatusUploaded:
			reported = append(reported, f.Key)
		case uploader.StatusFailed:
			if f.Reason != uploader.ReasonConnectionReset || f.Class != "transient" {
				t.Errorf("mid-run outage: %s failed with %q (%s): %s", f.Path, f.Reason, f.Class, f.Detail)
			}
		}
	}
	sort.Strings(reported)
	if sum.Uploaded != 5 || sum.Failed != 7 || sum.ExitCode() != uploader.ExitFailed {
		t.Errorf("mid-run outage: uploaded %d failed %d exit %d; want 5, 7, 1", sum.Uploaded, sum.Failed, sum.ExitCode())
	}
	fs.failPuts.Store(0)
	if got := listKeys(t, ctx, healthy, bucket); !slices.Equal(got, reported) {
		t.Errorf("bucket holds %q, the summary reported %q uploaded", got, reported)
	}

	// 3. The server is back: the same command sends exactly the rest.
	sum, err = mid.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Uploaded != 7 || sum.SkippedBy()[uploader.ReasonDuplicate] != 5 || sum.ExitCode() != 0 {
		t.Errorf("after recovery: uploaded %d skipped %v exit %d", sum.Uploaded, sum.SkippedBy(), sum.ExitCode())
	}
	if got := listKeys(t, ctx, healthy, bucket); len(got) != 12 {
		t.Errorf("bucket holds %d objects, want 12", len(got))
	}
}

func TestPutMultipartFailureAborts(t *testing.T) {
	st := stacktest.Get(t)
	ctx := testCtx(t)
	fs := newFaultyS3(t)
	c := clientFor(st, fs.url)
	const bucket = "aborts"
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	big := append(mustImage(t, 31, 64, 64, "png"), bytes.Repeat([]byte{7}, 11<<20)...)
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"big.png": big})
	fs.failParts.Store(true)
	up, err := uploader.New(c, bucket, "upload/", &uploader.Options{PartSize: 5 << 20, Retries: 2, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := up.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if f := sum.Files[0]; f.Status != uploader.StatusFailed || f.Reason != "InvalidArgument" || f.Class != "permanent" || f.Attempts != 1 {
		t.Errorf("result %+v, want failed InvalidArgument (permanent) after 1 attempt", f)
	}
	open, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(open.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open after the failure", len(open.Uploads))
	}
	if keys := listKeys(t, ctx, c, bucket); len(keys) != 0 {
		t.Errorf("objects %q exist after a failed upload", keys)
	}

	// Parts work again: the same run succeeds and leaves nothing open.
	fs.failParts.Store(false)
	sum, err = up.Put(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Uploaded != 1 || sum.Files[0].Parts != 3 {
		t.Errorf("second run: %+v", sum.Files[0])
	}
}

func TestPutInterruptFinishesInFlightAndReportsTheRest(t *testing.T) {
	st := stacktest.Get(t)
	fs := newFaultyS3(t)
	c := clientFor(st, fs.url)
	ctx := testCtx(t)
	const bucket = "interrupt"
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	manyImages(t, dir, 20)
	fs.delay.Store(int64(50 * time.Millisecond))

	runCtx, cancel := context.WithCancel(ctx)
	var started atomic.Int64
	up, err := uploader.New(c, bucket, "upload/", &uploader.Options{
		Concurrency: 2, ProgressEvery: time.Millisecond,
		Progress: func(p uploader.Progress) {
			if p.FilesDone >= 3 && started.Add(1) == 1 {
				cancel() // as Ctrl-C does
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := up.Put(runCtx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.ExitCode() != uploader.ExitFailed || sum.Failed != 0 {
		t.Fatalf("interrupted %v exit %d failed %d; want true, 1, 0 (in-flight files finish)", sum.Interrupted, sum.ExitCode(), sum.Failed)
	}
	interrupted := sum.SkippedBy()[uploader.ReasonInterrupted]
	if interrupted == 0 || sum.Uploaded+interrupted != 20 {
		t.Errorf("uploaded %d + interrupted %d, want 20 with some interrupted", sum.Uploaded, interrupted)
	}
	var reported []string
	for _, f := range sum.Files {
		if f.Status == uploader.StatusUploaded {
			reported = append(reported, f.Key)
		}
	}
	sort.Strings(reported)
	if got := listKeys(t, ctx, c, bucket); !slices.Equal(got, reported) {
		t.Errorf("bucket holds %d objects, summary says %d uploaded", len(got), len(reported))
	}
	fs.delay.Store(0)
	sum, err = up.Put(ctx, []string{dir})
	if err != nil || sum.Uploaded != interrupted || sum.ExitCode() != 0 {
		t.Errorf("rerun: uploaded %d (want %d), exit %d, err %v", sum.Uploaded, interrupted, sum.ExitCode(), err)
	}
}

func TestPutMissingPathsAndBadOptions(t *testing.T) {
	st := stacktest.Get(t)
	c := st.NewS3Client()
	if _, err := uploader.New(c, "b", "upload/", &uploader.Options{PartSize: 1 << 20}); err == nil {
		t.Error("New accepted a 1 MiB part size")
	}
	if _, err := uploader.New(c, "b", "upload/", &uploader.Options{Include: []string{"[x"}}); err == nil {
		t.Error("New accepted a bad glob")
	}
	if _, err := uploader.New(c, "", "upload/", nil); err == nil {
		t.Error("New accepted an empty bucket")
	}
	up, err := uploader.New(c, "no-such-bucket-here", "upload/", &uploader.Options{RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"a.jpg": mustImage(t, 41, 60, 60, "jpeg")})
	sum, err := up.Put(testCtx(t), []string{filepath.Join(dir, "missing.jpg"), filepath.Join(dir, "a.jpg")})
	if err != nil {
		t.Fatal(err)
	}
	if f := sum.Files[0]; f.Status != uploader.StatusFailed || f.Reason != uploader.ReasonFileNotFound || f.Class != "permanent" {
		t.Errorf("missing file: %+v", f)
	}
	if f := sum.Files[1]; f.Status != uploader.StatusFailed || f.Reason != "NoSuchBucket" || f.Attempts != 1 {
		t.Errorf("missing bucket: %+v", f)
	}
	if _, err := up.Put(testCtx(t), nil); err == nil {
		t.Error("Put accepted no paths")
	}
}

func TestPutWithoutReadPermissionStillUploads(t *testing.T) {
	st := stacktest.Get(t)
	ctx := testCtx(t)
	fs := newFaultyS3(t)
	c := clientFor(st, fs.url)
	const bucket = "write-only"
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"a.jpg": mustImage(t, 91, 60, 60, "jpeg")})
	fs.forbidHead.Store(true)
	up, err := uploader.New(c, bucket, "upload/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for run := range 2 { // no duplicate check possible: both runs upload
		sum, err := up.Put(ctx, []string{dir})
		if err != nil || sum.Uploaded != 1 {
			t.Fatalf("run %d: %+v, %v", run, sum.Files, err)
		}
	}
}
