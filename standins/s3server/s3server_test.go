package s3server_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"imgpipe/pkg/s3event"
	"imgpipe/standins/s3server"
)

const region = "us-east-1"

var nameSeq atomic.Int64

// unique returns a bucket/queue name unique in this test binary.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000, nameSeq.Add(1))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newSQS(endpoint string) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

func newS3(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
}

// env is one stand-in with its clients, a bucket and a queue.
type env struct {
	run    *s3server.Running
	s3     *s3.Client
	sqs    *sqs.Client
	bucket string
	qURL   string
	qARN   string
}

// newEnv starts a stand-in sending to sqsEndpoint (fauxqs when empty), with a fresh bucket
// and queue (created on fauxqs).
func newEnv(t *testing.T, sqsEndpoint string) *env {
	t.Helper()
	fq := requireSQS(t)
	if sqsEndpoint == "" {
		sqsEndpoint = fq
	}
	ctx := testCtx(t)
	run, err := s3server.Start(ctx, "127.0.0.1:0", &s3server.Options{Region: region, SQSEndpoint: sqsEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := run.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	e := &env{run: run, s3: newS3(run.URL()), sqs: newSQS(fq), bucket: unique("bkt")}
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &e.bucket}); err != nil {
		t.Fatal(err)
	}
	e.qURL, e.qARN = createQueue(t, e.sqs, unique("q"))
	return e
}

func createQueue(t *testing.T, c *sqs.Client, name string) (string, string) {
	t.Helper()
	ctx := testCtx(t)
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if arn == "" {
		t.Fatal("queue has no ARN")
	}
	return *out.QueueUrl, arn
}

type rule struct{ name, value string }

func queueConfig(id, arn string, events []string, rules ...rule) s3types.QueueConfiguration {
	qc := s3types.QueueConfiguration{Id: aws.String(id), QueueArn: aws.String(arn)}
	for _, e := range events {
		qc.Events = append(qc.Events, s3types.Event(e))
	}
	if len(rules) > 0 {
		qc.Filter = &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{}}
		for _, r := range rules {
			qc.Filter.Key.FilterRules = append(qc.Filter.Key.FilterRules,
				s3types.FilterRule{Name: s3types.FilterRuleName(r.name), Value: aws.String(r.value)})
		}
	}
	return qc
}

func (e *env) configure(t *testing.T, qcs ...s3types.QueueConfiguration) {
	t.Helper()
	_, err := e.s3.PutBucketNotificationConfiguration(testCtx(t), &s3.PutBucketNotificationConfigurationInput{
		Bucket:                    &e.bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: qcs},
	})
	if err != nil {
		t.Fatalf("put notification configuration: %v", err)
	}
}

// configureAll sends ObjectCreated:* and ObjectRemoved:* on the whole bucket to the queue and
// consumes the test event.
func (e *env) configureAll(t *testing.T) {
	t.Helper()
	e.configure(t, queueConfig("all", e.qARN, []string{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}))
	msgs := e.drain(t)
	if len(msgs) != 1 || !msgs[0].TestEvent {
		t.Fatalf("want one s3:TestEvent after configuration, got %d messages", len(msgs))
	}
}

// received is one SQS message: its body, parsed.
type received struct {
	*s3event.Message
	body string
}

// drain flushes the stand-in and receives everything in the queue, with a short wait for
// stragglers, deleting what it receives.
func (e *env) drain(t *testing.T) []received {
	t.Helper()
	ctx := testCtx(t)
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.run.Server().Flush(fctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	var out []received
	for {
		res, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &e.qURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(res.Messages) == 0 {
			return out
		}
		for _, m := range res.Messages {
			msg, err := s3event.Parse([]byte(aws.ToString(m.Body)))
			if err != nil {
				t.Fatalf("parse %s: %v", aws.ToString(m.Body), err)
			}
			out = append(out, received{Message: msg, body: aws.ToString(m.Body)})
			if _, err := e.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &e.qURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete message: %v", err)
			}
		}
	}
}

// records returns the records of msgs, failing on test events and multi-record messages.
func records(t *testing.T, msgs []received) []s3event.Record {
	t.Helper()
	var out []s3event.Record
	for _, m := range msgs {
		if m.TestEvent {
			t.Fatalf("unexpected test event: %s", m.body)
		}
		if len(m.Records) != 1 {
			t.Fatalf("S3 sends one record per message, got %d: %s", len(m.Records), m.body)
		}
		out = append(out, m.Records[0])
	}
	return out
}

func one(t *testing.T, recs []s3event.Record) s3event.Record {
	t.Helper()
	if len(recs) != 1 {
		t.Fatalf("want 1 record, got %d: %+v", len(recs), recs)
	}
	return recs[0]
}

func (e *env) put(t *testing.T, key, body string) *s3.PutObjectOutput {
	t.Helper()
	out, err := e.s3.PutObject(testCtx(t), &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return out
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestPutObjectEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.configureAll(t)
	e.put(t, "upload/red flower.jpg", "hello")
	msgs := e.drain(t)
	r := one(t, records(t, msgs))

	want := s3event.Record{EventName: "ObjectCreated:Put", Region: region, Bucket: e.bucket,
		BucketARN: "arn:aws:s3:::" + e.bucket, Key: "upload/red flower.jpg", Size: 5, ETag: md5hex("hello"),
		ConfigurationID: "all", SourceIP: "127.0.0.1", PrincipalID: "AWS:AKIDTEST"}
	got := r
	got.Kind, got.EventTime, got.RawKey, got.Sequencer, got.RequestID, got.HostID, got.BucketOwner = 0, time.Time{}, "", "", "", "", ""
	if got != want {
		t.Errorf("record\n got %+v\nwant %+v", got, want)
	}
	if r.Sequencer == "" || r.RequestID == "" || r.EventTime.IsZero() {
		t.Errorf("sequencer %q, request ID %q, time %v: want all set", r.Sequencer, r.RequestID, r.EventTime)
	}
	if r.EventTime.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("event time %v has sub-millisecond precision", r.EventTime)
	}

	// The wire shape, as AWS writes it.
	var wire struct {
		Records []struct {
			EventVersion string `json:"eventVersion"`
			EventSource  string `json:"eventSource"`
			EventTime    string `json:"eventTime"`
			EventName    string `json:"eventName"`
			S3           struct {
				Object map[string]any `json:"object"`
			} `json:"s3"`
		}
	}
	if err := json.Unmarshal([]byte(msgs[0].body), &wire); err != nil {
		t.Fatal(err)
	}
	w := wire.Records[0]
	if w.EventVersion != "2.1" || w.EventSource != "aws:s3" || w.EventName != "ObjectCreated:Put" {
		t.Errorf("eventVersion %q eventSource %q eventName %q", w.EventVersion, w.EventSource, w.EventName)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", w.EventTime); err != nil {
		t.Errorf("eventTime %q: %v", w.EventTime, err)
	}
	if w.S3.Object["key"] != "upload/red+flower.jpg" {
		t.Errorf("raw key %v, want upload/red+flower.jpg", w.S3.Object["key"])
	}
	if etag, _ := w.S3.Object["eTag"].(string); strings.Contains(etag, `"`) {
		t.Errorf("eTag %q has quotes", etag)
	}
}

func TestMultipartUploadEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.configureAll(t)
	ctx := testCtx(t)
	key := "upload/big file.bin"
	cr, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &e.bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	const partSize = 5 << 20
	var parts []s3types.CompletedPart
	for i := int32(1); i <= 2; i++ {
		body := bytes.Repeat([]byte{byte('a' + i)}, partSize)
		up, err := e.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: &e.bucket, Key: &key, UploadId: cr.UploadId,
			PartNumber: aws.Int32(i), Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s3types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(i)})
	}
	// Nothing is sent before the upload completes.
	if msgs := e.drain(t); len(msgs) != 0 {
		t.Fatalf("%d messages before CompleteMultipartUpload", len(msgs))
	}
	done, err := e.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &e.bucket, Key: &key,
		UploadId: cr.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatal(err)
	}
	r := one(t, records(t, e.drain(t)))
	if r.EventName != "ObjectCreated:CompleteMultipartUpload" || r.Key != key || r.Size != 2*partSize {
		t.Errorf("got %s %q size %d", r.EventName, r.Key, r.Size)
	}
	wantETag := strings.Trim(aws.ToString(done.ETag), `"`)
	if r.ETag != wantETag || !strings.HasSuffix(r.ETag, "-2") {
		t.Errorf("eTag %q, want %q (multipart form)", r.ETag, wantETag)
	}
}

func TestCopyObjectEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.put(t, "src/a+b c.jpg", "copy me")
	e.configureAll(t)
	_, err := e.s3.CopyObject(testCtx(t), &s3.CopyObjectInput{Bucket: &e.bucket, Key: aws.String("upload/copy of a+b.jpg"),
		// '+' must be escaped: S3 (and gofakes3) decode a raw '+' in x-amz-copy-source as a space.
		CopySource: aws.String(e.bucket + "/" + strings.ReplaceAll(url.PathEscape("src/a+b c.jpg"), "+", "%2B"))})
	if err != nil {
		t.Fatal(err)
	}
	r := one(t, records(t, e.drain(t)))
	if r.EventName != "ObjectCreated:Copy" || r.Key != "upload/copy of a+b.jpg" || r.Size != 7 || r.ETag != md5hex("copy me") {
		t.Errorf("got %+v", r)
	}
}

func TestPostUploadEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.configureAll(t)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("key", "upload/posted file.txt")
	fw, _ := mw.CreateFormFile("file", "posted.txt")
	_, _ = fw.Write([]byte("posted"))
	_ = mw.Close()
	resp, err := http.Post(e.run.URL()+"/"+e.bucket, mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST upload: %s", resp.Status)
	}
	r := one(t, records(t, e.drain(t)))
	if r.EventName != "ObjectCreated:Post" || r.Key != "upload/posted file.txt" || r.Size != 6 || r.ETag != md5hex("posted") {
		t.Errorf("got %+v", r)
	}
}

func TestDeleteEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	for _, k := range []string{"d/one", "d/two", "d/three", "d/four"} {
		e.put(t, k, k)
	}
	e.configureAll(t)
	ctx := testCtx(t)
	if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("d/one")}); err != nil {
		t.Fatal(err)
	}
	msgs := e.drain(t)
	r := one(t, records(t, msgs))
	if r.EventName != "ObjectRemoved:Delete" || r.Key != "d/one" || r.Size != 0 || r.ETag != "" || r.VersionID != "" {
		t.Errorf("got %+v", r)
	}
	var wire struct {
		Records []struct {
			S3 struct {
				Object map[string]any `json:"object"`
			} `json:"s3"`
		}
	}
	if err := json.Unmarshal([]byte(msgs[0].body), &wire); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"size", "eTag", "versionId"} {
		if _, ok := wire.Records[0].S3.Object[f]; ok {
			t.Errorf("delete event has %s: %s", f, msgs[0].body)
		}
	}

	keys := []string{"d/two", "d/three", "d/four"}
	var ids []s3types.ObjectIdentifier
	for _, k := range keys {
		ids = append(ids, s3types.ObjectIdentifier{Key: aws.String(k)})
	}
	if _, err := e.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &e.bucket,
		Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range records(t, e.drain(t)) {
		if r.EventName != "ObjectRemoved:Delete" {
			t.Errorf("multi-delete event %s", r.EventName)
		}
		got = append(got, r.Key)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("multi-delete events for %q, want %q", got, keys)
	}
}

func TestVersionedBucketEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	ctx := testCtx(t)
	setVersioning(t, e.s3, e.bucket, s3types.BucketVersioningStatusEnabled)
	e.configureAll(t)
	put := e.put(t, "v/key", "v1")
	r := one(t, records(t, e.drain(t)))
	if r.VersionID == "" || r.VersionID != aws.ToString(put.VersionId) {
		t.Errorf("put event versionId %q, PutObject said %q", r.VersionID, aws.ToString(put.VersionId))
	}

	del, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("v/key")})
	if err != nil {
		t.Fatal(err)
	}
	r = one(t, records(t, e.drain(t)))
	if r.EventName != "ObjectRemoved:DeleteMarkerCreated" || r.VersionID != aws.ToString(del.VersionId) || r.VersionID == "" {
		t.Errorf("delete without version: %s versionId %q, DeleteObject said %q", r.EventName, r.VersionID, aws.ToString(del.VersionId))
	}

	if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("v/key"), VersionId: put.VersionId}); err != nil {
		t.Fatal(err)
	}
	r = one(t, records(t, e.drain(t)))
	if r.EventName != "ObjectRemoved:Delete" || r.VersionID != aws.ToString(put.VersionId) {
		t.Errorf("delete of a version: %s versionId %q", r.EventName, r.VersionID)
	}

	e.put(t, "v/multi", "x")
	e.drain(t)
	if _, err := e.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &e.bucket,
		Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String("v/multi")}}}}); err != nil {
		t.Fatal(err)
	}
	r = one(t, records(t, e.drain(t)))
	if r.EventName != "ObjectRemoved:DeleteMarkerCreated" || r.VersionID == "" {
		t.Errorf("multi-delete on versioned bucket: %s versionId %q", r.EventName, r.VersionID)
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.configure(t, queueConfig("jpegs", e.qARN, []string{"s3:ObjectCreated:*"}, rule{"prefix", "upload/"}, rule{"suffix", ".jpg"}))
	e.drain(t) // the test event
	for _, k := range []string{"upload/a.jpg", "upload/a.png", "other/a.jpg", "upload.jpg", "Upload/b.jpg", "upload/b.JPG", "upload/sub/c.jpg"} {
		e.put(t, k, "x")
	}
	var got []string
	for _, r := range records(t, e.drain(t)) {
		got = append(got, r.Key)
		if r.ConfigurationID != "jpegs" {
			t.Errorf("configurationId %q", r.ConfigurationID)
		}
	}
	slices.Sort(got)
	if want := []string{"upload/a.jpg", "upload/sub/c.jpg"}; !slices.Equal(got, want) {
		t.Errorf("events for %q, want %q", got, want)
	}
}

func TestEventTypeSelection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.configure(t, queueConfig("created", e.qARN, []string{"s3:ObjectCreated:*"}))
	e.drain(t)
	e.put(t, "k", "x")
	if _, err := e.s3.DeleteObject(testCtx(t), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	r := one(t, records(t, e.drain(t)))
	if r.EventName != "ObjectCreated:Put" {
		t.Errorf("got %s", r.EventName)
	}

	// Two queues, split by event type, with a specific event on one side.
	q2URL, q2ARN := createQueue(t, e.sqs, unique("q2"))
	e.configure(t,
		queueConfig("puts", e.qARN, []string{"s3:ObjectCreated:Put"}),
		queueConfig("removals", q2ARN, []string{"s3:ObjectRemoved:*"}))
	e.drain(t)
	e.put(t, "k2", "x")
	if _, err := e.s3.CopyObject(testCtx(t), &s3.CopyObjectInput{Bucket: &e.bucket, Key: aws.String("k3"),
		CopySource: aws.String(e.bucket + "/k2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.DeleteObject(testCtx(t), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("k2")}); err != nil {
		t.Fatal(err)
	}
	r = one(t, records(t, e.drain(t)))
	if r.EventName != "ObjectCreated:Put" || r.Key != "k2" {
		t.Errorf("queue 1 got %s %s", r.EventName, r.Key)
	}
	e2 := *e
	e2.qURL = q2URL
	var names []string
	for _, m := range e2.drain(t) {
		if m.TestEvent {
			continue
		}
		names = append(names, m.Records[0].EventName+" "+m.Records[0].Key+" "+m.Records[0].ConfigurationID)
	}
	if want := []string{"ObjectRemoved:Delete k2 removals"}; !slices.Equal(names, want) {
		t.Errorf("queue 2 got %q, want %q", names, want)
	}
}

func TestKeyEncoding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.configureAll(t)
	keys := []string{
		"upload/red flower.jpg",
		"upload/c++/a+b.png",
		"upload/100% real.jpg",
		"upload/a&b=c?d.jpg",
		"upload/日本語/画像 1.jpg",
		"upload/émoji 🎉.png",
		"upload/deep/very/deep/path/to/the/file.jpg",
		"upload/tilde~star*(paren)!'.jpg",
		"upload/%2F already-encoded%20.jpg",
		"upload/semi;colon,comma:@$.jpg",
	}
	for _, k := range keys {
		e.put(t, k, k)
	}
	got := make(map[string]s3event.Record)
	for _, r := range records(t, e.drain(t)) {
		got[r.Key] = r
	}
	for _, k := range keys {
		r, ok := got[k]
		if !ok {
			t.Errorf("no event decodes to %q (got keys %q)", k, slices.Collect(mapKeys(got)))
			continue
		}
		if r.RawKey != s3event.EncodeKey(k) {
			t.Errorf("raw key %q, want %q", r.RawKey, s3event.EncodeKey(k))
		}
		if strings.Contains(r.RawKey, " ") {
			t.Errorf("raw key %q has a space", r.RawKey)
		}
	}
	if len(got) != len(keys) {
		t.Errorf("%d distinct keys in events, want %d", len(got), len(keys))
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestSequencerGrowsPerKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.configureAll(t)
	ctx := testCtx(t)
	var want []string // the ETag of each write to "seq/k" in order; "" for the delete
	for i := range 5 {
		body := fmt.Sprintf("version %d", i)
		e.put(t, "seq/k", body)
		e.put(t, fmt.Sprintf("seq/other-%d", i), body) // interleaved events on other keys
		want = append(want, md5hex(body))
	}
	if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("seq/k")}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "")
	var recs []s3event.Record
	for _, r := range records(t, e.drain(t)) {
		if r.Key == "seq/k" {
			recs = append(recs, r)
		}
	}
	if len(recs) != len(want) {
		t.Fatalf("%d events for seq/k, want %d", len(recs), len(want))
	}
	// Delivery order is not guaranteed; ordering by sequencer must give the write order.
	slices.SortFunc(recs, func(a, b s3event.Record) int {
		c, err := s3event.CompareSequencer(a.Sequencer, b.Sequencer)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
	for i := range recs {
		if i > 0 {
			if c, _ := s3event.CompareSequencer(recs[i-1].Sequencer, recs[i].Sequencer); c >= 0 {
				t.Errorf("sequencers not strictly increasing: %s then %s", recs[i-1].Sequencer, recs[i].Sequencer)
			}
		}
		if recs[i].ETag != want[i] {
			t.Errorf("event %d by sequencer has eTag %q, want %q (write order)", i, recs[i].ETag, want[i])
		}
	}
}

func TestNotificationConfigRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	q2URL, q2ARN := createQueue(t, e.sqs, unique("q2"))
	e.configure(t,
		queueConfig("uploads", e.qARN, []string{"s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload"},
			rule{"prefix", "upload/"}, rule{"suffix", ".jpg"}),
		queueConfig("removals", q2ARN, []string{"s3:ObjectRemoved:*"}, rule{"Prefix", "upload/"}),
		queueConfig("copies", e.qARN, []string{"s3:ObjectCreated:Copy"}),
	)
	// One test event per destination queue.
	if msgs := e.drain(t); len(msgs) != 1 || !msgs[0].TestEvent || msgs[0].TestBucket != e.bucket {
		t.Errorf("queue 1: want one test event for %s, got %+v", e.bucket, msgs)
	}
	e2 := *e
	e2.qURL = q2URL
	if msgs := e2.drain(t); len(msgs) != 1 || !msgs[0].TestEvent {
		t.Errorf("queue 2: want one test event, got %d messages", len(msgs))
	}

	out, err := e.s3.GetBucketNotificationConfiguration(testCtx(t), &s3.GetBucketNotificationConfigurationInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	type cfg struct {
		ID, ARN, Events, Rules string
	}
	var got []cfg
	for _, qc := range out.QueueConfigurations {
		c := cfg{ID: aws.ToString(qc.Id), ARN: aws.ToString(qc.QueueArn)}
		var ev []string
		for _, e := range qc.Events {
			ev = append(ev, string(e))
		}
		c.Events = strings.Join(ev, ",")
		if qc.Filter != nil && qc.Filter.Key != nil {
			var rs []string
			for _, r := range qc.Filter.Key.FilterRules {
				rs = append(rs, strings.ToLower(string(r.Name))+"="+aws.ToString(r.Value))
			}
			c.Rules = strings.Join(rs, ",")
		}
		got = append(got, c)
	}
	want := []cfg{
		{"uploads", e.qARN, "s3:ObjectCreated:Put,s3:ObjectCreated:CompleteMultipartUpload", "prefix=upload/,suffix=.jpg"},
		{"removals", q2ARN, "s3:ObjectRemoved:*", "prefix=upload/"},
		{"copies", e.qARN, "s3:ObjectCreated:Copy", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, want)
	}

	// An empty configuration removes it.
	e.configure(t)
	out, err = e.s3.GetBucketNotificationConfiguration(testCtx(t), &s3.GetBucketNotificationConfigurationInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.QueueConfigurations) != 0 {
		t.Errorf("after an empty configuration: %+v", out.QueueConfigurations)
	}
	e.put(t, "upload/x.jpg", "x")
	if msgs := e.drain(t); len(msgs) != 0 {
		t.Errorf("%d messages after the configuration was removed", len(msgs))
	}
}

func TestNotificationConfigErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	missingARN := "arn:aws:sqs:us-east-1:000000000000:" + unique("no-such-queue")
	created := []string{"s3:ObjectCreated:*"}
	tests := []struct {
		name     string
		bucket   string
		cfg      s3types.NotificationConfiguration
		code     string
		contains string
	}{
		{"unknown bucket", "no-such-bucket-" + unique("b"),
			s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{queueConfig("a", e.qARN, created)}},
			"NoSuchBucket", ""},
		{"malformed ARN", e.bucket,
			s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{queueConfig("a", "not-an-arn", created)}},
			"InvalidArgument", "Unable to validate the following destination configurations"},
		{"missing queue", e.bucket,
			s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{queueConfig("a", missingARN, created)}},
			"InvalidArgument", "Unable to validate the following destination configurations"},
		{"unknown event", e.bucket,
			s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{queueConfig("a", e.qARN, []string{"s3:ObjectCreated:Teleport"})}},
			"InvalidArgument", "event is not supported"},
		{"overlapping prefixes", e.bucket,
			s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{
				queueConfig("a", e.qARN, created, rule{"prefix", "upload/"}),
				queueConfig("b", e.qARN, []string{"s3:ObjectCreated:Put"}, rule{"prefix", "upload/img/"}),
			}},
			"InvalidArgument", "Configurations overlap"},
		{"bad filter rule", e.bucket,
			s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{queueConfig("a", e.qARN, created, rule{"infix", "x"})}},
			"InvalidArgument", "prefix or suffix"},
		{"topic destination", e.bucket,
			s3types.NotificationConfiguration{TopicConfigurations: []s3types.TopicConfiguration{{
				TopicArn: aws.String("arn:aws:sns:us-east-1:000000000000:t"), Events: []s3types.Event{"s3:ObjectCreated:*"}}}},
			"InvalidArgument", "only QueueConfiguration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.s3.PutBucketNotificationConfiguration(testCtx(t), &s3.PutBucketNotificationConfigurationInput{
				Bucket: aws.String(tt.bucket), NotificationConfiguration: &tt.cfg,
			})
			var api smithy.APIError
			if !errors.As(err, &api) {
				t.Fatalf("want API error %s, got %v", tt.code, err)
			}
			if api.ErrorCode() != tt.code || !strings.Contains(api.ErrorMessage(), tt.contains) {
				t.Errorf("got %s %q, want %s containing %q", api.ErrorCode(), api.ErrorMessage(), tt.code, tt.contains)
			}
		})
	}
	// Nothing was stored and nothing was sent.
	out, err := e.s3.GetBucketNotificationConfiguration(testCtx(t), &s3.GetBucketNotificationConfigurationInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.QueueConfigurations) != 0 {
		t.Errorf("a failed configuration was stored: %+v", out.QueueConfigurations)
	}
	if msgs := e.drain(t); len(msgs) != 0 {
		t.Errorf("%d messages after failed configurations", len(msgs))
	}
	_, err = e.s3.GetBucketNotificationConfiguration(testCtx(t), &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String("no-such-bucket-x")})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "NoSuchBucket" {
		t.Errorf("get on unknown bucket: %v", err)
	}
}

func TestFailedWritesSendNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.put(t, "exists", "x")
	e.configureAll(t)
	ctx := testCtx(t)
	before := e.run.Server().Stats().Enqueued
	missing := aws.String("no-such-bucket-" + unique("b"))
	attempts := []struct {
		name string
		call func() error
	}{
		{"put to missing bucket", func() error {
			_, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: missing, Key: aws.String("k"), Body: strings.NewReader("x")})
			return err
		}},
		{"delete in missing bucket", func() error {
			_, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: missing, Key: aws.String("k")})
			return err
		}},
		{"copy of missing source", func() error {
			_, err := e.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &e.bucket, Key: aws.String("dst"), CopySource: aws.String(e.bucket + "/nope")})
			return err
		}},
		{"complete unknown upload", func() error {
			_, err := e.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &e.bucket, Key: aws.String("mp"),
				UploadId: aws.String("12345"), MultipartUpload: &s3types.CompletedMultipartUpload{
					Parts: []s3types.CompletedPart{{ETag: aws.String(`"abc"`), PartNumber: aws.Int32(1)}}}})
			return err
		}},
		{"conditional put that fails", func() error {
			_, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("exists"), Body: strings.NewReader("y"),
				IfNoneMatch: aws.String("*")})
			return err
		}},
	}
	for _, a := range attempts {
		if err := a.call(); err == nil {
			t.Errorf("%s: succeeded, want an error", a.name)
		}
	}
	if msgs := e.drain(t); len(msgs) != 0 {
		t.Errorf("%d messages after failed writes: %+v", len(msgs), msgs)
	}
	if after := e.run.Server().Stats().Enqueued; after != before {
		t.Errorf("enqueued %d events for failed writes", after-before)
	}
}

// flakyProxy forwards to target while up and drops connections while down.
type flakyProxy struct {
	up    atomic.Bool
	proxy *httputil.ReverseProxy
}

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.up.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	p.proxy.ServeHTTP(w, r)
}

func TestDeliveryAfterSQSOutage(t *testing.T) {
	t.Parallel()
	target, err := url.Parse(requireSQS(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	p.up.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	e := newEnv(t, "http://"+ln.Addr().String())
	e.configureAll(t)

	p.up.Store(false)
	e.put(t, "upload/during-outage.jpg", "x")
	// Wait until the stand-in has seen the outage.
	ctx := testCtx(t)
	for e.run.Server().Stats().FailedAttempts == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no failed delivery attempt while SQS was down")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if st := e.run.Server().Stats(); st.Pending != 1 || st.Sent != 0 {
		t.Errorf("during the outage: %+v", st)
	}
	p.up.Store(true)
	r := one(t, records(t, e.drain(t)))
	if r.Key != "upload/during-outage.jpg" {
		t.Errorf("got %q", r.Key)
	}
	if st := e.run.Server().Stats(); st.Pending != 0 || st.Sent != 1 || st.Dropped != 0 {
		t.Errorf("after the outage: %+v", st)
	}
}

func TestManyEventsBatched(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.configureAll(t)
	const n = 60
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := e.s3.PutObject(testCtx(t), &s3.PutObjectInput{Bucket: &e.bucket,
				Key: aws.String(fmt.Sprintf("many/%02d", i)), Body: strings.NewReader("x")})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[string]bool)
	for _, r := range records(t, e.drain(t)) {
		seen[r.Key] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct keys delivered, want %d", len(seen), n)
	}
	if st := e.run.Server().Stats(); st.Sent != n || st.Enqueued != n {
		t.Errorf("stats %+v", st)
	}
}

func TestEventsForADeletedQueueAreDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.configureAll(t)
	s3server.SetMissingQueueGrace(e.run.Server(), 200*time.Millisecond)
	ctx := testCtx(t)
	if _, err := e.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &e.qURL}); err != nil {
		t.Fatal(err)
	}
	e.put(t, "upload/orphan.jpg", "x")
	err := e.run.Server().Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Errorf("flush: %v, want an error reporting the dropped event", err)
	}
	// More than one attempt: a missing queue is retried for the grace period, not dropped at once.
	if st := e.run.Server().Stats(); st.Dropped != 1 || st.Pending != 0 || st.Sent != 0 || st.FailedAttempts < 2 {
		t.Errorf("stats %+v", st)
	}
}
